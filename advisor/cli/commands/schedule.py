"""``advisor schedule``: fit a loss-vs-LR-schedule law, predict a schedule's loss, pick one."""
from __future__ import annotations

import csv
import io
import math
import shlex
import sys

import click

from advisor.cli.deps import require_plot
from advisor.common.yamlio import json_text
from advisor.errors import AdvisorError


@click.group("schedule")
def schedule():
    """Fit, predict and optimise LR schedules with loss-curve laws.

    The laws: Tissue et al. 2024 (LR annealing), Luo et al. 2025 (multi-power law) and
    the valley law (ours: LR-area progress plus an excess that follows a lagged LR).
    """


def _echo_err(msg):
    click.echo(msg, err=True)


# Cost of one loss prediction over T steps: both laws hold a few float64 arrays of length T
# (per-step LRs, cumulative sums). Measured peak 56-132 bytes/step (tracemalloc; tissue and
# multipower, WSD and cosine, T = 1e6 and 4e6) and 0.1-0.55 us/step on a 2-core CPU; the
# constants below are those figures rounded up.
BYTES_PER_STEP = 160
SECONDS_PER_STEP = 1e-6
#: final-loss evaluations of `schedule optimize`: the candidate grid, warmups, branch points
OPTIMIZE_EVALUATIONS = 130


def _check_cost(steps: int, evaluations: int, what: str) -> None:
    """Refuse, before starting, a --steps whose arrays cannot fit in memory; warn when the
    computation will take long."""
    from advisor.common.membudget import check_memory

    check_memory(f"{what} over {steps} steps", BYTES_PER_STEP * steps,
                 hint="predict a shorter run (the laws' extrapolation in length is weak "
                      "far beyond the fitted curves anyway)")
    seconds = SECONDS_PER_STEP * steps * evaluations
    if seconds > 30:
        _echo_err(f"note: {what} over {steps} steps will take about {seconds / 60:.0f} min")


@schedule.command("fit")
@click.argument("source", type=click.Path())
@click.option("--out", default="schedule-law.yaml", show_default=True, type=click.Path(),
              help="schedule-law YAML to write")
@click.option("--law", "law_choice", default="auto", show_default=True,
              type=click.Choice(["auto", "multipower", "tissue", "valley"]),
              help="auto: choose law and fitting procedure by cross-validation")
@click.option("--run-id", "run_ids", multiple=True,
              help="results store: fit these runs (default: the largest group of runs that "
                   "differ only in schedule)")
@click.option("--loss", "loss_col", default="train_loss", show_default=True,
              type=click.Choice(["train_loss", "val_loss"]),
              help="results store: which logged loss to fit")
@click.option("--curve", "extra", multiple=True, type=click.Path(),
              help="more CSVs (step,lr,loss) of the same model at the same peak LR")
@click.option("--plot", "plot_path", type=click.Path(), default=None,
              help="PNG overlay of the fitted curves")
def fit_cmd(source, out, law_choice, run_ids, loss_col, extra, plot_path):
    """Fit a schedule law to SOURCE: a CSV of step,lr,loss, a results store folder, or a
    folder of the multi-power-law curves (fits the authors' training split)."""
    from advisor.schedule.curves import load_csv, load_curves
    from advisor.schedule.fitting import FitOptions, curve_errors
    from advisor.schedule.lawfile import build_document, dump_schedule_law
    from advisor.schedule.select import CANDIDATES, select_and_fit
    from advisor.common.outputs import check_output_file

    check_output_file(out, "schedule law")
    if plot_path:
        require_plot("schedule fit --plot", plot_path)
    curves = load_curves(source, run_ids=run_ids, loss=loss_col) + [load_csv(p) for p in extra]
    peaks = sorted({round(c.peak_lr, 12) for c in curves})
    if peaks[-1] > peaks[0] * 1.001:
        raise AdvisorError(f"the curves have different peak LRs ({', '.join(map(str, peaks))}); "
                           f"a schedule law describes one peak LR")
    if law_choice == "auto":
        cands = CANDIDATES
    else:
        cands = [(law_choice, FitOptions())]
    from advisor.schedule.fitting import check_identifiable, fit_set_notes
    check_identifiable(curves)
    for n in fit_set_notes(curves):
        _echo_err(f"note: {n}")
    _echo_err(f"fitting {len(curves)} curve(s): {', '.join(c.name for c in curves)}")
    fit, rows = select_and_fit(curves, cands, progress=_echo_err)
    if rows:
        click.echo("cross-validation (mean held-out relative error + final-point error):")
        for r in rows:
            if not math.isfinite(r["score"]):
                why = next((f["error"] for f in r.get("folds", ()) if f.get("error")), "")
                click.echo(f"  {r['label']:<48} failed on a fold: {why}")
                continue
            click.echo(f"  {r['label']:<48} score {r['score']:.3%}  (curve {r['mean_rel']:.3%}, "
                       f"final {r['final_rel']:.3%})")
    click.echo(f"chosen: {fit.law} [{fit.options.label()}], fitted in {fit.seconds:.2f} s")
    from advisor.schedule.fitting import status_warnings
    for w in status_warnings(fit):
        _echo_err(f"warning: {w}")
    for c in curves:
        e = curve_errors(fit, c)
        click.echo(f"  {c.name:<28} mean rel err {e['mean_rel']:.3%}  max {e['max_rel']:.3%}  "
                   f"final {e['final_rel']:+.3%}")
    cmd = "advisor " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""
    doc = build_document(fit, curves, rows, command=cmd)
    dump_schedule_law(doc, out)
    click.echo(f"wrote {out}")
    if plot_path:
        from advisor.schedule.fitting import predict_curve
        from advisor.cli import plots
        plots.schedule_fit(curves, [predict_curve(fit, c) for c in curves], plot_path,
                  f"{fit.law} fit")
        click.echo(f"wrote {plot_path}")


