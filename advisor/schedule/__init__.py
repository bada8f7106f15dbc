"""Loss-vs-LR-schedule laws: fit them on a few curves, predict any schedule, pick one.

Modules: ``curves`` (loading and validating curves), ``multipower`` and ``tissue`` (the two
published laws), ``valley`` (ours), ``forms`` (the one registry of law forms: constants,
bounds, evaluation and fitter hooks, read by everything below), ``fitting`` (Huber on log
loss, trust-region + L-BFGS-B from a grid), ``select`` (choice of law and fitting procedure
by cross-validation), ``ensemble`` (the forms averaged with cross-validation weights: a
measured candidate, not used by a command), ``optimize`` (schedule search and WSD branch
points), ``lawfile``
(the schedule-law YAML).
Everything here is torch-free; the figures are drawn by ``advisor.cli.plots``.
"""
from __future__ import annotations


def recommend_schedule(law_path, total_steps: int, peak_lr: float | None = None) -> dict:
    """The schedule block for ``advisor recommend`` from a fitted schedule-law file.

    Args:
        law_path: path of a ``hp-advisor/schedule-law/v1`` YAML (``advisor schedule fit``).
        total_steps: optimizer steps of the planned run.
        peak_lr: the run's peak LR; default the law's (the LR its curves were trained at).
            A law predicts only at its own peak LR (fitted at one peak LR, a law misses
            another's final losses by 1-14% on average, docs/schedules.md): with another
            peak, the schedule shape is chosen at the law's peak and a note says so; the
            predicted losses are for the law's peak.

    Returns a dict: ``schedule`` (spec string for :func:`advisor.rules.lr_schedule.parse_schedule`),
    ``warmup_steps``, ``predicted_final_loss`` (nats), ``gain_over_cosine_nats`` (predicted
    final loss of cosine to 10% minus that of ``schedule``), ``cosine_reference``,
    ``cooldown_band`` ([lo, hi] fractions of total steps for a WSD cooldown of the best
    shape), ``wsd_schedule``, ``branch_points`` (list of {total_steps, branch_step,
    cooldown_steps, predicted_final_loss}), ``law`` (which law), ``law_path``, ``notes``.
    Raises AdvisorError on a bad file or arguments.
    """
    from advisor.schedule.lawfile import load_schedule_law
    from advisor.schedule.optimize import optimize

    law = load_schedule_law(law_path)
    r = optimize(law, total_steps)
    if peak_lr is not None and abs(float(peak_lr) / law.lr_scale - 1) > 0.01:
        r["notes"].append(f"the law was fitted at peak LR {law.lr_scale:g}, not {peak_lr:g}: "
                          f"the schedule shape is the best at {law.lr_scale:g} and the "
                          f"predicted losses are for that peak LR (the laws do not carry "
                          f"the peak LR)")
    return {
        "schedule": r["best"],
        "warmup_steps": r["warmup_steps"],
        "predicted_final_loss": r["best_final_loss"],
        "gain_over_cosine_nats": r["gain_over_cosine_nats"],
        "cosine_reference": r["cosine_reference"],
        "cooldown_band": r["cooldown_band"],
        "wsd_schedule": r["best_wsd"],
        "branch_points": r["branch_points"],
        "law": law.law,
        "law_path": str(law_path),
        "notes": r["notes"],
    }
