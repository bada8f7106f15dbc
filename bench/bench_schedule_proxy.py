"""Schedule laws on our own proxy runs: fit on two schedules, predict three others.

Trains a small muP proxy (calibration.train) under five LR schedules at one peak LR, stores
the runs in a results store (resumable: finished runs are not retrained), fits a schedule
law on constant + one long-decay schedule (cosine to 10%) read back from the store, and
predicts the final loss of WSD (20% 1-sqrt, 50% linear) and linear-to-zero runs. Writes a
table and an overlay plot (measured solid, predicted dashed, LR on a second axis).

    /work/venv/bin/python bench/bench_schedule_proxy.py --device cpu --out /tmp/sched_proxy
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


def main(argv=None):
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
    args = ap.parse_args(argv)

    from advisor.schedule.curves import load_store
    from advisor.schedule.fitting import FitOptions, curve_errors, predict_curve
    from advisor.schedule.select import CANDIDATES, select_and_fit
    from calibration.data import load_data
    from calibration.store import ResultsStore
    from calibration.train import RunSpec, train_run

    out = Path(args.out)
    store = ResultsStore.open_or_create(out / "store")
    data = load_data("stdlib")
    specs = {}
    for sched in FIT + TEST:
        spec = f"{sched}{',' if ':' in sched else ':'}warmup={args.warmup}"
        specs[sched] = RunSpec(width=args.width, depth=args.depth, lr=args.lr,
                               batch_size=args.batch, seq_len=args.seq,
                               tokens=args.batch * args.seq * args.steps, schedule=spec,
                               eval_interval=args.eval_interval, eval_sequences=32,
                               compile="never")
    done = store.final_ids()
    for sched, spec in specs.items():
        if spec.run_id in done:
            print(f"{sched}: already in the store", flush=True)
            continue
        t = time.perf_counter()
        r = train_run(spec, data, device=args.device)
        store.record_result(r)
        print(f"{sched}: {r.status} in {time.perf_counter() - t:.0f} s, final train loss "
              f"{r.final_train_loss:.4f} {r.error[:200]}", flush=True)

    curves = {s: load_store(out / "store", run_ids=[specs[s].run_id])[0] for s in specs}
    fit_curves = [curves[s] for s in FIT]
    cands = CANDIDATES if args.law == "auto" else [(args.law, FitOptions())]
    fit, rows = select_and_fit(fit_curves, cands)
    print(f"\nlaw: {fit.law} [{fit.options.label()}] fitted on {', '.join(FIT)}")
    print("| schedule | role | mean rel err | final rel err | final measured | final predicted |")
    print("|---|---|---|---|---|---|")
    finals = {}
    for s, c in curves.items():
        e = curve_errors(fit, c)
        finals[s] = (e["final_true"], e["final_pred"])
        print(f"| {s} | {'fit' if s in FIT else 'test'} | {e['mean_rel']:.3%} | "
              f"{e['final_rel']:+.3%} | {e['final_true']:.4f} | {e['final_pred']:.4f} |")
    disc = sum(1 for a, b in itertools.combinations(finals, 2)
               if np.sign(finals[a][0] - finals[b][0]) != np.sign(finals[a][1] - finals[b][1]))
    print(f"discordant pairs of final losses: {disc} of {len(finals) * (len(finals) - 1) // 2}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.8))
    ax2 = ax.twinx()
    for i, (s, c) in enumerate(curves.items()):
        ax.plot(c.steps, c.loss, color=f"C{i}", lw=1, label=f"{s} ({'fit' if s in FIT else 'test'})")
        ax.plot(c.steps, predict_curve(fit, c), color=f"C{i}", lw=1, ls="--")
        ax2.plot(np.arange(len(c.lrs)), c.lrs, color=f"C{i}", lw=0.6, alpha=0.35)
    lo = min(c.loss.min() for c in curves.values())
    ax.set_ylim(lo - 0.05, lo + 0.6)
    ax.set_xlabel("step")
    ax.set_ylabel("train loss (nats); dashed: law")
    ax2.set_ylabel("learning rate")
    ax.legend(fontsize=7)
    ax.set_title(f"proxy w{args.width} d{args.depth}, {args.device}: {fit.law} law fitted on "
                 f"{' + '.join(FIT)}", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "overlay.png", dpi=120)
    print(f"wrote {out / 'overlay.png'}")


if __name__ == "__main__":
    main()
