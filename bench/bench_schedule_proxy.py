"""Schedule laws on our own proxy runs: fit on two schedules, predict three others.

Trains a small muP proxy (calibration.train.single) under five LR schedules at one peak LR, stores
the runs in a results store (resumable: finished runs are not retrained), fits a schedule
law on constant + one long-decay schedule (cosine to 10%) read back from the store, and
predicts the final loss of WSD (20% 1-sqrt, 50% linear) and linear-to-zero runs. Writes a
table and an overlay plot (measured solid, predicted dashed, LR on a second axis).

    /work/venv/bin/python -m bench.bench_schedule_proxy --device cpu --out /tmp/sched_proxy
    (GPU: --device cuda --width 256 --depth 4 --steps 4000)
"""
from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

FIT = ("constant", "cosine:final=0.1")
TEST = ("wsd:cooldown=0.2,shape=1-sqrt,final=0", "wsd:cooldown=0.5,shape=linear,final=0",
        "linear:final=0")


def parser() -> argparse.ArgumentParser:
    """The command line (also how bench.gpu_suite builds this benchmark's settings)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="schedule-proxy")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2 ** -6)
    ap.add_argument("--warmup", type=int, default=40)
    ap.add_argument("--eval-interval", type=int, default=20)
    ap.add_argument("--law", default="auto", choices=["auto", "multipower", "tissue"])
    ap.add_argument("--compile", default="never", choices=["auto", "always", "never"],
                    help="torch.compile of each run (RunSpec.compile; not part of the run id)")
    ap.add_argument("--model", default="", help="ProxyConfig overrides, e.g. head_dim=16")
    return ap


def proxy_specs(args) -> dict:
    """{schedule: RunSpec} of the five runs (fit schedules first)."""
    from advisor.specs.runspec import RunSpec

    model = {}
    for item in filter(None, args.model.split(",")):
        k, v = item.split("=")
        model[k] = int(v) if v.lstrip("-").isdigit() else v
    specs = {}
    for sched in FIT + TEST:
        spec = f"{sched}{',' if ':' in sched else ':'}warmup={args.warmup}"
        specs[sched] = RunSpec(width=args.width, depth=args.depth, lr=args.lr,
                               batch_size=args.batch, seq_len=args.seq,
                               tokens=args.batch * args.seq * args.steps, schedule=spec,
                               eval_interval=args.eval_interval, eval_sequences=32,
                               compile=args.compile, model=model)
    return specs


def train_missing(specs: dict, store, data, device: str, keep_going=lambda spec: True) -> int:
    """Train the runs the store lacks, one at a time, recording each as it ends; stop
    before a run when ``keep_going(spec)`` is false. Returns how many are still missing."""
    from calibration.train.single import train_run

    done = store.final_ids()
    missing = 0
    for sched, spec in specs.items():
        if spec.run_id in done:
            print(f"{sched}: already in the store", flush=True)
            continue
        if not keep_going(spec):
            missing += 1
            continue
        t = time.perf_counter()
        r = train_run(spec, data, device=device)
        store.record_result(r)
        print(f"{sched}: {r.status} in {time.perf_counter() - t:.0f} s, final train loss "
              f"{r.final_train_loss:.4f} {r.error[:200]}", flush=True)
        if r.status != "finished":
            missing += 1
    return missing


def analyse(args, specs: dict, out: Path) -> dict:
    """Fit on the FIT runs read back from the store, predict all five; print the table and
    write overlay.png. Returns the law, the rows and the discordant-pair count."""
    from advisor.schedule.curves import load_store
    from advisor.schedule.fitting import FitOptions, curve_errors, predict_curve
    from advisor.schedule.select import CANDIDATES, select_and_fit

    curves = {s: load_store(out / "store", run_ids=[specs[s].run_id])[0] for s in specs}
    fit_curves = [curves[s] for s in FIT]
    cands = CANDIDATES if args.law == "auto" else [(args.law, FitOptions())]
    fit, _ = select_and_fit(fit_curves, cands)
    print(f"\nlaw: {fit.law} [{fit.options.label()}] fitted on {', '.join(FIT)}")
    print("| schedule | role | mean rel err | final rel err | final measured | final predicted |")
    print("|---|---|---|---|---|---|")
    finals, rows = {}, []
    for s, c in curves.items():
        e = curve_errors(fit, c)
        finals[s] = (e["final_true"], e["final_pred"])
        rows.append({"schedule": s, "role": "fit" if s in FIT else "test",
                     "mean_rel": float(e["mean_rel"]), "final_rel": float(e["final_rel"]),
                     "final_true": float(e["final_true"]), "final_pred": float(e["final_pred"])})
        print(f"| {s} | {'fit' if s in FIT else 'test'} | {e['mean_rel']:.3%} | "
              f"{e['final_rel']:+.3%} | {e['final_true']:.4f} | {e['final_pred']:.4f} |")
    disc = sum(1 for a, b in itertools.combinations(finals, 2)
               if np.sign(finals[a][0] - finals[b][0]) != np.sign(finals[a][1] - finals[b][1]))
    pairs = len(finals) * (len(finals) - 1) // 2
    print(f"discordant pairs of final losses: {disc} of {pairs}")

    from advisor.cli.plots import schedule_overlay
    schedule_overlay([(f"{s} ({'fit' if s in FIT else 'test'})", c.steps, c.loss,
                       predict_curve(fit, c), c.lrs) for s, c in curves.items()],
                     out / "overlay.png",
                     f"proxy w{args.width} d{args.depth}, {args.device}: {fit.law} law fitted "
                     f"on {' + '.join(FIT)}")
    print(f"wrote {out / 'overlay.png'}")
    return {"law": fit.law, "options": fit.options.label(), "rows": rows,
            "discordant_pairs": disc, "pairs": pairs}


def main(argv=None):
    args = parser().parse_args(argv)

    from calibration.train.data import load_data
    from advisor.runs.store import ResultsStore

    out = Path(args.out)
    store = ResultsStore.open_or_create(out / "store")
    try:
        specs = proxy_specs(args)
        train_missing(specs, store, load_data("stdlib"), args.device)
    finally:
        store.close()
    analyse(args, specs, out)


if __name__ == "__main__":
    main()
