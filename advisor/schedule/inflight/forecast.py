"""The schedule law fitted on a run's curve so far, and the loss it predicts (with intervals).

Three ways to a model of the run, by what is known:

* **a prior law** (``--law``, a schedule law fitted with ``advisor schedule fit`` on pilot
  runs of the same setup): its exponents and time constants are kept and its level
  (L0, A, and the annealing amplitude where the curve shows annealing) is re-fitted on the
  run (:func:`fit_anchored`); the prior sees the schedule relative to the run's peak LR;
* **no prior, the LR has already decayed** (a cosine run under way, a WSD run in its cooldown): the
  law (:data:`FORM`, chosen by how it extrapolates, docs/run.md) is fitted on the curve
  itself, annealing term included;
* **no prior, constant LR so far** (a WSD run in its stable phase): the annealing term is
  not identifiable from the curve. The curve gives the progress at constant LR,
  ``L(t) = Lc + A S(t)^-alpha`` (S = LR area), which predicts a constant continuation.
  Predictions that need a decay come from the *shipped prior* (``fallback``:
  recipes/schedule/prior.yaml, :func:`shipped_prior`, a law of another setup) re-levelled
  on the run, with its own wide interval (``EXTRAP_REL["shipped"]``); without one they are
  refused with the reason (:class:`NotPredictable`).

Intervals: a relative half-width that grows with how far the prediction reaches beyond
the last logged step, ``EXTRAP_REL[kind]`` per doubling of the step (at least a quarter of
that), set from the held-out errors of bench/bench_run_forecast.py (docs/run.md), plus
twice the standard error of the level over the last logged points. ``EXTRAP_REL`` and the
per-doubling rule live in :mod:`advisor.schedule.uncertainty` with the intervals of
``advisor schedule predict / optimize``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from advisor.errors import AdvisorError
from advisor.schedule.curves import Curve
from advisor.schedule.fitting import FitOptions, fit_law, predict_curve, status_warnings
from advisor.schedule.forms import FORMS
# EXTRAP_REL: the per-doubling allowances of the models here (table A of docs/run.md); they
# and the doubling rule live with the other schedule-law intervals.
from advisor.schedule.uncertainty import EXTRAP_REL, doublings, per_doubling

#: The law and fitting procedure fitted on a run with no prior: the candidate whose
#: first-half -> end predictions had the lowest mean of max errors over the five data sets
#: (bench/bench_run_forecast.py, table A of docs/run.md: tissue 0.80%, tissue late1 0.85%,
#: valley 1.40%). ("auto", None) cross-validates on the curve instead (select.py); the
#: bench measures it (4.4%: one curve gives it only a truncation fold).
FORM = ("tissue", FitOptions())
#: The form fitted where FORM is "auto" and the curve so far gives cross-validation no
#: fold (its LR decayed only in the last 40% of the log).
FALLBACK_FORM = ("tissue", FitOptions())
ALPHAS = np.linspace(0.05, 1.5, 59)
#: The prior's level is matched on this last fraction of the logged points (after warmup).
LEVEL_FRAC = 0.2


class NotPredictable(Exception):
    """A prediction the data cannot support; the message says why (printed, not raised)."""


@dataclass
class Model:
    """The fitted model of one run (see module docstring). ``kind``: 'anchored' (a prior
    law re-levelled on the run), 'law' (fitted on the run), 'progress' (constant LR so far,
    no prior)."""

    kind: str
    peak: float
    now: int
    lrs_so_far: np.ndarray
    fit: object = None                    # FitResult for kind 'law'
    theta: np.ndarray | None = None       # the prior's constants, re-levelled: kind 'anchored'
    progress: tuple | None = None         # (Lc, A, alpha) for kind 'progress'
    prior: object = None                  # ScheduleLaw, optional
    sigma: float = 0.0                    # robust relative residual scale of the fit
    n_tail: int = 1                       # logged points that set the level (last 20%)
    warnings: list = field(default_factory=list)
    fallback: object = None               # the shipped prior (ScheduleLaw), kind 'progress'
    fallback_theta: np.ndarray | None = None   # its constants re-levelled on the run

    def in_sample(self, steps) -> np.ndarray:
        """The model's loss at logged ``steps`` (<= now), under the LR so far."""
        return self._predict(self.lrs_so_far, np.asarray(steps, dtype=np.int64))[0]

    def _progress_loss(self, lrs, steps):
        Lc, A, alpha = self.progress
        S = np.cumsum(np.clip(lrs / self.peak, 0.0, None))[steps]
        return Lc + A * np.maximum(S, 1e-12) ** -alpha

    def _predict(self, lrs, steps):
        """(losses, the kind of model that gave them: sets the interval)."""
        if self.kind == "law":
            return predict_curve(self.fit, lrs, steps), "law"
        if self.kind == "anchored":
            return _prior_loss(self.prior, self.theta, lrs, self.peak, steps), "anchored"
        if np.allclose(lrs[self.now:], lrs[self.now], rtol=1e-6, atol=0):
            return self._progress_loss(lrs, steps), "progress"
        if self.fallback is not None:
            return _prior_loss(self.fallback, self.fallback_theta, lrs, self.peak,
                               steps), "shipped"
        raise NotPredictable("the LR has been constant so far, so the gain of a decay "
                             "cannot be read from this curve: give --law, a schedule law "
                             "fitted (advisor schedule fit) on pilot runs of this setup that "
                             "include a decay")

    def predict(self, lrs, step: int) -> dict:
        """Final loss at ``step`` for absolute per-step LRs ``lrs`` (index = step; their
        first ``now + 1`` entries must be the run's), with its interval."""
        lrs = np.asarray(lrs, dtype=np.float64)
        if len(lrs) <= step:
            raise AdvisorError(f"internal: LRs up to step {len(lrs) - 1}, asked for {step}")
        ys, kind = self._predict(lrs, np.array([int(step)]))
        y = float(ys[0])
        if not math.isfinite(y) or y <= 0:
            raise NotPredictable("the fitted law gives no finite positive loss there")
        h = half_width(kind, self.now, int(step), self.sigma / math.sqrt(self.n_tail))
        return {"step": int(step), "loss": y, "lo": y * (1 - h), "hi": y * (1 + h),
                "rel_halfwidth": h, "model": kind}


