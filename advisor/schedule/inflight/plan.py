"""The run's LR at every step: the planned schedule, checked against the logged LR.

The schedule laws need the LR of every optimizer step (``lrs[s]``, s = 0..T, absolute;
index 0 is the LR before training, see :class:`advisor.schedule.curves.Curve`). It comes
from the planned schedule (a spec of :mod:`advisor.rules.lr_schedule` and the planned steps) or,
with no schedule, from the log's LR column up to the last logged step (linear between
logged steps); then the future is unknown and only alternatives can be predicted.

A log whose LR column disagrees with the given schedule is refused: it is the log of
another run, or the schedule is not the one the run uses.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from advisor.errors import AdvisorError
from advisor.schedule.inflight.log import RunLog
from advisor.schedule.curves import Curve, per_step_lr
from advisor.schedule.optimize import per_step_lrs

#: The logged LR may differ from the schedule's by this fraction of the peak (HF and most
#: trainers log the LR of the next step, and round it) before the log is called another run's.
LR_TOL = 0.05


@dataclass
class RunPlan:
    """The run so far as a :class:`Curve`, and the planned LRs (None when not given)."""

    curve: Curve
    peak_lr: float
    total_steps: int | None      # planned optimizer steps (None: not given)
    planned_lrs: np.ndarray | None   # absolute LR of steps 0..total_steps
    spec: str | None
    source_of_lr: str            # "schedule" or "log"

    @property
    def now(self) -> int:
        return int(self.curve.steps[-1])


def _infer_peak(log: RunLog, mult: np.ndarray, warmup: int) -> float:
    """The largest logged LR once the schedule has reached its peak; before that, the
    median of logged LR / the schedule's multiplier after warmup."""
    if mult[: log.last_step + 1].max() >= 1 - 1e-9 and np.isfinite(log.lr).any():
        return float(np.nanmax(log.lr))
    ok = np.isfinite(log.lr) & (mult[log.steps] > 0.05) & (log.steps > warmup)
    if not ok.any():
        raise AdvisorError("cannot infer the peak LR from the log (no LR logged where the "
                           "schedule is above 5% of its peak): give --peak-lr")
    return float(np.median(log.lr[ok] / mult[log.steps][ok]))


def check_lr_matches(log: RunLog, lrs: np.ndarray, peak: float, warmup: int = 0) -> None:
    """AdvisorError when the logged LR contradicts ``lrs`` after the warmup (either
    neighbour step counts: loggers differ in whether they log the LR of the step just taken
    or of the next; warmup conventions differ between trainers, so warmup is not checked)."""
    ok = np.flatnonzero(np.isfinite(log.lr) & (log.steps > warmup))
    if not len(ok):
        return
    st = log.steps[ok]
    cand = np.stack([lrs[np.clip(st + d, 0, len(lrs) - 1)] for d in (-1, 0, 1)])
    dev = np.min(np.abs(cand - log.lr[ok][None, :]), axis=0) / peak
    if dev.max() > LR_TOL:
        i = int(np.argmax(dev))
        raise AdvisorError(f"the log's LR contradicts the schedule: at step {int(st[i])} the "
                           f"log has lr {log.lr[ok][i]:.4g}, the schedule {lrs[st[i]]:.4g} "
                           f"(peak {peak:.4g}); is this the log of another run, or another "
                           f"schedule, --steps or --peak-lr?")


def make_plan(log: RunLog, spec: str | None = None, total_steps: int | None = None,
              peak_lr: float | None = None) -> RunPlan:
    """The run's curve so far and its planned LRs (see module docstring)."""
    from advisor.rules.lr_schedule import parse_schedule

    if peak_lr is not None and not peak_lr > 0:
        raise AdvisorError(f"--peak-lr must be positive, got {peak_lr}")
    if total_steps is None:
        total_steps = log.keys.get("max_steps")      # a Hugging Face log's planned horizon
        if total_steps is None and spec is not None:
            raise AdvisorError("--schedule needs --steps, the planned number of optimizer steps")
    if total_steps is not None and total_steps < log.last_step:
        raise AdvisorError(f"--steps {total_steps} is before the last logged step "
                           f"{log.last_step}: is this the log of another run?")
    name = log.source
    if spec is None:
        if log.lr is None:
            raise AdvisorError(f"{log.source} has no LR column: give the run's planned schedule "
                               f"(--schedule SPEC --steps N --peak-lr LR), e.g. --schedule "
                               f"wsd:cooldown=0.2,warmup=1000 --steps 100000 --peak-lr 3e-4")
        ok = np.isfinite(log.lr)
        if ok.sum() < 2:
            raise AdvisorError(f"{log.source}: the LR is logged at fewer than 2 steps")
        lrs = per_step_lr(log.steps[ok], log.lr[ok])
        peak = float(lrs.max()) if peak_lr is None else float(peak_lr)
        keep = log.steps <= log.steps[ok][-1]
        curve = Curve(name=name, lrs=lrs, steps=log.steps[keep], loss=log.loss[keep],
                      source=log.source, meta={"kind": log.fmt})
        return RunPlan(curve, peak, total_steps, None, None, "log")
    sched = parse_schedule(spec)
    T = int(total_steps)
    mult = per_step_lrs(sched.to_spec(), T, 1.0)
    if peak_lr is None:
        if log.lr is None:
            raise AdvisorError(f"{log.source} has no LR column: give --peak-lr with --schedule")
        peak_lr = _infer_peak(log, mult, sched.warmup_steps(T))
    lrs = mult * float(peak_lr)
    if log.lr is not None:
        check_lr_matches(log, lrs, float(peak_lr), sched.warmup_steps(T))
    curve = Curve(name=name, lrs=lrs[: log.last_step + 1], steps=log.steps, loss=log.loss,
                  source=log.source, meta={"kind": log.fmt})
    return RunPlan(curve, float(peak_lr), T, lrs, sched.to_spec(), "schedule")
