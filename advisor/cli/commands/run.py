"""``advisor run``: read the log of a run in progress, forecast it, check its health."""
from __future__ import annotations

from pathlib import Path

import click

from advisor.common.yamlio import json_text
from advisor.errors import AdvisorError


@click.command("run")
@click.argument("log", type=click.Path())
@click.option("--format", "fmt", default="auto", show_default=True,
              type=click.Choice(["auto", "csv", "wandb", "jsonl", "hf", "tensorboard", "text"]),
              help="log format (auto: from the file)")
@click.option("--schedule", "spec", default=None,
              help="the run's planned schedule, e.g. wsd:cooldown=0.2,warmup=1000 (same "
                   "specs as `advisor schedule`); default: the log's LR column")
@click.option("--steps", type=int, default=None,
              help="planned optimizer steps (HF logs: max_steps by default)")
@click.option("--peak-lr", type=float, default=None,
              help="default: inferred from the log's LR column")
@click.option("--law", "law_path", type=click.Path(), default=None,
              help="prior: a schedule-law YAML (advisor schedule fit) of this setup: its shape "
                   "is kept, its level fitted on the run (docs/run.md). Without it, a run "
                   "still at constant LR takes its decay gains from the shipped prior "
                   "(recipes/schedule/prior.yaml, another setup: wide intervals)")
@click.option("--no-shipped-prior", is_flag=True,
              help="do not use the shipped prior: decays of a run at constant LR so far are "
                   "then not predicted")
@click.option("--cooldown-length", type=float, default=None,
              help="cooldown steps (>= 1) or fraction of the resulting run (default 0.2)")
@click.option("--cooldown-shape", default="linear", show_default=True,
              type=click.Choice(["linear", "1-sqrt", "cosine"]))
@click.option("--cooldown-final", type=float, default=0.0, show_default=True,
              help="LR at the end of a cooldown, as a fraction of the peak")
@click.option("--cooldown-at", "cooldown_at", type=int, multiple=True,
              help="also predict a cooldown starting at this step")
@click.option("--extend-to", "extend_to", type=int, multiple=True,
              help="also predict an extension to this many steps from the stable phase")
@click.option("--budget", type=int, default=None,
              help="steps for the best-cooldown search (default: --steps)")
@click.option("--since", type=int, default=None,
              help="alarm (exit 4) only on events that end at or after this step")
@click.option("--step-key", default=None, help="log column/key/tag of the step")
@click.option("--loss-key", default=None, help="log column/key/tag of the training loss")
@click.option("--lr-key", default=None, help="log column/key/tag of the LR")
@click.option("--grad-norm-key", default=None, help="log column/key/tag of the grad norm")
@click.option("--logit-key", default=None,
              help="log column/key/tag of the largest (attention or output) logit")
@click.option("--plot", "plot_path", default="run-forecast.png", show_default=True,
              type=click.Path(), help="PNG: the curve, the fit, the forecast band")
@click.option("--no-plot", is_flag=True)
@click.option("--json", "as_json", is_flag=True, help="print the whole analysis as JSON")
def run(log, fmt, spec, steps, peak_lr, law_path, no_shipped_prior, cooldown_length, cooldown_shape,
        cooldown_final, cooldown_at, extend_to, budget, since, step_key, loss_key, lr_key,
        grad_norm_key, logit_key, plot_path, no_plot, as_json):
    """Forecast a run in progress from its LOG and check its health.

    LOG: a CSV or JSONL of step, lr, loss (W&B CSV exports too), a Hugging Face
    trainer_state.json (or its checkpoint folder), a TensorBoard event file or folder, or a
    nanoGPT/torchtitan-style text log. Exit 0: healthy; 4: a loss spike or divergence was
    found (the report is printed all the same); 2: bad input.
    """
    from advisor.schedule.inflight.analyze import analyze
    from advisor.schedule.inflight.health import ALARM_EXIT
    from advisor.schedule.inflight.plan import make_plan
    from advisor.schedule.inflight.readers import detect, read_log
    from advisor.rules.lr_schedule import parse_schedule

    if spec is not None:
        parse_schedule(spec)
    for name, v in (("--steps", steps), ("--budget", budget)):
        if v is not None and v < 10:
            raise AdvisorError(f"{name} must be at least 10, got {v}")
    if not 0 <= cooldown_final < 1:
        raise AdvisorError(f"--cooldown-final must be in [0, 1), got {cooldown_final}")
    if not no_plot:
        from advisor.cli.deps import require_plot
        require_plot("run", plot_path)
    prior = fallback = None
    if law_path:
        from advisor.schedule.lawfile import load_schedule_law
        prior = load_schedule_law(law_path)
    elif not no_shipped_prior:
        from advisor.schedule.inflight.forecast import shipped_prior
        fallback = shipped_prior()
    keys = {"step": step_key, "loss": loss_key, "lr": lr_key, "grad_norm": grad_norm_key,
            "logit": logit_key}
    if fmt == "tensorboard" or (fmt == "auto" and Path(log).exists()
                                and detect(Path(log)) == "tensorboard"):
        from advisor.cli.deps import require
        require("run", "tensorboard")
    rl = read_log(log, fmt, {k: v for k, v in keys.items() if v})
    plan = make_plan(rl, spec, steps, peak_lr)
    for s in cooldown_at:
        if not plan.now <= s:
            raise AdvisorError(f"--cooldown-at {s} is before the last logged step {plan.now}")
    for s in extend_to:
        if s <= plan.now:
            raise AdvisorError(f"--extend-to {s} is not after the last logged step {plan.now}")
    if budget is not None and budget <= plan.now:
        raise AdvisorError(f"--budget {budget} is not after the last logged step {plan.now}")
    click.echo(f"read {rl.source} ({rl.fmt}): {len(rl.steps)} losses, steps "
               f"{int(rl.steps[0])}..{rl.last_step}; LR from the {plan.source_of_lr}, peak "
               f"{plan.peak_lr:.4g}", err=True)
    model, res = analyze(rl, plan, prior, cooldown_length=cooldown_length, shape=cooldown_shape,
                  final=cooldown_final, cooldown_at=cooldown_at, extend_to=extend_to,
                  budget=budget, since=since, fallback=fallback)
    if as_json:
        click.echo(json_text({k: v for k, v in res.items() if k != "fitted"}))
    else:
        _print_report(res)
    if not no_plot:
        from advisor.cli.plots import inflight_run
        inflight_run(res, plan, _bands(res, plan, model), plot_path)
        click.echo(f"wrote {plot_path}", err=True)
    if res["health"]["alarm"]:
        raise click.exceptions.Exit(ALARM_EXIT)


