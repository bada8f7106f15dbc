"""How far a schedule law's predicted loss can be trusted: the relative interval and its reason.

One home for the allowances that widen a predicted loss, measured on held-out curves
(``python -m bench.bench_run_forecast``, docs/run.md) and rounded up:

* :data:`SHAPE_REL` -- a schedule whose LR profile is not among the fitted curves'. Per law
  form, from the held-out final-loss errors of table C of docs/run.md (a law fitted on a
  constant + cosine-to-10% run at one peak LR, Schaipp et al. 2025's 124M curves at 5e-4 and
  2e-3, predicting the other 30-32 schedules: WSD with linear or 1-sqrt cooldowns to 0,
  cosine to 0, shorter horizons), over the form's fitting variants the product can make
  (rho, late weights, per-curve weights; not the borrowed-shape ``shared`` rows). Table C's
  error e is relative to the truth; the interval is relative to the prediction, so it holds
  the truth when h >= e / (1 - e): that, at the largest e, rounded up to 0.1%. valley: e 1.49%
  (valley, 5e-4, lin0.1_50000) -> 1.6%; multipower: e 2.45% (rho 0.6 late1, 2e-3,
  lin0.1_15000) -> 2.6%; tissue: e 2.92% (2e-3, lin0.1_15000) -> 3.1%.
* :data:`HORIZON_REL` -- per doubling of the horizon beyond the longest fitted curve
  (``total_steps_fitted``). Per law form, from table B of docs/run.md (laws fitted on the runs
  of at most 25k / 24k steps predicting the 35k-72k runs, 0.5-1.6 doublings beyond): the
  largest e / (1 - e) / doublings of a held-out run, over the same variants and the five data
  sets, rounded up to 0.1%: valley 3.08% (valley, 124M 2e-3, lin0.1_35000: e 1.47% at 0.49
  doublings) -> 3.1%; multipower 1.79% (124M 5e-4, lin0.2_35000) -> 1.8%; tissue 1.50%
  (124M 2e-3, lin0.9_35000) -> 1.6%. Per-run figures recomputed from the bench's cached fits
  (2026-12-06); valley with rho 0.6 alone would allow about 1.4%, plain valley needs 3.1%.
* the **in-sample** allowance -- the schedule and horizon of a fitted curve: the fit's own
  residuals, from the law file (:func:`in_sample_rel`).
* :data:`EXTRAP_REL` -- the in-flight models of ``advisor run`` (forecast.py), per doubling of
  the step beyond the last logged one, from table A.

Every allowance that grows with the horizon grows linearly in the doublings
(:func:`per_doubling`), the one convention for both ``advisor run`` and ``advisor schedule``.

The rule for a whole schedule (:func:`schedule_interval`), relative half-width h:

* the schedule's LRs are a fitted curve's (over its whole horizon, or its first steps:
  compared from 10% of the run on, where warmups no longer matter): h = in-sample;
* else h = SHAPE_REL[law] + HORIZON_REL[law] x doublings beyond ``total_steps_fitted``;
* a profile among the fitted curves at another horizon takes the narrower of that and
  in-sample + HORIZON_REL[law] x |doublings| from the nearest such curve (table B is
  exactly this case: known shapes at other horizons).

Pure functions of numbers and a law object (``law``, ``total_steps_fitted``, ``doc``); no I/O.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Relative error of a predicted loss per doubling of the step beyond the last logged one,
#: by kind of ``advisor run`` model (forecast.py): the largest first-half -> end error of
#: table A (one doubling) of docs/run.md, rounded up. 'law' (fitted on the run alone):
#: tissue, max 2.90%; 'anchored' (a prior from shorter runs of the setup): valley rho 0.6,
#: max 0.65%; 'progress' (constant LR so far, constant continuation): max 0.40% on the
#: constant runs (400M). 'shipped' (the shipped prior, a law of another setup, for the
#: decays of a run at constant LR so far): the largest error on a setup the prior was not
#: chosen on, 3.20% (124M at 2e-3; bench/schedule_prior.py --evidence, docs/run.md),
#: rounded up.
EXTRAP_REL = {"law": 0.03, "anchored": 0.007, "progress": 0.004, "shipped": 0.035}
#: A schedule unlike the fitted curves, per law form (module docstring: table C).
SHAPE_REL = {"valley": 0.016, "multipower": 0.026, "tissue": 0.031}
#: Per doubling of the horizon beyond the longest fitted curve, per law form (table B).
HORIZON_REL = {"valley": 0.031, "multipower": 0.018, "tissue": 0.016}
#: In-sample allowance of a law file that records no residuals of its fit (hand-written).
IN_SAMPLE_UNRECORDED = 0.005
#: The LR profile of a schedule: LR / peak at PROFILE_POINTS + 1 even fractions of the run.
PROFILE_POINTS = 64
#: Profiles are compared from this fraction of the run on (warmups differ and matter little).
PROFILE_FROM = 0.1
#: Two profiles are the same schedule when they differ by at most this (LR / peak) anywhere.
PROFILE_TOL = 0.02
#: Two horizons are the same when they differ by at most this fraction (logged last steps
#: fall a little short of the planned total: 49,800 of 50,000).
HORIZON_TOL = 0.01
#: Beyond this relative half-width the law says nothing useful: refused.
MAX_REL = 0.5


def doublings(step: float, reference: float) -> float:
    """Doublings of ``step`` beyond ``reference`` (0 at or before it)."""
    return math.log2(max(step, reference) / max(reference, 1))


def per_doubling(rel: float, n_doublings: float, at_least: float = 0.0) -> float:
    """An allowance of ``rel`` per doubling, counted as at least ``at_least`` doublings."""
    return rel * max(n_doublings, at_least)


def lr_profile(u, total_steps: int) -> list[float]:
    """LR / peak (``u``, per step, index = step 0..total_steps) at PROFILE_POINTS + 1 even
    fractions of the run, rounded to 4 decimals (what a law file stores per fitted curve)."""
    u = np.asarray(u, dtype=np.float64)
    idx = np.rint(np.linspace(0, int(total_steps), PROFILE_POINTS + 1)).astype(np.int64)
    return [round(float(x), 4) for x in u[np.minimum(idx, len(u) - 1)]]


def same_profile(a, b) -> bool:
    """Whether two :func:`lr_profile` lists describe the same schedule (within PROFILE_TOL of
    the peak from PROFILE_FROM of the run on)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False
    k0 = int(math.ceil(PROFILE_FROM * PROFILE_POINTS))
    return bool(np.max(np.abs(a[k0:] - b[k0:])) <= PROFILE_TOL)


