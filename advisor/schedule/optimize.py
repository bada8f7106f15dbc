"""Predicting loss under product schedules, choosing a schedule, and WSD branch points.

Schedules are :mod:`advisor.rules.lr_schedule` specs (steps 1..T). A fitted law predicts the loss
at the peak LR it was fitted at (its ``lr_scale``) and refuses any other (see :func:`_check`). Neither law can
choose the peak LR (a larger LR always adds area) nor the warmup length (warmup only adds a
little area; its benefit, letting a high LR be stable, is not in the law), so both are
inputs here and the search runs over the decay: family, cooldown fraction, shape, final LR.

The final-step prediction costs O(T) (the block plan of a single step has ~log2 T blocks),
so the search is exhaustive over a grid. Every predicted final loss carries its interval
(:mod:`advisor.schedule.uncertainty`); the choice is by the point prediction, and the search
says when the runner-up lies inside the best's interval (a level uncertainty; how often
held-out schedule pairs come out in the wrong order is docs/run.md's table C).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from advisor.errors import AdvisorError
from advisor.rules.lr_schedule import parse_schedule
from advisor.schedule.uncertainty import Interval, Unsupported, schedule_interval

#: Reference schedule for "gain over cosine": half-cosine to 10% of the peak.
COSINE_REF = "cosine:final=0.1"
COOLDOWNS = tuple(round(x, 2) for x in np.arange(0.05, 0.951, 0.05))
SHAPES = ("linear", "1-sqrt", "cosine")
FINALS = (0.0, 0.1)
#: Recommended-cooldown band: fractions whose predicted final loss is within this relative
#: margin of the best (about the laws' accuracy on a final loss; shared notes: report a band).
BAND_REL = 1e-3


@dataclass(frozen=True)
class BranchPoint:
    """One WSD branch off a shared constant-LR run: the target length ``total_steps``, the
    step the cooldown leaves the constant run at (``branch_step``), the cooldown's length
    ``cooldown_steps`` (all optimizer steps), and the predicted final loss (nats per token)
    with its interval [``lo``, ``hi``]."""

    total_steps: int
    branch_step: int
    cooldown_steps: int
    predicted_final_loss: float
    lo: float
    hi: float


@dataclass(frozen=True)
class RankedSchedule:
    """One candidate schedule (a ``parse_schedule`` spec), its predicted final loss (nats
    per token) and that loss's interval [``lo``, ``hi``] (:mod:`~advisor.schedule.uncertainty`)."""

    spec: str
    final_loss: float
    lo: float
    hi: float


@dataclass(frozen=True)
class ScheduleSearch:
    """What :func:`optimize` finds for a run of ``total_steps`` optimizer steps at peak LR
    ``peak_lr`` with ``warmup_steps`` of warmup. Schedules are ``parse_schedule`` specs and
    losses predicted final losses in nats per token: the ``best`` schedule, the cosine
    reference (to 10% of the peak) and ``gain_over_cosine_nats`` (cosine's loss minus the
    best's), the best WSD and ``cooldown_band`` ((lo, hi) fractions of the run whose WSD
    loss is within BAND_REL of it), its ``branch_points``, ``warmup_effect`` ({warmup steps
    as a string: loss} for the best shape), every candidate best first (``ranking``), and
    ``notes`` for the reader (extrapolations, the fit's warnings, whether the runner-up is
    distinguishable). ``best_interval``: the best's :class:`Interval` (lo, hi, rel, reason);
    ``within_best_interval``: how many other candidates' point predictions lie inside it;
    ``distinguishable``: False when the runner-up's does."""

    total_steps: int
    peak_lr: float
    warmup_steps: int
    best: str
    best_final_loss: float
    cosine_reference: str
    cosine_final_loss: float
    gain_over_cosine_nats: float
    best_wsd: str
    best_wsd_final_loss: float
    cooldown_band: tuple
    branch_points: tuple
    warmup_effect: dict
    ranking: tuple
    notes: tuple
    best_interval: Interval
    within_best_interval: int
    distinguishable: bool


def per_step_lrs(spec: str, total_steps: int, peak_lr: float) -> np.ndarray:
    """Absolute LRs for steps 0..T: lr_schedule's steps 1..T, and step 0 = 0 if the schedule
    warms up from zero (the convention of the fitted curves), else the first LR."""
    sched = parse_schedule(spec)
    m = sched.multipliers(int(total_steps))
    first = 0.0 if sched.warmup_steps(int(total_steps)) > 0 else m[0]
    return peak_lr * np.concatenate([[first], m])