@schedule.command("predict")
@click.option("--law", "law_path", required=True, type=click.Path(), help="schedule-law YAML")
@click.option("--schedule", "spec", required=True,
              help="e.g. wsd:cooldown=0.2,shape=1-sqrt or cosine:final=0.1,warmup=500")
@click.option("--steps", required=True, type=int, help="total optimizer steps")
@click.option("--peak-lr", type=float, default=None, help="default: the law's peak LR")
@click.option("--csv", "csv_path", default="schedule-prediction.csv", show_default=True,
              type=click.Path())
@click.option("--plot", "plot_path", default="schedule-prediction.png", show_default=True,
              type=click.Path(), help="PNG of the predicted loss with the LR on a second axis")
@click.option("--no-plot", is_flag=True)
@click.option("--points", default=400, show_default=True, type=int)
def predict_cmd(law_path, spec, steps, peak_lr, csv_path, plot_path, no_plot, points):
    """The predicted loss curve of a schedule (CSV of step, lr, predicted_loss, lo, hi), its
    final loss with an interval and the interval's reason (docs/schedules.md)."""
    from advisor.rules.lr_schedule import parse_schedule
    from advisor.schedule.lawfile import load_schedule_law
    from advisor.common.outputs import atomic_write_text, check_output_file
    from advisor.schedule.optimize import final_interval, per_step_lrs, predict_schedule
    from advisor.schedule.uncertainty import curve_halfwidths

    parse_schedule(spec)                       # bad spec: error before anything else
    if steps < 10:
        raise AdvisorError(f"--steps must be at least 10, got {steps}")
    if points < 2:
        raise AdvisorError("--points must be at least 2")
    check_output_file(csv_path, "CSV file")
    if not no_plot:
        require_plot("schedule predict", plot_path, alternative=", or pass --no-plot")
    law = load_schedule_law(law_path)
    _check_cost(steps, 1, "the prediction")
    st, loss, lr = predict_schedule(law, spec, steps, peak_lr, n_points=points)
    iv = final_interval(law, spec, steps, peak_lr)
    rel = curve_halfwidths(law, per_step_lrs(spec, steps, 1.0), st)   # each row: its own run
    lo, hi = loss * (1 - rel), loss * (1 + rel)
    if peak_lr is not None and abs(peak_lr / law.lr_scale - 1) > 1e-6:
        _echo_err(f"note: peak LR {peak_lr:g} differs from the fit's {law.lr_scale:g}; the "
                  f"law was fitted at one peak LR and cannot rank peak LRs")
    if steps > 1.5 * law.total_steps_fitted:
        _echo_err(f"note: {steps} steps is {steps / law.total_steps_fitted:.1f}x the longest "
                  f"fitted curve: the prediction extrapolates in length")
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["step", "lr", "predicted_loss", "lo", "hi"])
    for row in zip(st.tolist(), lr.tolist(), loss.tolist(), lo.tolist(), hi.tolist()):
        w.writerow([row[0], f"{row[1]:.6g}"] + [f"{x:.6f}" for x in row[2:]])
    atomic_write_text(csv_path, buf.getvalue(), "CSV file")
    click.echo(f"{spec}, {steps} steps, peak LR {peak_lr or law.lr_scale:g}: predicted final "
               f"loss {iv.loss:.4f}, interval {iv.lo:.4f}-{iv.hi:.4f} (+-{iv.rel:.2%}; "
               f"{law.law} law)")
    click.echo(f"interval: {iv.reason}")
    click.echo(f"wrote {csv_path}")
    if not no_plot:
        from advisor.cli import plots
        plots.schedule_prediction(st, loss, lr, plot_path, f"{spec} ({law.law} law)",
                                  band=(lo, hi))
        click.echo(f"wrote {plot_path}")


