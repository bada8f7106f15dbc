"""Choosing a law and a fitting procedure by cross-validation, not by in-sample fit.

Candidates are (law, fit options) pairs. Each is scored on folds built from the fit curves:

* leave one curve out: fit on the others (when they still show annealing), predict the
  held-out curve;
* truncation: fit on the first 60% of every curve's logged points, predict the remaining
  40% (a check of extrapolation in length, which a longer production run needs);
* horizon, when the curves differ in length: fit on the curves shorter than 75% of the
  longest, predict the longest ones (how a law is used: fitted on short runs, asked about a
  long one). On the multi-power training split (16k and 24k curves) it did not change
  the choice at any size (docs/run.md).

A fold's score is the mean relative error over the held-out points plus the absolute
relative error at each held-out curve's last point (the final loss is what a schedule
choice rests on). The candidate with the lowest mean score is refitted on all curves.

Why the choice is made on the user's own curves, not fixed from other data: on Schaipp et
al.'s 124M runs (docs/run.md, table C), the form that predicts the other schedules best
flips with the peak LR (multi-power rho 0.6 at 5e-4, valley rho 0.6 at 2e-3), so a form
chosen on other data or another LR picks the wrong one at one of them (max error 1.24% /
2.45%). This cross-validation on the two fit curves at each LR picked the best form in
hindsight at both (0.31% / 0.62%).
"""
from __future__ import annotations

import numpy as np

from advisor.errors import AdvisorError
from advisor.schedule.curves import Curve
from advisor.schedule.fitting import FitOptions, fit_law, predict_curve

#: Default candidates. The multi-power law with beta, gamma held at 0.6, 0.65 (about what
#: Luo et al. 2025 fit at 25M-400M) has 5 free constants instead of 7, for small fit sets.
#: rho < 1 is our variant (forward area sum eta^rho, see multipower.make_plan); skip=0.2
#: leaves the first 20% of each curve (the post-warmup transient) out of the fit. The valley
#: law (ours, see valley.py) with rho 1 and 0.6: on Schaipp et al.'s curves at peak LR 2e-3,
#: fitted on constant + cosine-to-10%, it predicts the other final losses to 0.19% where the
#: earlier choice gave 4.49% (docs/schedules.md).
_FIXED = (("beta", 0.6), ("gamma", 0.65))
CANDIDATES = (
    ("multipower", FitOptions()),
    ("multipower", FitOptions(fix=_FIXED)),
    ("tissue", FitOptions()),
    ("multipower", FitOptions(rho=0.8)),
    ("multipower", FitOptions(rho=0.6)),
    ("multipower", FitOptions(rho=0.8, fix=_FIXED)),
    ("multipower", FitOptions(rho=0.6, fix=_FIXED)),
    ("multipower", FitOptions(rho=0.6, fix=_FIXED, skip=0.2)),
    ("multipower", FitOptions(rho=0.8, fix=_FIXED, skip=0.2)),
    ("valley", FitOptions()),
    ("valley", FitOptions(rho=0.6)),
)


#: The horizon fold holds out the curves at least this fraction of the longest one's length.
HORIZON_HOLDOUT = 0.75


def _truncate(c: Curve, frac: float) -> Curve | None:
    n = max(3, int(round(len(c.steps) * frac)))
    if n >= len(c.steps):
        return None
    return Curve(name=c.name, lrs=c.lrs, steps=c.steps[:n], loss=c.loss[:n], source=c.source,
                 meta=c.meta)


def folds(curves: list[Curve], trunc: float = 0.6) -> list[tuple[str, list[Curve], list]]:
    """(label, fit curves, [(held-out curve, index of first held-out point)]) per fold."""
    out = []
    if len(curves) >= 2:
        for i, c in enumerate(curves):
            rest = curves[:i] + curves[i + 1:]
            if any(r.has_annealing() for r in rest):
                out.append((f"leave out {c.name}", rest, [(c, 0)]))
    short = [_truncate(c, trunc) for c in curves]
    if all(s is not None for s in short) and any(s.has_annealing() for s in short):
        out.append((f"first {trunc:.0%} of each curve", short,
                    [(c, len(s.steps)) for c, s in zip(curves, short)]))
    ends = [int(c.steps[-1]) for c in curves]
    shorter = [c for c, e in zip(curves, ends) if e < HORIZON_HOLDOUT * max(ends)]
    longest = [c for c, e in zip(curves, ends) if e >= HORIZON_HOLDOUT * max(ends)]
    if shorter and any(c.has_annealing() for c in shorter):
        out.append(("hold out the longest curves", shorter, [(c, 0) for c in longest]))
    return out


def score_fit(fit, held) -> dict:
    errs, finals = [], []
    for c, start in held:
        pred = predict_curve(fit, c)
        rel = np.abs(pred - c.loss) / c.loss
        errs.append(rel[start:])
        finals.append(abs(pred[-1] - c.loss[-1]) / c.loss[-1])
    mean_rel = float(np.concatenate(errs).mean())
    final = float(np.mean(finals))
    return {"mean_rel": mean_rel, "final_rel": final, "score": mean_rel + final}


def cross_validate(curves: list[Curve], candidates=CANDIDATES, progress=None) -> list[dict]:
    """Score every candidate on every fold; rows sorted best first."""
    fl = folds(curves)
    if not fl:
        raise AdvisorError("cannot cross-validate: need two curves, or curves long enough to "
                           "hold out their last 40%")
    rows = []
    for law, opts in candidates:
        per = []
        for label, fit_curves, held in fl:
            try:
                fit = fit_law(law, fit_curves, opts)
                s = score_fit(fit, held)
            except AdvisorError as exc:
                s = {"mean_rel": float("nan"), "final_rel": float("nan"),
                     "score": float("inf"), "error": str(exc)}
            per.append(dict(s, fold=label))
            if progress:
                progress(f"cv {law} [{opts.label()}] {label}: " + (
                    f"score {s['score']:.4%}" if np.isfinite(s["score"])
                    else f"failed ({s.get('error', 'no score')})"))
        scores = [p["score"] for p in per]
        rows.append({"law": law, "options": opts, "label": f"{law} [{opts.label()}]",
                     "score": float(np.mean(scores)),
                     "mean_rel": float(np.nanmean([p["mean_rel"] for p in per])),
                     "final_rel": float(np.nanmean([p["final_rel"] for p in per])),
                     "folds": per})
    rows.sort(key=lambda r: r["score"])
    return rows


def select_and_fit(curves: list[Curve], candidates=CANDIDATES, progress=None):
    """Cross-validate, then refit the winner on all curves. Returns (FitResult, cv rows)."""
    if len(candidates) == 1:
        law, opts = candidates[0]
        return fit_law(law, curves, opts), []
    rows = cross_validate(curves, candidates, progress)
    best = rows[0]
    if not np.isfinite(best["score"]):
        raise AdvisorError("no candidate law could be fitted on the cross-validation folds")
    return fit_law(best["law"], curves, best["options"]), rows