#: A peak LR this far (relative) from the fit's is refused (see :func:`_check`).
PEAK_LR_TOL = 0.01


def _check(law, total_steps, peak_lr):
    """Validated (total steps, peak LR). A peak LR other than the fit's is refused: on the
    Schaipp et al. 2025 curves (124M, peak LRs 5e-4 and 2e-3; bench/bench_schedule_schaipp.py)
    a law fitted at one peak LR predicts the other's final losses 1-14% off on average (the
    multi-power law, which claims to carry the LR, 10-14%), so no law here carries it."""
    if isinstance(total_steps, bool) or not isinstance(total_steps, (int, np.integer)) \
            or total_steps < 10:
        raise AdvisorError(f"total steps must be an integer >= 10, got {total_steps!r}")
    peak = law.lr_scale if peak_lr is None else float(peak_lr)
    if not (peak > 0 and math.isfinite(peak)):
        raise AdvisorError(f"peak LR must be a positive number, got {peak_lr!r}")
    if abs(peak / law.lr_scale - 1) > PEAK_LR_TOL:
        raise AdvisorError(
            f"the law was fitted at peak LR {law.lr_scale:g} and cannot predict peak LR "
            f"{peak:g}: fitted at one peak LR, these laws miss another's final losses by "
            f"1-14% on average (Schaipp et al. 2025's curves, docs/schedules.md); fit it "
            f"on curves run at {peak:g}")
    return int(total_steps), peak


def predict_schedule(law, spec: str, total_steps: int, peak_lr=None, n_points: int = 400):
    """(steps, predicted loss, LR at those steps) on an even grid of at most n_points."""
    T, peak = _check(law, total_steps, peak_lr)
    lrs = per_step_lrs(spec, T, peak)
    steps = np.unique(np.linspace(1, T, min(n_points, T)).round().astype(np.int64))
    return steps, law.predict(lrs, steps), lrs[steps]


def final_loss(law, spec: str, total_steps: int, peak_lr=None) -> float:
    T, peak = _check(law, total_steps, peak_lr)
    return float(law.predict(per_step_lrs(spec, T, peak), np.array([T]))[0])


def final_interval(law, spec: str, total_steps: int, peak_lr=None) -> Interval:
    """The predicted final loss of ``spec`` over ``total_steps`` with its interval
    (:func:`advisor.schedule.uncertainty.schedule_interval`). AdvisorError when the interval
    would be too wide for the number to mean anything."""
    T, peak = _check(law, total_steps, peak_lr)
    lrs = per_step_lrs(spec, T, peak)
    y = float(law.predict(lrs, np.array([T]))[0])
    try:
        return schedule_interval(law, lrs / peak, T, y)
    except Unsupported as e:
        raise AdvisorError(f"{spec} over {T} steps: {e}") from None


def default_warmup(law, total_steps: int) -> int:
    """Warmup steps: the fitted curves' warmup (the law absorbed its effect), at most 10% of
    the run, at least 2 / (1 - beta2) = 40 steps for beta2 = 0.95 (Ma and Yarats 2021)."""
    fitted = int(law.doc.get("warmup_steps_fitted", 0) or 0)
    return int(max(40, min(fitted or 40, 0.1 * total_steps)))


def candidates(warmup: int) -> list[str]:
    w = f"warmup={int(warmup)}" if warmup else ""
    join = (lambda s: f"{s},{w}" if w else s)
    out = [join(COSINE_REF), join("cosine:final=0"), join("linear:final=0"),
           join("linear:final=0.1")]
    for f in FINALS:
        for shape in SHAPES:
            for cd in COOLDOWNS:
                out.append(join(f"wsd:cooldown={cd:g},shape={shape},final={f:g}"))
    return out


