"""Time arithmetic of the suite: the budget clock and the step-time model behind every
stage's estimate. Pure functions (no torch, no I/O) except ``Deadline``, which reads the
monotonic clock.

Units: seconds, FLOPs (floating-point operations, not per second), FLOP/s.

The step-time model. A training step that does F FLOPs takes

    t(F) = floor + F / rate

where ``floor`` is the per-step cost that does not grow with the work (kernel launches,
Python, the optimizer's many small kernels) and ``rate`` the FLOP/s the device reaches on
the step's arithmetic. Both come from a short measured warm-up at two model sizes
(``fit_step_model``); METHOD.md's "two numbers first" is the same idea (work over a
measured rate, with a floor that no version beats).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class StepModel:
    """t(F) = floor_s + F / rate_flops (seconds for a step of F FLOPs)."""

    floor_s: float
    rate_flops: float

    def step_s(self, flops: float) -> float:
        return self.floor_s + flops / self.rate_flops


def fit_step_model(f_small: float, t_small: float, f_large: float, t_large: float) -> StepModel:
    """The line through two measured (FLOPs, seconds per step) points.

    The rate is clamped to be positive and the floor to be >= 0: when the larger step was
    not slower (noise, or both launch-bound) the whole time is floor and the rate is taken
    from the larger point alone, which overestimates large steps rather than underestimating.
    """
    for name, v in (("f_small", f_small), ("t_small", t_small), ("f_large", f_large),
                    ("t_large", t_large)):
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive finite number, got {v!r}")
    if f_large <= f_small:
        raise ValueError("f_large must exceed f_small")
    dt = t_large - t_small
    if dt <= 0:
        return StepModel(floor_s=t_small, rate_flops=f_large / t_large)
    rate = (f_large - f_small) / dt
    floor = max(0.0, t_small - f_small / rate)
    return StepModel(floor_s=floor, rate_flops=rate)


@dataclass(frozen=True)
class Unit:
    """One resumable piece of a stage (a stack of runs, one width of a benchmark)."""

    label: str
    seconds: float


@dataclass(frozen=True)
class Estimate:
    """A stage's predicted wall time: fixed cost plus its units (all in seconds).

    ``divisible``: the stage can stop after any unit and resume there on the next call.
    """

    fixed_s: float
    units: tuple = ()
    divisible: bool = False
    detail: str = ""

    @property
    def seconds(self) -> float:
        return self.fixed_s + sum(u.seconds for u in self.units)

    @property
    def min_seconds(self) -> float:
        """The least time that makes progress: fixed cost plus the first unit."""
        if not self.divisible or not self.units:
            return self.seconds
        return self.fixed_s + self.units[0].seconds


SAFETY = 1.25          # a stage or unit starts only if 1.25 x its estimate is left


def scaled(estimate: Estimate, factor: float) -> Estimate:
    """The estimate with every time multiplied by ``factor``."""
    return Estimate(estimate.fixed_s * factor,
                    tuple(Unit(u.label, u.seconds * factor) for u in estimate.units),
                    estimate.divisible, estimate.detail)


def correction(ratios, lo: float = 0.5, hi: float = 4.0) -> float:
    """How far off this device's estimates have been: the median of actual/estimate over
    the stages finished on it so far, clamped to [lo, hi]; 1 with none."""
    r = sorted(x for x in ratios if math.isfinite(x) and x > 0)
    if not r:
        return 1.0
    mid = len(r) // 2
    med = r[mid] if len(r) % 2 else 0.5 * (r[mid - 1] + r[mid])
    return min(hi, max(lo, med))


def fits(estimate: Estimate, remaining_s: float, safety: float = SAFETY) -> str:
    """'all' when the whole stage fits in ``remaining_s`` with the safety factor, 'part'
    when it is divisible and its first unit fits, else 'none'."""
    if estimate.seconds * safety <= remaining_s:
        return "all"
    if estimate.divisible and estimate.min_seconds * safety <= remaining_s:
        return "part"
    return "none"


def sweep_seconds(steps: int, members: int, flops_per_member_step: float, model: StepModel,
                  compile_s: float = 0.0, eval_flops: float = 0.0) -> float:
    """Wall time of one stack of ``members`` runs of ``steps`` steps (one run: members=1):
    compile once, then every step does members x the FLOPs of one member's step; held-out
    evaluations add ``eval_flops`` (forward only) at the measured rate."""
    return (compile_s + steps * model.step_s(members * flops_per_member_step)
            + members * eval_flops / model.rate_flops)


def compile_pays(compile_s: float, eager_step_s: float, compiled_step_s: float,
                 steps: int) -> bool:
    """True when compiling once and running ``steps`` compiled steps beats eager."""
    return compile_s + steps * compiled_step_s < steps * eager_step_s


class Deadline:
    """The suite's wall-clock budget, counted from construction (seconds)."""

    def __init__(self, budget_s: float, reserve_s: float = 0.0, clock=None):
        self._clock = clock or time.monotonic
        self.t0 = self._clock()
        self.budget_s = float(budget_s)
        self.reserve_s = float(reserve_s)

    def elapsed(self) -> float:
        return self._clock() - self.t0

    def remaining(self) -> float:
        """Seconds left for work, the reserve (summary, bundle) already taken off."""
        return self.budget_s - self.reserve_s - self.elapsed()