def _prior_loss(prior, theta, lrs, peak, steps) -> np.ndarray:
    """A prior law's loss with its constants ``theta``, the schedule relative to ``peak``."""
    return FORMS[prior.law].predict(theta, np.asarray(lrs) / peak, steps, rho=prior.rho,
                                    lam=prior.lam)


#: The shipped prior's file in the recipes package (bench/schedule_prior.py writes it).
SHIPPED_PRIOR = ("schedule", "prior.yaml")


def shipped_prior():
    """The shipped prior schedule law (recipes/schedule/prior.yaml, a
    :class:`~advisor.schedule.lawfile.ScheduleLaw`): the valley law (rho 0.6) fitted on
    Schaipp et al. 2025's 124M constant and cosine runs at peak LR 5e-4."""
    from importlib import resources

    from advisor.schedule.lawfile import load_schedule_law

    res = resources.files("recipes").joinpath(*SHIPPED_PRIOR)
    with resources.as_file(res) as path:
        return load_schedule_law(path)


def half_width(kind: str, now: int, step: int, sigma_level: float) -> float:
    """Relative half-width of a predicted loss at ``step`` from a model of ``kind`` fitted
    up to ``now`` (``sigma_level``: the relative standard error of the level at ``now``)."""
    return per_doubling(EXTRAP_REL[kind], doublings(step, now), at_least=0.25) \
        + 2.0 * sigma_level


def fit_progress(curve: Curve, peak: float, mask=None) -> tuple:
    """(Lc, A, alpha) of ``L = Lc + A S^-alpha`` (S: LR area / peak LR, steps) by least
    squares on relative residuals over a grid of alpha; points before the LR first reaches
    its peak are left out (warmup transients)."""
    u = curve.lrs / peak
    S = np.cumsum(np.clip(u, 0.0, None))
    keep = curve.steps > curve.ipeak()
    if mask is not None:
        keep &= mask
    st, y = curve.steps[keep], curve.loss[keep]
    if len(st) < 5:
        raise NotPredictable("fewer than 5 logged points after warmup: too early to fit")
    s = np.maximum(S[st], 1e-12)
    best = None
    for a in ALPHAS:
        X = np.stack([np.ones_like(s), s ** -a], axis=1) / y[:, None]
        coef, *_ = np.linalg.lstsq(X, np.ones_like(y), rcond=None)
        if coef[1] <= 0:
            continue
        r = X @ coef - 1.0
        f = float(r @ r)
        if best is None or f < best[0]:
            best = (f, float(coef[0]), float(coef[1]), float(a))
    if best is None:
        raise NotPredictable("the loss does not fall as the LR area grows: no progress to "
                             "extrapolate")
    return best[1], best[2], best[3]