def optimize(law, total_steps: int, peak_lr=None, warmup: int | None = None) -> ScheduleSearch:
    """The schedule with the lowest predicted final loss over the candidate grid."""
    T, peak = _check(law, total_steps, peak_lr)
    W = default_warmup(law, T) if warmup is None else int(warmup)
    if W < 0 or W >= T:
        raise AdvisorError(f"warmup must be in [0, total steps), got {warmup}")
    ivs = {s: final_interval(law, s, T, peak) for s in candidates(W)}
    rows = [RankedSchedule(s, iv.loss, iv.lo, iv.hi) for s, iv in ivs.items()]
    rows.sort(key=lambda r: r.final_loss)
    best = rows[0]
    biv = ivs[best.spec]
    inside = sum(biv.contains(r.final_loss) for r in rows[1:])
    distinguishable = not biv.contains(rows[1].final_loss)
    ref = next(r for r in rows if r.spec.startswith(COSINE_REF))
    bs = parse_schedule(best.spec)
    wsd = [r for r in rows if r.spec.startswith("wsd:")]
    wbest = wsd[0]
    ws = parse_schedule(wbest.spec)
    same = [(parse_schedule(r.spec).cooldown, r.final_loss) for r in wsd
            if parse_schedule(r.spec).shape == ws.shape
            and parse_schedule(r.spec).final_ratio == ws.final_ratio]
    tol = BAND_REL * wbest.final_loss
    band = [cd for cd, L in same if L <= wbest.final_loss + tol]
    fitted_min = law.doc.get("min_lr_fraction_fitted")
    notes = []
    if fitted_min is not None and bs.final_ratio < float(fitted_min) - 1e-9:
        notes.append(f"the best schedule decays to {bs.final_ratio:g} x peak, below the "
                     f"lowest LR in the fitted curves ({float(fitted_min):g} x peak): "
                     f"an extrapolation")
    if T > 1.5 * law.total_steps_fitted:
        notes.append(f"{T} steps is {T / law.total_steps_fitted:.1f}x the longest fitted "
                     f"curve ({law.total_steps_fitted}): predictions extrapolate in length")
    if not distinguishable:
        notes.append(f"the runner-up {rows[1].spec} ({rows[1].final_loss:.4f}) lies inside "
                     f"the best's interval [{biv.lo:.4f}, {biv.hi:.4f}], as do {inside} of "
                     f"the {len(rows) - 1} other candidates. The interval is the uncertainty "
                     "of the loss level, largely shared by the schedules of one law; the "
                     "ranking (by the point prediction) is surer than that, but on held-out "
                     "runs 2-11% of the schedule pairs at least 0.002 nats apart came out in "
                     "the wrong order (docs/run.md, table C), so differences this small are "
                     "not resolved")
    for w in law.doc.get("provenance", {}).get("warnings", []) or []:
        notes.append(f"fit: {w}")
    warm = {w: final_loss(law, _with_warmup(best.spec, w), T, peak)
            for w in sorted({max(1, W // 2), W, min(T - 1, 2 * W)})}
    return ScheduleSearch(
        total_steps=T, peak_lr=peak, warmup_steps=W,
        best=best.spec, best_final_loss=best.final_loss,
        cosine_reference=ref.spec, cosine_final_loss=ref.final_loss,
        gain_over_cosine_nats=ref.final_loss - best.final_loss,
        best_wsd=wbest.spec, best_wsd_final_loss=wbest.final_loss,
        cooldown_band=(min(band), max(band)),
        branch_points=tuple(branch_points(law, T, ws.cooldown, ws.shape, ws.final_ratio, W,
                                          peak)),
        warmup_effect={str(k): v for k, v in warm.items()},
        ranking=tuple(rows), notes=tuple(notes), best_interval=biv,
        within_best_interval=int(inside), distinguishable=bool(distinguishable))


def _with_warmup(spec: str, w: int) -> str:
    s = parse_schedule(spec)
    return s.with_(warmup=float(w)).to_spec()


def branch_points(law, total_steps: int, cooldown: float, shape: str, final: float,
                  warmup: int, peak_lr=None, fractions=(0.25, 0.5, 0.75, 1.0)) -> list[dict]:
    """Where one long constant-LR run should branch into cooldowns (Hagele et al. 2024).

    For each target length T_i = fraction x total_steps, the cooldown takes the last
    ``cooldown`` fraction of T_i, so the branch leaves the constant run at step
    T_i - round(cooldown T_i); every branch shares the stable prefix and costs only its
    cooldown steps. Returns the branch step, target length and predicted final loss.
    """
    T, peak = _check(law, total_steps, peak_lr)
    out = []
    for f in fractions:
        Ti = int(round(f * T))
        if Ti <= warmup + 1 or Ti < 10:  # no cooldown to branch, or too short to predict
            continue
        spec = f"wsd:cooldown={cooldown:g},shape={shape},final={final:g},warmup={int(warmup)}"
        s = parse_schedule(spec)
        iv = final_interval(law, spec, Ti, peak)
        out.append(BranchPoint(total_steps=Ti, branch_step=int(s.decay_start(Ti)),
                               cooldown_steps=Ti - int(s.decay_start(Ti)),
                               predicted_final_loss=iv.loss, lo=iv.lo, hi=iv.hi))
    return out
