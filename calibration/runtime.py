"""What single and stacked training share: a run's result, its LR multipliers, the device.

``RunResult`` is what a run produced (the store keeps all of it); ``MultiplierStream`` reads a
run's LR schedule (advisor.lr_schedule) step by step; ``resolve_device`` turns 'auto' into a
torch device name. ``calibration.train`` (one run) and ``calibration.stacked`` (many runs as
one model) both build on this module and not on each other.

Units: losses in nats per token, times in seconds, tokens in tokens.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from advisor.runspec import RunSpec


@dataclass
class RunResult:
    """What a run produced; the store keeps all of it."""

    spec: RunSpec
    status: str                      # finished | diverged | failed
    error: str = ""
    final_train_loss: float = math.nan
    final_val_loss: float = math.nan
    n_params: int = 0
    n_params_non_embedding: int = 0
    tokens_seen: int = 0
    wall_time_s: float = 0.0         # seconds in training steps (see train_run)
    tokens_per_s: float = 0.0        # tokens per second of those steps
    startup_s: float = 0.0           # seconds before them: build, init, compile
    device: str = ""
    arch: dict = field(default_factory=dict)     # derived sizes: heads, d_head, ffn_hidden
    curve: dict = field(default_factory=lambda: {k: [] for k in
                                                 ("step", "tokens", "lr", "train_loss", "val_loss")})
    diagnostics: list = field(default_factory=list)   # (step, name, value)

    @property
    def run_id(self) -> str:
        return self.spec.run_id


class MultiplierStream:
    """A run's LR multipliers (advisor.lr_schedule) read step by step, computed in chunks of
    ``chunk`` steps: memory stays O(chunk) however long the run (a T-sized array of a run
    with 1e12 steps would need 8 TB)."""

    def __init__(self, schedule: str, total_steps: int, chunk: int = 4096):
        from advisor.lr_schedule import parse_schedule

        self.schedule = parse_schedule(schedule)
        self.total, self.chunk = int(total_steps), int(chunk)
        self._lo, self._values = 0, None

    def at(self, step: int) -> float:
        """The multiplier of ``step`` (1-based); 0 past the end of the run."""
        if step > self.total:
            return 0.0
        i = step - 1
        if self._values is None or not self._lo <= i < self._lo + len(self._values):
            self._lo = i - i % self.chunk
            self._values = self.schedule.multipliers(
                self.total, self._lo, min(self._lo + self.chunk, self.total))
        return float(self._values[i - self._lo])

    def block(self, first: int, n: int):
        """Multipliers of steps first..first+n-1 as a float64 array (0 past the end)."""
        import numpy as np

        lo, hi = first - 1, min(first - 1 + n, self.total)
        out = np.zeros(n)
        if hi > lo:
            out[:hi - lo] = self.schedule.multipliers(self.total, lo, hi)
        return out


def resolve_device(device: str | None = None) -> str:
    """'auto' or None -> 'cuda' when available, else 'cpu'."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise AdvisorError(f"device {device} requested but CUDA is not available")
    return str(device)