def _num(x) -> float | None:
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
    return float(x) if ok else None


def fitted_curves(law) -> list[dict]:
    """The law file's records of its fitted curves (``fit.curves``; [] if none)."""
    curves = (law.doc.get("fit") or {}).get("curves") or []
    return [c for c in curves if isinstance(c, dict)]


def in_sample_rel(law) -> tuple[float, str]:
    """(relative allowance, why) for the schedule and horizon of a fitted curve: over the
    fitted curves, the largest |final_rel| + mean_rel (the law's miss at a curve's last point,
    plus the typical scatter of a logged point about the law: what a rerun's final would
    add)."""
    vals = []
    for c in fitted_curves(law):
        f, m = _num(c.get("final_rel")), _num(c.get("mean_rel"))
        if f is not None and m is not None:
            vals.append(abs(f) + m)
    if not vals:
        return IN_SAMPLE_UNRECORDED, ("the law file records no residuals of its fit, so "
                                      f"+-{IN_SAMPLE_UNRECORDED:.1%} is assumed")
    return max(vals), "the fit's own residuals: largest |final error| + mean error of a curve"


@dataclass(frozen=True)
class Interval:
    """A predicted loss (nats) with its interval [lo, hi] = loss x (1 -+ rel) and the reason.

    ``kind``: 'in-sample' (a fitted curve's schedule and horizon), 'horizon' (a fitted
    curve's schedule at another horizon), 'shape' (a schedule unlike the fitted curves);
    ``matched``: the fitted curve's name where one matched; ``beyond``: doublings of the
    horizon beyond the longest fitted curve."""

    loss: float
    lo: float
    hi: float
    rel: float
    kind: str
    reason: str
    matched: str | None = None
    beyond: float = 0.0

    def contains(self, x: float) -> bool:
        return self.lo <= x <= self.hi


class Unsupported(ValueError):
    """The interval would be too wide (at least MAX_REL) for the loss to mean anything."""


def _records(law) -> list[dict]:
    """The fitted curves with a recorded LR profile and horizon."""
    return [c for c in fitted_curves(law) if isinstance(c.get("lr_profile"), list)
            and _num(c.get("total_steps")) is not None]


