"""Model averaging across schedule-law forms, weighted by cross-validation (issue 27).

Instead of refitting only the form that :func:`advisor.schedule.select.cross_validate`
ranks first, every candidate with a finite cross-validation score is refitted on all the
curves, and the prediction is their weighted mean. The weights are inversely proportional
to the square of each candidate's score (the mean held-out relative error plus the
final-point error, :func:`advisor.schedule.select.score_fit`): the classical combination
of forecasts with weights inverse to their mean squared error (Bates and Granger 1969).
It has no constant to tune. A candidate that fails on a fold, or on the refit, gets no
weight; the others are renormalised.

The interval is widened by the disagreement of the forms: :meth:`Ensemble.interval` adds
twice the weighted standard deviation of the members' predictions to a relative
half-width the caller supplies (its own extrapolation allowance). Where the forms agree the
interval is the caller's; where they disagree, it says so.

Measured against choosing the single best form (`auto`) on held-out public curves
(docs/run.md, table D): it loses where the goal is decided. At a held-out peak LR of 2e-3
the average misses other schedules' finals by up to 2.77% (p = 2) against `auto`'s 0.62%:
the two fit curves score the forms within about 15% of each other, so forms that miss
short cooldowns keep much of the weight. It does cut the worst case of shorter -> longer
horizons (max over five sets 0.96% -> 0.69%), and its spread covers the truth where the
forms disagree. No command uses it; ``schedule fit --law auto`` keeps the single best.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from advisor.errors import AdvisorError
from advisor.schedule.fitting import FitResult, fit_law, predict_curve

#: Width of the spread term, in weighted standard deviations of the members' predictions.
SPREAD_Z = 2.0
#: Default power of the weights, 1 / score**POWER (Bates and Granger's inverse MSE).
POWER = 2.0


def cv_weights(scores, power: float = POWER) -> np.ndarray:
    """Weights proportional to 1 / score**power over the finite, positive scores (others 0);
    they sum to 1. ``power`` inf puts all the weight on the lowest score (the single form
    `auto` picks). Raises AdvisorError when no score is usable."""
    s = np.asarray(scores, dtype=np.float64)
    ok = np.isfinite(s) & (s > 0)
    if not ok.any():
        raise AdvisorError("no candidate law has a finite cross-validation score to weight")
    w = np.zeros_like(s)
    if np.isinf(power):
        w[np.flatnonzero(ok)[np.argmin(s[ok])]] = 1.0
        return w
    w[ok] = (s[ok] / s[ok].min()) ** -power
    return w / w.sum()


@dataclass(frozen=True)
class Ensemble:
    """Fitted members and their weights (summing to 1); labels name each member."""
    members: tuple[FitResult, ...]
    weights: tuple[float, ...]
    labels: tuple[str, ...]

    def member_predictions(self, curve_or_lrs, steps=None) -> np.ndarray:
        """(members, points) array of each member's predicted loss."""
        return np.stack([predict_curve(f, curve_or_lrs, steps) for f in self.members])

    def predict(self, curve_or_lrs, steps=None) -> np.ndarray:
        """The weighted mean of the members' predicted losses (nats)."""
        return np.asarray(self.weights) @ self.member_predictions(curve_or_lrs, steps)

    def spread(self, curve_or_lrs, steps=None) -> np.ndarray:
        """Weighted standard deviation of the members' predictions around the mean (nats)."""
        p = self.member_predictions(curve_or_lrs, steps)
        w = np.asarray(self.weights)[:, None]
        mean = (w * p).sum(axis=0)
        return np.sqrt((w * (p - mean) ** 2).sum(axis=0))

    def interval(self, curve_or_lrs, steps=None, rel: float = 0.0):
        """(mean, lo, hi): half-width ``rel`` x mean plus SPREAD_Z x the spread."""
        p = self.member_predictions(curve_or_lrs, steps)
        w = np.asarray(self.weights)[:, None]
        mean = (w * p).sum(axis=0)
        half = rel * mean + SPREAD_Z * np.sqrt((w * (p - mean) ** 2).sum(axis=0))
        return mean, mean - half, mean + half


def best_per_form(rows) -> list[dict]:
    """The best-scoring row of each law (form), best first: an average over forms rather
    than over fitting variants (select.CANDIDATES holds 8 multi-power variants of 11)."""
    out = {}
    for r in sorted(rows, key=lambda r: r["score"]):
        out.setdefault(r["law"], r)
    return list(out.values())


def average_fits(curves, rows, fit=fit_law, progress=None, power: float = POWER) -> Ensemble:
    """Refit every candidate of the cross-validation ``rows`` (select.cross_validate) that
    has a finite score on ``curves`` and weight them by :func:`cv_weights`. ``fit`` is the
    fitter (law, curves, options) -> FitResult."""
    w = cv_weights([r["score"] for r in rows], power)
    members, weights, labels = [], [], []
    for r, wi in zip(rows, w):
        if wi <= 0:
            continue
        try:
            f = fit(r["law"], curves, r["options"])
        except AdvisorError as exc:
            if progress:
                progress(f"ensemble: {r['label']} dropped, its refit failed ({exc})")
            continue
        members.append(f)
        weights.append(wi)
        labels.append(r["label"])
    if not members:
        raise AdvisorError("no candidate law could be refitted for the average")
    total = float(np.sum(weights))
    return Ensemble(tuple(members), tuple(float(x) / total for x in weights), tuple(labels))


def select_and_average(curves, candidates=None, progress=None):
    """Cross-validate the candidates (default: select.CANDIDATES), then average them.
    Returns (Ensemble, cv rows)."""
    from advisor.schedule.select import CANDIDATES, cross_validate
    rows = cross_validate(curves, CANDIDATES if candidates is None else candidates, progress)
    return average_fits(curves, rows, progress=progress), rows
