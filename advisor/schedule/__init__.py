"""Loss-vs-LR-schedule laws: fit them on a few curves, predict any schedule, pick one.

Modules: ``curves`` (loading and validating curves), ``multipower`` and ``tissue`` (the two
published laws), ``valley`` (ours), ``forms`` (the one registry of law forms: constants,
bounds, evaluation and fitter hooks, read by everything below), ``fitting`` (Huber on log
loss, trust-region + L-BFGS-B from a grid), ``select`` (choice of law and fitting procedure
by cross-validation), ``ensemble`` (the forms averaged with cross-validation weights: a
measured candidate, not used by a command), ``optimize`` (schedule search and WSD branch
points), ``lawfile`` (the schedule-law YAML), ``uncertainty`` (the interval of every predicted
loss and its reason; ``advisor run``'s per-doubling allowances too). Here: :func:`recommend_schedule`, the
schedule block of ``advisor recommend``, as a typed :class:`ScheduleChoice`.
Everything here is torch-free; the figures are drawn by ``advisor.cli.plots``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:                       # imported lazily: the search pulls in numpy
    from advisor.schedule.optimize import BranchPoint


@dataclass(frozen=True)
class ScheduleChoice:
    """The schedule a fitted schedule law predicts best for one run (:func:`recommend_schedule`).

    ``schedule``, ``cosine_reference`` and ``wsd_schedule`` are spec strings for
    :func:`advisor.rules.lr_schedule.parse_schedule`; ``warmup_steps`` the law's default
    warmup in optimizer steps; ``predicted_final_loss`` in nats per token (at the law's peak
    LR), ``final_loss_interval`` its (lo, hi) and ``interval_reason`` why that wide
    (:mod:`advisor.schedule.uncertainty`); ``gain_over_cosine_nats`` the predicted final loss of cosine to 10% minus that of
    ``schedule`` (nats); ``cooldown_band`` (lo, hi) fractions of the run for a WSD cooldown
    of the best shape; ``branch_points`` where one constant-LR run branches into cooldowns;
    ``law`` the law's name and ``law_path`` its file; ``notes`` sentences for the reader.
    """

    schedule: str
    warmup_steps: int
    predicted_final_loss: float
    final_loss_interval: tuple
    interval_reason: str
    gain_over_cosine_nats: float
    cosine_reference: str
    cooldown_band: tuple
    wsd_schedule: str
    branch_points: tuple[BranchPoint, ...]
    law: str
    law_path: str
    notes: tuple[str, ...]


def recommend_schedule(law_path, total_steps: int,
                       peak_lr: float | None = None) -> ScheduleChoice:
    """The schedule block for ``advisor recommend`` from a fitted schedule-law file.

    Args:
        law_path: path of a ``hp-advisor/schedule-law/v1`` YAML (``advisor schedule fit``).
        total_steps: optimizer steps of the planned run.
        peak_lr: the run's peak LR; default the law's (the LR its curves were trained at).
            A law predicts only at its own peak LR (fitted at one peak LR, a law misses
            another's final losses by 1-14% on average, docs/schedules.md): with another
            peak, the schedule shape is chosen at the law's peak and a note says so; the
            predicted losses are for the law's peak.

    Returns a :class:`ScheduleChoice`. Raises AdvisorError on a bad file or arguments.
    """
    from advisor.schedule.lawfile import load_schedule_law
    from advisor.schedule.optimize import optimize

    law = load_schedule_law(law_path)
    r = optimize(law, total_steps)
    notes = r.notes
    if peak_lr is not None and abs(float(peak_lr) / law.lr_scale - 1) > 0.01:
        notes += (f"the law was fitted at peak LR {law.lr_scale:g}, not {peak_lr:g}: "
                  f"the schedule shape is the best at {law.lr_scale:g} and the "
                  f"predicted losses are for that peak LR (the laws do not carry "
                  f"the peak LR)",)
    return ScheduleChoice(
        schedule=r.best, warmup_steps=r.warmup_steps, predicted_final_loss=r.best_final_loss,
        final_loss_interval=(r.best_interval.lo, r.best_interval.hi),
        interval_reason=r.best_interval.reason,
        gain_over_cosine_nats=r.gain_over_cosine_nats, cosine_reference=r.cosine_reference,
        cooldown_band=r.cooldown_band, wsd_schedule=r.best_wsd,
        branch_points=r.branch_points, law=law.law, law_path=str(law_path), notes=notes)
