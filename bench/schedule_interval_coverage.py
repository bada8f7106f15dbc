"""Coverage of the interval of `advisor schedule predict` on held-out public curves (docs/schedules.md).

How often the printed interval of a predicted final loss (advisor/schedule/uncertainty.py)
holds the measured one, used as a user uses it:

1. **Schaipp et al. 2025, 124M at peak LR 5e-4 and 2e-3** (the fit set of table C of
   docs/run.md): ``advisor schedule fit const_50000.csv --curve cos10_50000.csv --law L`` at
   one peak LR, then ``advisor schedule predict`` for each of the other 30 / 32 schedules
   (its spec rebuilt from the curve's name, the run's own horizon, one CSV row per logged
   step). The measured final loss is the last logged one (step T - 200), compared with the
   CSV's predicted_loss, lo and hi at that step (the interval of a run of T - 200 steps
   with the schedule's first LRs). This data also set SHAPE_REL, so this part
   checks that the product reproduces the measurement, not that the rule generalises.
2. **Luo et al. 2025's multi-power curves, 25M / 100M / 400M** (not used for SHAPE_REL;
   their 72k runs fed HORIZON_REL through table B): ``advisor schedule fit FOLDER --law L``
   (the authors' training split: constant_24000, cosine_24000, wsdcon_9), then each test
   curve's schedule (per-step LRs, which the spec language cannot write: wsdcon drops, the
   authors' WSD shapes) through the library: the law's loss at the last logged step and
   :func:`advisor.schedule.uncertainty.schedule_interval` of the schedule's LRs up to that
   step, the interval the CSV's lo/hi columns give at a step.

    nice -n 10 python -m bench.schedule_interval_coverage [--data shared/data/external]
        [--laws auto,valley,multipower,tissue]
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.bench_run_forecast import FIT_SET      # the fit set of table C

LAWS = "auto,valley,multipower,tissue"


def spec_of(name: str) -> str:
    """The `parse_schedule` spec of a Schaipp curve from its name (shared/data/external's
    README: every run warms up linearly over 300 steps; linF / sqrtF: WSD with a linear /
    1-sqrt cooldown over the last fraction F, to 0; cos0 / cos10: cosine to 0 / 10%)."""
    s = name.rsplit("_", 1)[0]
    if s == "const":
        return "constant:warmup=300"
    if s in ("cos0", "cos10"):
        return f"cosine:final={0 if s == 'cos0' else 0.1},warmup=300"
    if s.startswith("lin"):
        return f"wsd:cooldown={s[3:]},shape=linear,final=0,warmup=300"
    if s.startswith("sqrt"):
        return f"wsd:cooldown={s[4:]},shape=1-sqrt,final=0,warmup=300"
    raise ValueError(f"unknown Schaipp schedule {name}")


def cli(*args) -> str:
    r = subprocess.run([sys.executable, "-m", "advisor.cli", *args], capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise SystemExit(f"advisor {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def chosen(fit_out: str) -> str:
    return fit_out.split("chosen: ", 1)[1].split(", fitted", 1)[0]


def summary(rows) -> dict:
    err = np.array([abs(r["err"]) for r in rows])
    rel = np.array([r["rel"] for r in rows])
    kinds = {}
    for r in rows:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    return {"n": len(rows), "inside": sum(r["ok"] for r in rows), "max_err": err.max(),
            "mean_err": err.mean(), "rel_lo": rel.min(), "rel_hi": rel.max(), "kinds": kinds,
            "outside": [r["name"] for r in rows if not r["ok"]]}


def schaipp(root: Path, law: str, lr: str, work: Path):
    from advisor.schedule.curves import load_csv

    d = root / "schaipp_lr_schedules" / f"124m_lr{lr}"
    lf = work / f"{law}_{lr}.yaml"
    label = chosen(cli("schedule", "fit", str(d / "const_50000.csv"), "--curve",
                       str(d / "cos10_50000.csv"), "--law", law, "--out", str(lf)))
    rows = []
    for p in sorted(d.glob("*_*.csv")):
        if p.stem == "final_val" or p.stem in FIT_SET:
            continue
        c = load_csv(p)
        T = int(p.stem.rsplit("_", 1)[1])
        out = work / "p.csv"
        text = cli("schedule", "predict", "--law", str(lf), "--schedule", spec_of(p.stem),
                   "--steps", str(T), "--csv", str(out), "--no-plot", "--points",
                   str(T // 200 + 1))
        at = {int(r["step"]): r for r in csv.DictReader(open(out))}[int(c.steps[-1])]
        y, lo, hi = (float(at[k]) for k in ("predicted_loss", "lo", "hi"))
        kind = ("in-sample" if "schedule and horizon of fitted" in text else
                "horizon" if "schedule of fitted curve" in text else "shape")
        rows.append({"name": p.stem, "err": y / c.final_loss - 1, "rel": hi / y - 1,
                     "ok": lo <= c.final_loss <= hi, "kind": kind})
    return label, rows


def multipower(root: Path, law: str, size: str, work: Path):
    from advisor.schedule.curves import MP_TEST, load_multipower_size
    from advisor.schedule.lawfile import load_schedule_law
    from advisor.schedule.uncertainty import schedule_interval

    folder = root / "multipower_loss_curves" / size
    lf = work / f"mp_{law}_{size}.yaml"
    label = chosen(cli("schedule", "fit", str(folder), "--law", law, "--out", str(lf)))
    L = load_schedule_law(lf)
    curves = load_multipower_size(size, names=MP_TEST, root=root / "multipower_loss_curves")
    rows = []
    for n in MP_TEST:
        c = curves[n]
        last = int(c.steps[-1])
        y = float(L.predict(c.lrs, np.array([last]))[0])
        iv = schedule_interval(L, c.lrs[: last + 1] / L.lr_scale, last, y)
        rows.append({"name": n, "err": y / c.final_loss - 1, "rel": iv.rel, "kind": iv.kind,
                     "ok": iv.contains(c.final_loss)})
    return label, rows


def line(setup, law, label, s) -> str:
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(s["kinds"].items()))
    out = ", ".join(s["outside"]) or "none"
    return (f"| {setup} | {law} ({label}) | {s['inside']} of {s['n']} | "
            f"{s['mean_err']:.2%} / {s['max_err']:.2%} | +-{s['rel_lo']:.2%} to "
            f"+-{s['rel_hi']:.2%} | {kinds} | {out} |")


def main(argv=None):
    from bench.bench_run_forecast import DATA

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA), help="shared/data/external")
    ap.add_argument("--laws", default=LAWS)
    args = ap.parse_args(argv)
    root = Path(args.data)
    print("| held out | law (chosen) | inside the interval | error mean / max | half-width | "
          "interval kinds | outside |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for lr in ("0.0005", "0.002"):
            for law in args.laws.split(","):
                label, rows = schaipp(root, law, lr, work)
                print(line(f"124M lr {lr}: {len(rows)} schedules", law, label,
                           summary(rows)), flush=True)
        for size in ("25M", "100M", "400M"):
            for law in args.laws.split(","):
                label, rows = multipower(root, law, size, work)
                print(line(f"mp {size}: the authors' 6 test curves", law, label,
                           summary(rows)), flush=True)


if __name__ == "__main__":
    main()