@schedule.command("optimize")
@click.option("--law", "law_path", required=True, type=click.Path(), help="schedule-law YAML")
@click.option("--steps", required=True, type=int, help="total optimizer steps")
@click.option("--peak-lr", type=float, default=None, help="default: the law's peak LR")
@click.option("--warmup", type=int, default=None,
              help="warmup steps (default: the fitted curves', clamped to [40, 10% of steps])")
@click.option("--top", default=8, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="print the full result as JSON")
def optimize_cmd(law_path, steps, peak_lr, warmup, top, as_json):
    """The schedule with the lowest predicted final loss (cosine, linear, WSD; cooldown
    fraction, shape, final LR), its gain over cosine, and WSD branch points."""
    from advisor.schedule.lawfile import load_schedule_law
    from advisor.schedule.optimize import optimize

    from advisor.schedule.optimize import default_warmup

    if steps < 10:
        raise AdvisorError(f"--steps must be at least 10, got {steps}")
    if warmup is not None and not 0 <= warmup < steps:
        raise AdvisorError(f"--warmup must be in [0, --steps) = [0, {steps}), got {warmup}")
    law = load_schedule_law(law_path)
    if warmup is None and default_warmup(law, steps) >= steps:
        raise AdvisorError(f"--steps {steps} is shorter than the default warmup of "
                           f"{default_warmup(law, steps)} steps (at least 2 / (1 - beta2) = "
                           f"40); give --warmup below {steps}, or more --steps")
    _check_cost(steps, OPTIMIZE_EVALUATIONS, "the schedule search")
    r = optimize(law, steps, peak_lr, warmup)
    if as_json:
        click.echo(json_text(r))
        return
    click.echo(f"{steps} steps at peak LR {r.peak_lr:g}, warmup {r.warmup_steps} steps "
               f"({law.law} law, {law_path})")
    b = r.best_interval
    cos = next(x for x in r.ranking if x.spec == r.cosine_reference)
    click.echo(f"best: {r.best}  predicted final loss {r.best_final_loss:.4f} "
               f"[{b.lo:.4f}, {b.hi:.4f}] (+-{b.rel:.2%})")
    click.echo(f"  interval: {b.reason}")
    click.echo(f"  vs {r.cosine_reference}: {r.cosine_final_loss:.4f} [{cos.lo:.4f}, "
               f"{cos.hi:.4f}]  (predicted gain {r.gain_over_cosine_nats:.4f} nats)")
    told = [n for n in r.notes if n.startswith("the runner-up")]   # inside the interval
    for n in told:
        click.echo(f"  within the interval: {n}")
    if r.distinguishable:
        click.echo(f"  the runner-up {r.ranking[1].spec} ({r.ranking[1].final_loss:.4f}) "
                   "lies outside the best's interval")
    click.echo(f"best WSD: {r.best_wsd}; cooldown band {r.cooldown_band[0]:g}-"
               f"{r.cooldown_band[1]:g} of the run (within 0.1% of the best)")
    click.echo("ranking (predicted final loss [interval]):")
    for row in r.ranking[:top]:
        click.echo(f"  {row.final_loss:.4f} [{row.lo:.4f}, {row.hi:.4f}]  {row.spec}")
    click.echo("WSD branch points (one constant-LR run, cooldowns branched off it):")
    for b in r.branch_points:
        click.echo(f"  branch at step {b.branch_step:>8}, cool down {b.cooldown_steps:>7} "
                   f"steps -> {b.total_steps:>8}-step model, predicted loss "
                   f"{b.predicted_final_loss:.4f} [{b.lo:.4f}, {b.hi:.4f}]")
    inside = all(r.best_interval.contains(v) for v in r.warmup_effect.values())
    click.echo("warmup: " + ", ".join(f"{k} steps -> {v:.4f}" for k, v in
                                      r.warmup_effect.items())
               + " (the law sees warmup only as LR area; it is set by rule, not by the law"
               + ("; all inside the best's interval)" if inside else ")"))
    for n in r.notes:
        if n not in told:
            click.echo(f"note: {n}")


