"""Schedule laws on the curves of Schaipp et al. 2025 (124M model, SlimPajama, two peak LRs).

For each peak LR (5e-4, 2e-3) and each fit set (default: const_50000 + cos10_50000, the
question of issue 14; also that set plus lin0.2_50000, a 20% linear cooldown to zero; and
every curve, in-sample, to see how close a form can get at all), fit
with ``advisor schedule fit``'s code, then on every other curve at that peak LR report

* the relative error of the predicted final loss (last logged step, T - 200), mean and max;
* discordant pairs: pairs of curves with the same horizon whose final losses differ by at
  least 0.002 nats in the data and whose predicted order is the other way round;
* ``optimize``'s best linear cooldown fraction (WSD, linear to 0, scored at step T) at each
  horizon vs the data's best linear cooldown (lin0.1 .. lin0.9);
* the late-cooldown gain of a 40% linear cooldown at 15k steps: the predicted drop over
  steps T-400 -> T-200 (LR 6.7% -> 3.3% of the peak) next to the data's (its last 200
  logged steps), and over T-200 -> T (LR below 3.3%, not logged); and over every held-out
  decaying curve, the law's summed drop over the last logged window divided by the data's;
* the optimizer status (at_bounds) of the fit;

and, across peak LRs, the final-loss error of a law fitted at one peak LR asked about the
other's curves (``--peak-lr`` of the other).

    /work/venv/bin/python -m bench.bench_schedule_schaipp [--out table.md] [--laws cv,multipower,valley]

Results of each fit are cached under /tmp/bench_schedule_schaipp (delete to refit).
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import pickle
import time
from pathlib import Path

import numpy as np

from advisor.schedule.curves import load_csv
from advisor.schedule.fitting import FitOptions, fit_law, predict_curve
from advisor.schedule.lawfile import build_document, dump_schedule_law, load_schedule_law
from advisor.schedule.optimize import optimize
from advisor.schedule.select import CANDIDATES, select_and_fit

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "external" / "schaipp_lr_schedules"
LRS = ("0.0005", "0.002")
FIT_SETS = {"const+cos10": ("const_50000", "cos10_50000"),
            "const+cos10+lin0.2": ("const_50000", "cos10_50000", "lin0.2_50000"),
            "all (in-sample)": None}
HORIZONS = (15000, 25000, 35000, 50000)
CACHE = Path("/tmp/bench_schedule_schaipp")
#: The modules a fit depends on (the cache key hashes their source).
FIT_MODULES = ("curves", "fitting", "select", "multipower", "tissue", "valley")


def load_lr(lr: str, root: Path = ROOT) -> dict:
    """Every curve at one peak LR, read as a user's CSV (``advisor schedule fit`` path)."""
    d = root / f"124m_lr{lr}"
    return {p.stem: load_csv(p) for p in sorted(d.glob("*_*.csv")) if p.stem != "final_val"}


def horizon(name: str) -> int:
    return int(name.split("_")[1])


def fit(method: str, curves: list):
    """(FitResult, cv rows) for a method: 'cv' (advisor schedule fit --law auto),
    'cv-without-valley', or a law name (fitted with default options)."""
    if method == "cv":
        return select_and_fit(curves)
    if method == "cv-without-valley":            # the candidates before the valley law
        return select_and_fit(curves, [c for c in CANDIDATES if c[0] != "valley"])
    if "@" in method:                            # e.g. valley@0.6: forward area sum u^0.6
        law, rho = method.split("@")
        return fit_law(law, curves, FitOptions(rho=float(rho))), []
    return fit_law(method, curves, FitOptions()), []


def cached_fit(method, lr, set_name, curves):
    CACHE.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).resolve().parents[1] / "advisor" / "schedule"
    src = "".join((here / f"{m}.py").read_text() for m in FIT_MODULES)
    key = hashlib.sha1(f"{method}|{lr}|{set_name}|{src}".encode()).hexdigest()[:16]
    path = CACHE / f"{method}_{lr}_{set_name}_{key}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    t = time.perf_counter()
    out = fit(method, curves)
    out = (out[0], out[1], time.perf_counter() - t)
    path.write_bytes(pickle.dumps(out))
    return out


