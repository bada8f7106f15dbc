"""Learning-rate schedules as data: parse a spec string, evaluate the LR multiplier per step.

One definition serves the whole product: calibration trains with it, the schedule laws
predict loss curves under it, and ``advisor recommend`` writes it into configs.

Spec grammar (``advisor schedule predict --schedule ...``)::

    FAMILY[:key=value[,key=value...]]

    constant                      warmup, then the peak LR to the end
    cosine:final=0.1              half-cosine from the peak to final*peak
    linear:final=0                linear decay from the peak to final*peak
    wsd:cooldown=0.2,shape=1-sqrt warmup, stable at the peak, then a cooldown over the last
                                  `cooldown` fraction of all steps, of the given shape
    step:at=0.5,to=0.3            the peak until fraction `at` of training, then to*peak

Keys: ``warmup`` (an integer >= 1 is a number of steps, a number in [0, 1) a fraction of the
total; default 0), ``final`` (final LR as a fraction of the peak; default 0.1 for cosine, 0 for
linear and wsd), ``cooldown`` (wsd: fraction of total steps, default 0.2), ``shape`` (wsd
cooldown shape: linear, 1-sqrt, cosine or exp; exp is geometric and needs final > 0).

Steps are counted from 1 to ``total_steps``; ``multipliers(T)[t-1]`` is the LR of step t over
the peak LR. Warmup is linear from peak/W at step 1 to the peak at step W; a decay reaches
exactly ``final`` at step T.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from advisor.errors import AdvisorError

if TYPE_CHECKING:  # numpy is imported where arrays are made, so `advisor recommend` skips it
    import numpy as np

FAMILIES = ("constant", "cosine", "linear", "wsd", "step")
SHAPES = ("linear", "1-sqrt", "cosine", "exp")
_KEYS = {
    "constant": {"warmup"},
    "cosine": {"warmup", "final"},
    "linear": {"warmup", "final"},
    "wsd": {"warmup", "final", "cooldown", "shape"},
    "step": {"warmup", "at", "to"},
}


@dataclass(frozen=True)
class Schedule:
    """An LR schedule relative to its peak (multiply by the peak LR to get LRs)."""

    family: str = "wsd"
    warmup: float = 0.0      # steps if >= 1, else a fraction of total steps
    final: float | None = None   # final LR / peak LR; None -> the family's default
    cooldown: float = 0.2    # wsd: fraction of total steps spent decaying
    shape: str = "linear"    # wsd: cooldown shape
    at: float = 0.5          # step: fraction of training where the LR drops
    to: float = 0.1          # step: LR after the drop, as a fraction of the peak

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise AdvisorError(f"unknown schedule family {self.family!r}; "
                               f"choose from {', '.join(FAMILIES)}")
        if self.shape not in SHAPES:
            raise AdvisorError(f"unknown cooldown shape {self.shape!r}; "
                               f"choose from {', '.join(SHAPES)}")
        for name in ("warmup", "cooldown", "at", "to"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise AdvisorError(f"schedule {name} must be a finite number >= 0, got {v}")
        if self.final is not None and (not math.isfinite(self.final) or not 0 <= self.final <= 1):
            raise AdvisorError(f"schedule final must be in [0, 1] (a fraction of the peak), "
                               f"got {self.final}")
        if not 0 <= self.cooldown <= 1:
            raise AdvisorError(f"wsd cooldown must be a fraction in [0, 1], got {self.cooldown}")
        if not 0 < self.at < 1:
            raise AdvisorError(f"step 'at' must be a fraction in (0, 1), got {self.at}")
        if 0 < self.warmup < 1 and self.warmup != int(self.warmup):
            pass  # fraction of total steps
        elif self.warmup >= 1 and self.warmup != int(self.warmup):
            raise AdvisorError(f"warmup must be an integer number of steps or a fraction "
                               f"in [0, 1), got {self.warmup}")
        if self.shape == "exp" and self.family == "wsd" and self.final_ratio <= 0:
            raise AdvisorError("an exp (geometric) cooldown needs final > 0")

    @property
    def final_ratio(self) -> float:
        """Final LR over peak LR, with the family default filled in."""
        if self.final is not None:
            return self.final
        return 0.1 if self.family == "cosine" else 0.0

    def warmup_steps(self, total_steps: int) -> int:
        """Warmup length in steps for a run of ``total_steps`` steps."""
        w = self.warmup
        steps = int(round(w * total_steps)) if 0 < w < 1 else int(w)
        if w >= 1 and steps >= total_steps:
            raise AdvisorError(
                f"warmup={steps} steps does not fit a run of {total_steps} steps: the LR would "
                "never reach its peak" + ("" if self.family == "constant" else " nor decay")
                + "; lower the warmup or give it as a fraction of the run (warmup=0.05)")
        return min(steps, total_steps)

    def decay_start(self, total_steps: int) -> int:
        """Last step at the peak LR before decay begins (the WSD branch point)."""
        w = self.warmup_steps(total_steps)
        if self.family in ("cosine", "linear"):
            return w
        if self.family == "wsd":
            return max(w, total_steps - int(round(self.cooldown * total_steps)))
        if self.family == "step":
            return max(w, int(round(self.at * total_steps)))
        return total_steps

    def multipliers(self, total_steps: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """LR / peak LR for steps 1..total_steps, as a float64 array of that length; or, with
        ``start``/``stop``, for steps start+1..stop only (a chunk of a long run, so a caller
        never needs an array of total_steps)."""
        import numpy as np
        if not isinstance(total_steps, (int, np.integer)) or total_steps < 1:
            raise AdvisorError(f"total steps must be a positive integer, got {total_steps}")
        T = int(total_steps)
        stop = T if stop is None else int(stop)
        if not 0 <= int(start) <= stop <= T:
            raise AdvisorError(f"steps {start}..{stop} are not within 0..{T}")
        t = np.arange(int(start) + 1, stop + 1, dtype=np.float64)
        out = np.ones(len(t))
        w = self.warmup_steps(T)
        start = self.decay_start(T)
        f = self.final_ratio
        if self.family == "step":
            out[t > start] = self.to
        elif self.family != "constant" and start < T:
            p = np.clip((t - start) / (T - start), 0.0, 1.0)
            shape = "cosine" if self.family == "cosine" else (
                "linear" if self.family == "linear" else self.shape)
            if shape == "exp":
                g = f ** p
            else:
                g = f + (1.0 - f) * _decay_shape(shape, p)
            out = np.where(t > start, g, out)
        if w > 0:
            out = np.where(t <= w, out * t / w, out)
        return out

    def to_spec(self) -> str:
        """The spec string that parses back to this schedule."""
        keys = sorted(_KEYS[self.family])
        parts = []
        for k in keys:
            v = getattr(self, k)
            if k == "final" and v is None:
                continue
            if k == "warmup" and v == 0:
                continue
            parts.append(f"{k}={_fmt(v)}")
        return self.family + (":" + ",".join(parts) if parts else "")

    def with_(self, **changes) -> "Schedule":
        return replace(self, **changes)


def _decay_shape(shape: str, p: np.ndarray) -> np.ndarray:
    """Fraction of the (peak - final) gap left at decay progress p in [0, 1]."""
    import numpy as np
    if shape == "linear":
        return 1.0 - p
    if shape == "1-sqrt":
        return 1.0 - np.sqrt(p)
    if shape == "cosine":
        return 0.5 * (1.0 + np.cos(np.pi * p))
    raise AdvisorError(f"unknown decay shape {shape!r}")


def _fmt(v) -> str:
    if isinstance(v, str):
        return v
    return str(int(v)) if float(v) == int(v) and abs(v) >= 1 else repr(float(v))


def parse_schedule(spec: str) -> Schedule:
    """Parse ``FAMILY[:key=value,...]`` into a :class:`Schedule` (see module docstring)."""
    if not isinstance(spec, str) or not spec.strip():
        raise AdvisorError("empty schedule spec")
    family, _, rest = spec.strip().partition(":")
    family = family.strip().lower()
    if family not in FAMILIES:
        raise AdvisorError(f"cannot parse schedule {spec!r}: unknown family {family!r} "
                           f"(choose from {', '.join(FAMILIES)})")
    kwargs = {}
    if rest.strip():
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key, value = key.strip().lower(), value.strip()
            if not eq or not key or not value:
                raise AdvisorError(f"cannot parse schedule {spec!r}: expected key=value, "
                                   f"got {item.strip()!r}")
            if key not in _KEYS[family]:
                raise AdvisorError(f"cannot parse schedule {spec!r}: {family} takes "
                                   f"{', '.join(sorted(_KEYS[family]))}, not {key!r}")
            if key in kwargs:
                raise AdvisorError(f"cannot parse schedule {spec!r}: {key!r} given twice")
            if key == "shape":
                kwargs[key] = value.lower()
            else:
                try:
                    kwargs[key] = float(value)
                except ValueError:
                    raise AdvisorError(f"cannot parse schedule {spec!r}: {key} must be a "
                                       f"number, got {value!r}") from None
    return Schedule(family=family, **kwargs)


#: Public name of the decay shapes (fraction of the peak-final gap left at progress p),
#: for code that builds a cooldown from an arbitrary step (advisor.inflight.forecast).
decay_shape = _decay_shape
