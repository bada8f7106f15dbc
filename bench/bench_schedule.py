"""Schedule laws on the curves of Luo et al. 2025: paper-split errors and final losses.

For each size (25M, 100M, 400M): fit on the authors' split (cosine_24000, constant_24000,
wsdcon_9), predict the six test curves, and report

* mean / worst relative error over the test points (worst = mean over curves of each
  curve's max, the authors' "WorstE"),
* the relative error of each test curve's FINAL loss, and whether the predicted final
  losses of all nine schedules are in the data's order (discordant pairs),
* the predicted vs measured WSD-over-cosine gain (wsd_20000_24000 vs cosine_24000, nats),

for: the authors' published constants (thu-yao-01-luo/MultiPowerLaw, src/config.py),
our fits of both laws, and "ours" (law and fitting procedure chosen by cross-validation on
the training curves only). Also: the time to fit a 10,000-point curve.

    PYTHONPATH=. /work/venv/bin/python -m bench.bench_schedule [--out table.md]
"""
from __future__ import annotations

import argparse
import itertools
import platform
import time

import numpy as np

from advisor.schedule import multipower as mp
from advisor.schedule.curves import MP_SIZES, MP_TEST, MP_TRAIN, Curve, load_multipower_size
from advisor.schedule.fitting import FitOptions, fit_law, predict_curve
from advisor.schedule.select import select_and_fit

#: Published constants [L0, A, alpha, B, C, beta, gamma] on absolute LRs (authors' repo).
AUTHORS = {
    "25M": [3.04045406, 0.52468604, 0.50786857, 363.78751622, 2.06560812, 0.58279013, 0.64142257],
    "100M": [2.6514477, 0.60115152, 0.45295811, 437.9464276, 2.13245612, 0.59785199, 0.65523644],
    "400M": [2.37474466, 0.65421216, 0.42878731, 523.42464371, 2.02462735, 0.59350493, 0.63472457],
}


#: The best variant we found by looking at test errors; reported only to show how far the
#: form can go, never used to make a claim or a recommendation.
ORACLE = FitOptions(rho=0.6, fix=(("beta", 0.6), ("gamma", 0.65)), skip=0.2)


def authors_predict(size, curve: Curve):
    th = mp.params_from_raw(AUTHORS[size], 3e-4)
    return mp.predict(th, mp.make_plan(curve.lrs / 3e-4, curve.steps, warmup_in_ld=True))


def evaluate(predict, curves: dict) -> dict:
    preds = {n: predict(c) for n, c in curves.items()}
    rel = {n: np.abs(preds[n] - curves[n].loss) / curves[n].loss for n in MP_TEST}
    final = {n: float((preds[n][-1] - curves[n].loss[-1]) / curves[n].loss[-1])
             for n in curves}
    names = list(curves)
    disc = sum(1 for a, b in itertools.combinations(names, 2)
               if np.sign(preds[a][-1] - preds[b][-1]) != np.sign(curves[a].loss[-1] - curves[b].loss[-1]))
    gain_pred = preds["cosine_24000"][-1] - preds["wsd_20000_24000"][-1]
    gain_true = curves["cosine_24000"].loss[-1] - curves["wsd_20000_24000"].loss[-1]
    return {"mean": float(np.mean([r.mean() for r in rel.values()])),
            "worst": float(np.mean([r.max() for r in rel.values()])),
            "final": final, "max_final": max(abs(final[n]) for n in MP_TEST),
            "discordant": disc, "gain_pred": float(gain_pred), "gain_true": float(gain_true)}


def fit_time_10k(repeats=3) -> dict:
    """Seconds to fit one 10,000-point curve: the 25M cosine_24000 curve interpolated to
    10,000 evenly spaced logged steps (real shape, denser logging)."""
    c = load_multipower_size("25M", ["cosine_24000"])["cosine_24000"]
    st = np.unique(np.linspace(c.steps[0], c.steps[-1], 10_000).round().astype(np.int64))
    big = Curve(name="cosine_10k", lrs=c.lrs, steps=st, loss=np.interp(st, c.steps, c.loss))
    out = {}
    for label, law, opts in (("multipower", "multipower", FitOptions()),
                             ("multipower, beta/gamma fixed", "multipower",
                              FitOptions(fix=(("beta", 0.6), ("gamma", 0.65)))),
                             ("tissue", "tissue", FitOptions())):
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            fit_law(law, [big], opts)
            ts.append(time.perf_counter() - t)
        out[label] = min(ts)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="also write the markdown tables here")
    args = ap.parse_args(argv)
    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    say(f"machine: {platform.processor() or platform.machine()}, CPU only")
    for size in MP_SIZES:
        curves = load_multipower_size(size)
        train = [curves[n] for n in MP_TRAIN]
        t0 = time.perf_counter()
        ours, cv = select_and_fit(train)
        t_sel = time.perf_counter() - t0
        methods = {
            "multi-power, authors' constants": lambda c: authors_predict(size, c),
            "multi-power, our fit": (lambda f: lambda c: predict_curve(f, c))(
                fit_law("multipower", train)),
            "Tissue, our fit": (lambda f: lambda c: predict_curve(f, c))(
                fit_law("tissue", train)),
            "valley (ours), our fit": (lambda f: lambda c: predict_curve(f, c))(
                fit_law("valley", train)),
            f"ours (chosen by CV on the training curves: {ours.law} [{ours.options.label()}])":
                lambda c: predict_curve(ours, c),
            "variant picked by looking at the test curves (not a valid selection): "
            "multipower [rho=0.6, beta=0.6, gamma=0.65, skip=0.2]":
                (lambda f: lambda c: predict_curve(f, c))(fit_law("multipower", train, ORACLE)),
        }
        say()
        say(f"### {size} (fit on {', '.join(MP_TRAIN)}; CV selection took {t_sel:.1f} s)")
        say()
        head = "| model | mean rel err | worst | " + " | ".join(
            f"final {n}" for n in MP_TEST) + " | max final | discordant pairs (of 36) | WSD-over-cosine gain pred / true |"
        say(head)
        say("|" + "---|" * (head.count("|") - 1))
        for label, pred in methods.items():
            r = evaluate(pred, curves)
            say(f"| {label} | {r['mean']:.3%} | {r['worst']:.3%} | " +
                " | ".join(f"{r['final'][n]:+.2%}" for n in MP_TEST) +
                f" | {r['max_final']:.2%} | {r['discordant']} | "
                f"{r['gain_pred']:.3f} / {r['gain_true']:.3f} |")
    say()
    say("### Fit time, one 10,000-point curve (best of 3)")
    say()
    for k, v in fit_time_10k().items():
        say(f"- {k}: {v:.2f} s")
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