def final_metrics(pred: dict, true: dict, held) -> dict:
    rel = [abs(pred[n] - true[n]) / true[n] for n in held]
    pairs = [(a, b) for a, b in itertools.combinations(sorted(true), 2)
             if horizon(a) == horizon(b)]
    sep = [(a, b) for a, b in pairs if abs(true[a] - true[b]) >= 0.002]
    disc = [(a, b) for a, b in sep if np.sign(pred[a] - pred[b]) != np.sign(true[a] - true[b])]
    return {"mean": float(np.mean(rel)), "max": float(np.max(rel)),
            "worst": max(held, key=lambda n: abs(pred[n] - true[n]) / true[n]),
            "disc": len(disc), "sep": len(sep), "pairs": len(pairs)}


def best_linear_cooldowns(law, curves) -> dict:
    """{T: (optimize's best linear-to-0 cooldown, the data's)}, optimize scored at step T."""
    out = {}
    for T in HORIZONS:
        r = optimize(law, T)
        lin = [x for x in r.ranking if "shape=linear,final=0," in x.spec]
        law_cd = float(lin[0].spec.split(",")[0].split("=")[1])
        data = {float(n.split("_")[0][3:]): c.final_loss for n, c in curves.items()
                if n.startswith("lin") and horizon(n) == T and not n.startswith("lin0.994")}
        out[T] = (law_cd, min(data, key=data.get))
    return out


def late_gain(law, T=15000, cooldown=0.4) -> tuple[float, float]:
    """Predicted drops (nats) of a linear cooldown over steps T-400 -> T-200 (LR 6.7% -> 3.3%
    of the peak; the data's last 200 logged steps) and T-200 -> T (LR 3.3% -> 0; not
    logged)."""
    spec = f"wsd:cooldown={cooldown:g},shape=linear,final=0,warmup=300"
    from advisor.schedule.optimize import per_step_lrs
    lrs = per_step_lrs(spec, T, law.lr_scale)
    a, b, c = law.predict(lrs, np.array([T - 400, T - 200, T]))
    return float(a - b), float(b - c)


def data_late_drop(curves, name="lin0.4_15000") -> float:
    """The data's drop over the last 200 logged steps (T-400 -> T-200), nats."""
    c = curves[name]
    return float(c.loss[-2] - c.loss[-1])


def last_window_ratio(law, curves, fit_names) -> float:
    """Sum over every held-out decaying curve of the law's predicted drop over its last
    logged window (T-400 -> T-200, LR a few % of peak for decays to zero) divided by the
    same sum in the data: 1 is right, 2 means the law puts twice the measured gain there."""
    num = den = 0.0
    for n, c in curves.items():
        if n in fit_names or not c.has_annealing():
            continue
        p = law.predict(c.lrs, c.steps[-2:])
        num += float(p[0] - p[1])
        den += float(c.loss[-2] - c.loss[-1])
    return num / den


def law_of(fitres, curves, tag) -> object:
    doc = build_document(fitres, curves)
    p = dump_schedule_law(doc, CACHE / f"law_{tag}.yaml")
    return load_schedule_law(p)