def fit_anchored(prior, curve: Curve, peak: float, mask=None) -> np.ndarray:
    """The prior law's constants with L0 shifted so that the law matches this run's last
    ``LEVEL_FRAC`` of logged points on average; everything else stays the prior's. The
    prior sees the schedule relative to this run's peak LR.

    Why only a shift: re-fitting (L0, A) or (L0, A, amplitude) on the curve so far, with
    the prior's exponents, predicted the final loss of the held-out long runs worse than
    the prior alone (124M at 2e-3, valley rho 0.6: max 1.83% against 0.48% with the shift;
    docs/run.md); the shift keeps the prior's shape and takes the run's level.
    """
    form = FORMS[prior.law]
    th = prior.theta.copy()
    keep = np.ones(len(curve.steps), dtype=bool) if mask is None else mask.copy()
    keep &= curve.steps > curve.ipeak()
    idx = np.flatnonzero(keep)
    if len(idx) < 5:
        raise NotPredictable("fewer than 5 logged points after warmup: too early to fit")
    idx = idx[int((1 - LEVEL_FRAC) * len(idx)):]
    pred = form.predict(th, curve.lrs / peak, curve.steps[idx], rho=prior.rho, lam=prior.lam)
    th[list(form.params).index("L0")] += float(np.mean(curve.loss[idx] - pred))
    return th


def robust_sigma(rel_resid: np.ndarray) -> float:
    """1.4826 x the median absolute deviation of relative residuals."""
    r = np.asarray(rel_resid, dtype=np.float64)
    return float(1.4826 * np.median(np.abs(r - np.median(r)))) if len(r) else 0.0


def fit_model(curve: Curve, peak: float, prior=None, mask=None, fallback=None) -> Model:
    """Fit the model of a run on its curve so far (``mask``: logged points to use).
    ``fallback``: the law for the decays of a run at constant LR so far when there is no
    ``prior`` (the shipped prior, :func:`shipped_prior`)."""
    now = int(curve.steps[-1])
    lrs = curve.lrs[: now + 1]
    warnings = []
    if prior is not None and abs(prior.lr_scale / peak - 1) > 0.01:
        warnings.append(f"the prior law was fitted at peak LR {prior.lr_scale:g}, this run "
                        f"peaks at {peak:g}: its decay gains are applied to the schedule "
                        f"relative to each peak (laws fitted at one peak LR miss another's "
                        f"final losses by 1-14%, docs/schedules.md)")
    use = curve
    if mask is not None and not mask.all():
        use = Curve(name=curve.name, lrs=curve.lrs, steps=curve.steps[mask],
                    loss=curve.loss[mask], source=curve.source, meta=curve.meta)
    if prior is not None:
        m = Model("anchored", peak, now, lrs, prior=prior, warnings=warnings,
                  theta=fit_anchored(prior, curve, peak, mask))
    elif use.has_annealing():
        law, opts = FORM
        fit = None
        if law == "auto":              # cross-validated on the curve so far (select.py)
            from advisor.schedule.select import select_and_fit
            try:
                fit, _ = select_and_fit([use])
            except AdvisorError:       # no fold: the decay began in the last 40% of the log
                law, opts = FALLBACK_FORM
        if fit is None:
            fit = fit_law(law, [use], opts)
        warnings += status_warnings(fit)
        m = Model("law", peak, now, lrs, fit=fit, prior=prior, warnings=warnings)
    else:
        m = Model("progress", peak, now, lrs, progress=fit_progress(curve, peak, mask),
                  prior=prior, warnings=warnings)
        if fallback is not None:
            m.fallback = fallback
            m.fallback_theta = fit_anchored(fallback, curve, peak, mask)
            setup = fallback.doc.get("provenance", {}).get("setup", "another setup")
            warnings.append(
                "the LR has been constant so far: the gains of a decay come from the shipped "
                f"prior ({fallback.law} law fitted on: {setup}), a law of "
                f"another setup, with an interval of +-{EXTRAP_REL['shipped']:.1%} per "
                "doubling of the step; give --law (advisor schedule fit on pilot runs of "
                "this setup with a decay) for tighter ones (docs/run.md)")
    tail = slice(int(0.8 * len(use.steps)), None)
    pred = m.in_sample(use.steps[tail])
    m.sigma = robust_sigma(use.loss[tail] / pred - 1.0)
    m.n_tail = max(1, len(pred))
    return m