def is_prefix(u, T: int, rec: dict) -> bool:
    """Whether the first ``T`` steps of the schedule ``u`` (LR / peak, index = step) are the
    fitted curve ``rec``'s first ``T`` steps (its recorded profile, interpolated at the same
    absolute steps, from PROFILE_FROM x T and from one profile interval on, within
    PROFILE_TOL): the law's loss at step T is then its fit of that curve at step T. Needs T
    within the curve's horizon."""
    Tc = float(rec["total_steps"])
    first = max(PROFILE_FROM * T, Tc / PROFILE_POINTS)   # the profile's resolution: a
    if T > Tc * (1 + HORIZON_TOL) or first >= T:       # warmup is smeared over Tc / 64
        return False
    st = np.linspace(first, T, PROFILE_POINTS + 1)
    theirs = np.interp(np.minimum(st, Tc) / Tc * PROFILE_POINTS,
                       np.arange(PROFILE_POINTS + 1), np.asarray(rec["lr_profile"], float))
    ours = np.asarray(u, dtype=np.float64)[np.minimum(np.rint(st).astype(np.int64), len(u) - 1)]
    return bool(np.max(np.abs(ours - theirs)) <= PROFILE_TOL)


def _rule(law, u, T: int, recs, ins: tuple) -> tuple:
    """(rel, kind, matched, beyond, reason) of the module docstring's rule at horizon T."""
    form = law.law
    shape_rel, hor_rel = SHAPE_REL[form], HORIZON_REL[form]
    longest = int(law.total_steps_fitted)
    beyond = doublings(T, longest) if T > longest * (1 + HORIZON_TOL) else 0.0
    src = f"{form} laws on held-out curves of Schaipp et al. 2025 and Luo et al. 2025"
    general = shape_rel + per_doubling(hor_rel, beyond)
    why = (f"{shape_rel:.1%} for a schedule unlike the fitted curves (docs/run.md table C)"
           + (f" + {hor_rel:.1%} per doubling beyond the longest fitted curve ({longest} "
              f"steps) x {beyond:.2f} (table B)" if beyond > 0 else "") + f"; {src}")
    if not recs:
        why += ("; the law file does not record its curves' schedules (fitted before they "
                "were recorded): refit it for in-sample intervals on them")
    for c in recs:
        if is_prefix(u, T, c):
            n = abs(math.log2(T / float(c["total_steps"])))
            what = ("the schedule and horizon of" if n <= math.log2(1 + HORIZON_TOL)
                    else "the first steps of")
            return (ins[0], "in-sample", c.get("name"), beyond,
                    f"{what} fitted curve {c.get('name')}: {ins[1]}")
    prof = lr_profile(u, T)
    seen = [c for c in recs if same_profile(prof, c["lr_profile"])]
    if seen:
        c = min(seen, key=lambda c: abs(math.log2(T / float(c["total_steps"]))))
        n = abs(math.log2(T / float(c["total_steps"])))
        near = ins[0] + per_doubling(hor_rel, n)
        if near < general:
            return (near, "horizon", c.get("name"), beyond,
                    f"the schedule of fitted curve {c.get('name')} at "
                    f"{T / float(c['total_steps']):.2g}x its horizon: {ins[0]:.2%} in-sample "
                    f"({ins[1]}) + {hor_rel:.1%} per doubling x {n:.2f} (docs/run.md table "
                    f"B; {src})")
    return general, "shape", None, beyond, why


def schedule_interval(law, u, total_steps: int, loss: float) -> Interval:
    """The interval of ``loss``, the law's predicted final loss of a schedule with LR / peak
    ``u`` (per step, index = step 0..total_steps) over ``total_steps`` steps (module
    docstring; a schedule whose steps so far are a fitted curve's first steps counts as
    in-sample). Raises :class:`Unsupported` when the half-width reaches MAX_REL, ValueError
    for a non-finite or non-positive loss."""
    if not (math.isfinite(loss) and loss > 0):
        raise ValueError(f"a predicted loss must be finite and positive, got {loss!r}")
    rel, kind, matched, beyond, why = _rule(law, u, int(total_steps), _records(law),
                                            in_sample_rel(law))
    if not math.isfinite(rel) or rel >= MAX_REL:
        raise Unsupported(f"the interval would be +-{rel:.0%} or more ({why}): the law "
                          "cannot say what this schedule ends at")
    return Interval(loss=float(loss), lo=float(loss) * (1 - rel), hi=float(loss) * (1 + rel),
                    rel=float(rel), kind=kind, reason=why, matched=matched, beyond=beyond)


def curve_halfwidths(law, u, steps) -> np.ndarray:
    """Relative half-widths of the predicted loss at each of ``steps`` of one schedule (LR /
    peak ``u``, index = step): the law's loss at step t is the final loss of a run of t
    steps with the schedule's first t LRs, so each gets :func:`schedule_interval`'s rule
    for that run (in-sample where it is still a fitted curve's first steps, wider where it
    leaves them or the fitted horizon)."""
    recs, ins = _records(law), in_sample_rel(law)
    return np.array([_rule(law, u, int(t), recs, ins)[0] for t in np.asarray(steps)],
                    dtype=np.float64)