def candidates_table(data, set_name="const+cos10", say=print):
    """Every cross-validation candidate fitted on one fit set: held-out final-loss errors,
    discordant pairs and optimizer status at each peak LR (what CV chooses from)."""
    say(f"| candidate (fit on {set_name}) | peak LR | mean / max | discordant | at bounds | "
        f"converged |")
    say("|---|---|---|---|---|---|")
    for law, opts in CANDIDATES:
        for lr in LRS:
            curves = data[lr]
            fs = FIT_SETS[set_name]
            f = fit_law(law, [curves[n] for n in fs], opts)
            pred = {n: float(predict_curve(f, c)[-1]) for n, c in curves.items()}
            fm = final_metrics(pred, {n: c.final_loss for n, c in curves.items()},
                               [n for n in curves if n not in fs])
            st = f.extra["status"]
            say(f"| {law} [{opts.label()}] | {lr} | {fm['mean']:.2%} / {fm['max']:.2%} | "
                f"{fm['disc']} of {fm['sep']} | {', '.join(st['at_bounds']) or '-'} | "
                f"{st['converged']} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="also write the markdown tables here")
    ap.add_argument("--laws", default="cv,multipower,valley",
                    help="comma list of methods: cv (law chosen by cross-validation), "
                         "cv-without-valley (the same, candidates as before the valley law), "
                         "multipower, tissue, valley, or LAW@RHO (e.g. valley@0.6: forward "
                         "area sum u^RHO)")
    ap.add_argument("--sets", default=",".join(FIT_SETS),
                    help="comma list of fit sets: " + ", ".join(FIT_SETS))
    ap.add_argument("--root", default=str(ROOT), help="the schaipp_lr_schedules folder")
    ap.add_argument("--candidates", action="store_true",
                    help="instead: every CV candidate fitted on const+cos10 (about 2 min)")
    args = ap.parse_args(argv)
    methods = args.laws.split(",")
    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    data = {lr: load_lr(lr, Path(args.root)) for lr in LRS}
    if args.candidates:
        candidates_table(data, say=say)
        if args.out:
            Path(args.out).write_text("\n".join(lines) + "\n")
        return
    fits = {}
    say("| peak LR | fit set | method (chosen) | final-loss error mean / max (worst curve) | "
        "discordant pairs (>= 0.002 nats apart) | best linear cooldown law / data at "
        "15k, 25k, 35k, 50k | lin0.4 at 15k, drop T-400 -> T-200 law / data; T-200 -> T law | "
        "last logged window, law / data (all held-out decays) | "
        "at bounds | fit s |")
    say("|---|---|---|---|---|---|---|---|---|---|")
    for lr in LRS:
        curves = data[lr]
        true = {n: c.final_loss for n, c in curves.items()}
        for set_name in args.sets.split(","):
            fs = FIT_SETS[set_name]
            if fs is None:               # every curve: how well can the form fit at all?
                fs = tuple(curves)
            fc = [curves[n] for n in fs]
            held = [n for n in curves if n not in fs] or list(curves)
            for m in methods:
                if m.startswith("cv") and len(fs) > 3:
                    continue             # leave-one-out over 30+ curves: too slow here
                res, rows, secs = cached_fit(m, lr, set_name, fc)
                fits[(lr, set_name, m)] = res
                pred = {n: float(predict_curve(res, c)[-1]) for n, c in curves.items()}
                fm = final_metrics(pred, true, held)
                law = law_of(res, fc, f"{lr}_{set_name}_{m}")
                cds = best_linear_cooldowns(law, curves)
                chosen = f"{res.law} [{res.options.label()}]"
                say(f"| {lr} | {set_name} | {m} ({chosen}) | {fm['mean']:.2%} / {fm['max']:.2%} "
                    f"({fm['worst']}) | {fm['disc']} of {fm['sep']} | "
                    + ", ".join(f"{a:g}/{b:g}" for a, b in cds.values())
                    + " | {0:.4f} / {2:.4f}; {1:.4f} | ".format(*late_gain(law),
                                                               data_late_drop(curves))
                    + f"{last_window_ratio(law, curves, fs):.2f} | "
                    + f"{', '.join(res.extra.get('status', {}).get('at_bounds', [])) or '-'} | "
                    f"{secs:.0f} |")
    say()
    say("Cross-LR: a law fitted at one peak LR, asked for the other's curves (final-loss "
        "error, mean / max over all curves at the other LR):")
    say()
    say("| fitted at | asked at | fit set | method | mean / max error | discordant |")
    say("|---|---|---|---|---|---|")
    for (lr, set_name, m), res in fits.items():
        if FIT_SETS[set_name] is None:
            continue
        other = LRS[1 - LRS.index(lr)]
        oc = data[other]
        pred = {n: float(predict_curve(res, c)[-1]) for n, c in oc.items()}
        true = {n: c.final_loss for n, c in oc.items()}
        fm = final_metrics(pred, true, list(oc))
        say(f"| {lr} | {other} | {set_name} | {m} ({res.law}) | {fm['mean']:.2%} / "
            f"{fm['max']:.2%} | {fm['disc']} of {fm['sep']} |")
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
