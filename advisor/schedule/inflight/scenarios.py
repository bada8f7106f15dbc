"""What-if schedules for a run in progress, as per-step LRs that share the run's past.

Every scenario keeps the LRs of steps 0..now (the run so far) and differs only after:

* ``plan``: the planned schedule to its last step;
* ``stable``: the LR before a cooldown: the plan's up to the end of its stable part (its
  decay start for WSD and step schedules; the whole plan for cosine/linear), then flat at
  the LR reached; with no plan, the current LR held;
* ``cooldown(start, length, shape, final)``: the stable LRs up to ``start``, then a decay
  of the given shape (:func:`advisor.rules.lr_schedule.decay_shape`) from the LR at ``start`` to
  ``final`` x peak over ``length`` steps;
* ``extension`` to a longer horizon continuing from the stable phase (as Schaipp et al.
  2025, arXiv 2501.18965, study WSD runs continued to longer horizons): stable to
  ``T2 - round(f T2)``, then the cooldown, ``f`` the plan's WSD cooldown fraction (0.2
  otherwise).
"""
from __future__ import annotations

import numpy as np

from advisor.errors import AdvisorError
from advisor.rules.lr_schedule import decay_shape, parse_schedule

SHAPES = ("linear", "1-sqrt", "cosine")
DEFAULT_COOLDOWN = 0.2        # fraction of the resulting run (Hagele et al. 2024)


def has_stable_phase(plan) -> bool:
    """Whether the plan holds its LR before decaying (WSD, step, constant; or no plan)."""
    return plan.spec is None or parse_schedule(plan.spec).family in ("wsd", "step", "constant")


def stable_lrs(plan, until: int) -> np.ndarray:
    """LRs of steps 0..until continuing the run's stable phase (see module docstring)."""
    now = plan.now
    out = np.empty(until + 1)
    out[: now + 1] = plan.curve.lrs[: now + 1]
    if until <= now:
        return out[: until + 1]
    if plan.planned_lrs is not None:
        s = parse_schedule(plan.spec)
        end = plan.total_steps if s.family in ("cosine", "linear", "constant") \
            else s.decay_start(plan.total_steps)
        end = max(end, now)
        hi = min(end, until)
        out[now + 1: hi + 1] = plan.planned_lrs[now + 1: hi + 1]
        out[hi + 1:] = out[hi]
    else:
        out[now + 1:] = out[now]
    return out


def cooldown_lrs(plan, start: int, length: int, shape: str, final: float = 0.0) -> np.ndarray:
    """LRs of steps 0..start+length: stable to ``start`` (>= now), then the cooldown."""
    if start < plan.now:
        raise AdvisorError(f"a cooldown cannot start at step {start}, before the last logged "
                           f"step {plan.now}")
    if length < 1:
        raise AdvisorError(f"a cooldown needs at least one step, got {length}")
    out = stable_lrs(plan, start + length)
    v0 = out[start]
    p = np.arange(1, length + 1) / length
    out[start + 1:] = final * plan.peak_lr + (v0 - final * plan.peak_lr) * decay_shape(shape, p)
    return out


def cooldown_length(spec: float | None, start: int) -> int:
    """Cooldown steps from ``--cooldown-length``: >= 1 steps, < 1 a fraction of the
    resulting run (a cooldown starting at ``start`` of fraction f ends at start / (1 - f));
    None: :data:`DEFAULT_COOLDOWN`."""
    f = DEFAULT_COOLDOWN if spec is None else float(spec)
    if f >= 1:
        return int(round(f))
    if not 0 < f < 1:
        raise AdvisorError(f"--cooldown-length must be steps (>= 1) or a fraction in (0, 1), "
                           f"got {spec}")
    return max(1, int(round(start * f / (1 - f))))


def plan_cooldown_fraction(plan) -> float:
    if plan.spec is not None:
        s = parse_schedule(plan.spec)
        if s.family == "wsd":
            return float(s.cooldown)
    return DEFAULT_COOLDOWN


def extension_lrs(plan, T2: int, shape: str, final: float = 0.0):
    """(LRs 0..T2, cooldown start) of an extension to ``T2`` from the stable phase."""
    f = plan_cooldown_fraction(plan)
    start = max(plan.now, T2 - int(round(f * T2)))
    return cooldown_lrs(plan, start, T2 - start, shape, final), start


def cooldown_starts(now: int, budget: int, n: int = 20) -> list[int]:
    """Candidate cooldown starts for a run of ``budget`` steps: now, and n even steps up to
    5% before the end."""
    last = int(budget - max(1, round(0.05 * budget)))
    if last <= now:
        return [now] if now < budget else []
    return sorted({now} | {int(x) for x in np.linspace(now, last, n).round()})