def _bands(res, plan, model) -> dict:
    """The plan's forecast curve with its band, for the plot (empty when not predicted)."""
    if plan.planned_lrs is None or not any(p.get("scenario") == "plan" and "loss" in p
                                           for p in res["predictions"]):
        return {}
    import numpy as np

    from advisor.schedule.inflight.forecast import NotPredictable
    T = plan.total_steps
    s = np.unique(np.linspace(plan.now, T, 60).round().astype(int))
    try:
        ps = [model.predict(plan.planned_lrs, int(t)) for t in s]
    except NotPredictable:
        return {}
    return {"plan": (s, np.array([p["loss"] for p in ps]), np.array([p["lo"] for p in ps]),
                     np.array([p["hi"] for p in ps]))}


def _fmt_pred(p) -> str:
    if "not_predicted" in p:
        return f"not predicted: {p['not_predicted']}"
    return (f"{p['loss']:.4f} [{p['lo']:.4f}, {p['hi']:.4f}] at step {p['step']}"
            + (" (decay gain from the shipped prior)" if p.get("model") == "shipped" else ""))


def _print_report(res) -> None:
    m = res["model"]
    click.echo(f"run at step {res['now']}, peak LR {res['peak_lr']:.4g}"
               + (f", plan {res['schedule']} over {res['total_steps']} steps"
                  if res["schedule"] else ""))
    click.echo(f"model: {m['law']}; residual scale {m['residual_sigma_rel']:.2%}"
               + (f"; prior: {m['prior']} law" if m["prior"] else ""))
    for w in m["warnings"]:
        click.echo(f"warning: {w}", err=True)
    h = res["health"]
    click.echo("health: " + ("ALARM" if h["alarm"] else "ok")
               + f" (band: loss more than {h['threshold_rel']:.2%} above the law)")
    for f in h["findings"]:
        if f["kind"] in ("grad_norm_growth", "logit_growth"):
            what = "grad norm" if f["kind"] == "grad_norm_growth" else "largest logit"
            click.echo(f"  {what} growing: {f['ratio']:.1f}x since mid-run "
                       f"(last 10% from step {f['start_step']})")
        else:
            rec = (f", back in the band at step {f['recovered_at']}" if f["recovered_at"]
                   else ", not recovered")
            click.echo(f"  {f['kind']} at steps {f['start_step']}-{f['last_step']} "
                       f"(+{f['max_excess_rel']:.1%} at step {f['at_step']}{rec})"
                       + (f"; grad-norm spike at {f['grad_norm_spike_at']}"
                          if f.get("grad_norm_spike_at") else ""))
        click.echo(f"    {f['cause']}")
        click.echo(f"    {f['remedy']}")
    click.echo("predicted final loss (nats, interval):")
    names = {"plan": "current plan", "constant": "no cooldown", "cooldown_now": "cooldown now",
             "cooldown_at": "cooldown at", "extension": "extension to", "all": "all"}
    for p in res["predictions"]:
        what = names.get(p["scenario"], p["scenario"])
        if p["scenario"] in ("cooldown_now", "cooldown_at", "extension"):
            what += (f" {p['start']}" if p["scenario"] != "extension" else f" {p['step']}") \
                + f" ({p['length']}-step {p['shape']} cooldown)"
        click.echo(f"  {what:<44} {_fmt_pred(p)}")
    b = res.get("best_cooldown")
    if b:
        if "not_predicted" in b:
            click.echo(f"best cooldown for {b['budget']} steps: not predicted: "
                       f"{b['not_predicted']}")
        else:
            click.echo(f"best cooldown for {b['budget']} steps: start at step {b['start']} "
                       f"({b['length']}-step {b['shape']}), {b['loss']:.4f} [{b['lo']:.4f}, "
                       f"{b['hi']:.4f}]; starts {b['band'][0]}-{b['band'][1]} are within "
                       f"{b['band_rel']:.1%}")
