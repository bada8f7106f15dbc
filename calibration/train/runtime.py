"""What single and stacked training share: a run's result, its LR multipliers, the device.

``RunResult`` is what a run produced (the store keeps all of it); ``MultiplierStream`` reads a
run's LR schedule (advisor.rules.lr_schedule) step by step; ``resolve_device`` turns 'auto' into a
torch device name. ``calibration.train.single`` (one run) and ``calibration.train.stacked`` (many runs as
one model) both build on this module and not on each other.

Units: losses in nats per token, times in seconds, tokens in tokens.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from advisor.errors import AdvisorError
from advisor.specs.runspec import RunSpec
from advisor.runs.store import RunMetrics


@dataclass
class RunResult(RunMetrics):
    """What a run produced: its spec and status, :class:`advisor.runs.store.RunMetrics` (keywords;
    ``wall_time_s`` as train_run times it), and what only the store's other tables keep."""

    spec: RunSpec
    status: str                      # finished | diverged | failed
    startup_s: float = 0.0           # seconds before the training steps: build, init, compile
    arch: dict = field(default_factory=dict)     # derived sizes: heads, d_head, ffn_hidden
    curve: dict = field(default_factory=lambda: {k: [] for k in
                                                 ("step", "tokens", "lr", "train_loss", "val_loss")})
    diagnostics: list = field(default_factory=list)   # (step, name, value)

    @property
    def run_id(self) -> str:
        return self.spec.run_id


class MultiplierStream:
    """A run's LR multipliers (advisor.rules.lr_schedule) read step by step, computed in chunks of
    ``chunk`` steps: memory stays O(chunk) however long the run (a T-sized array of a run
    with 1e12 steps would need 8 TB)."""

    def __init__(self, schedule: str, total_steps: int, chunk: int = 4096):
        from advisor.rules.lr_schedule import parse_schedule

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


DEVICE_FORMS = "auto, cpu, cuda or cuda:N"


def check_device_name(device: str | None) -> str:
    """The device name if it is one of :data:`DEVICE_FORMS`, else AdvisorError (bad input,
    found before any run); torch-free, so a remote executor's device is checked too."""
    import re

    d = "auto" if device is None else str(device)
    if not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", d):
        raise AdvisorError(f"--device must be {DEVICE_FORMS}, got {d!r}")
    return d


def resolve_device(device: str | None = None) -> str:
    """'auto' or None -> 'cuda' when available, else 'cpu'. AdvisorError for a name that is
    not a device (:func:`check_device_name`), CUDA asked for where there is none, or a CUDA
    index this machine does not have."""
    import torch

    d = check_device_name(device)
    if d == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if d.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AdvisorError(f"device {d} requested but CUDA is not available "
                               "(use --device cpu)")
        n = torch.cuda.device_count()
        if ":" in d and int(d.split(":")[1]) >= n:
            raise AdvisorError(f"device {d} requested but this machine has {n} CUDA "
                               f"device(s): cuda:0 to cuda:{n - 1}")
    return d


def wants_compile(spec, device) -> bool:
    """torch.compile a run's step: ``compile: always``, or ``auto`` on CUDA (never on the CPU
    unless asked); one rule for single and stacked runs."""
    return spec.compile == "always" or (spec.compile == "auto" and str(device).startswith("cuda"))


def autocast_for(device):
    """A context-manager factory for the forward passes: bf16 autocast on CUDA, none (fp32 or
    the default dtype) elsewhere."""
    import contextlib

    if str(device).startswith("cuda"):
        import torch

        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def heldout_loss(data, spec, device, summed_ce):
    """Held-out loss (nats/token) on the run's fixed windows (calibration.train.data.heldout_batches:
    the same for every run on this data), for single and stacked runs alike.

    ``summed_ce(x, y)``: the summed cross-entropy of one batch, a scalar tensor (one run) or
    one per stack member; summed in float64 and divided by the tokens scored. Returns a
    float64 tensor of that shape.
    """
    import torch

    from calibration.train.data import heldout_batches

    total, n = None, 0
    with torch.no_grad():
        for x, y in heldout_batches(data, spec.seq_len, spec.eval_sequences, spec.batch_size,
                                    device):
            s = summed_ce(x, y).double()
            total = s if total is None else total + s
            n += y.numel()
    return total / n


# Added to a run's seed for its training batches, so data order and initialisation draw
# from different streams.
SAMPLER_SEED_OFFSET = 1_000_003


def batch_sampler(data, spec):
    """The one source of a run's training batch windows (calibration.train.data.BatchSampler),
    for single and stacked runs alike: same data, batch, length and seed, same windows."""
    from calibration.train.data import BatchSampler

    return BatchSampler(data, spec.batch_size, spec.seq_len,
                        seed=spec.seed + SAMPLER_SEED_OFFSET)


class RunTracker:
    """One run's bookkeeping, host side, shared by ``calibration.train.single.train_run`` and each
    member of a stack (``calibration.train.stacked``): tokens seen, divergence (a non-finite loss,
    or after step 10 an EMA (0.9) of the training loss above ``diverge_factor`` x the first
    loss), and the curve (mean training loss since the previous point, held-out loss, LR,
    tokens) every ``eval_interval`` steps and at the run's last step. Losses in nats per
    token."""

    def __init__(self, spec, result):
        self.spec, self.result = spec, result
        self.first_loss = None
        self.ema = None
        self.since, self.since_n = 0.0, 0
        self.status = "finished"
        self.done = False          # result final and reported
        self.end_step = spec.steps

    def record(self, step: int, loss_v: float) -> bool:
        """Take the training loss of ``step``; True when this step ends the run."""
        spec = self.spec
        self.result.tokens_seen = step * spec.tokens_per_step
        if not math.isfinite(loss_v):
            self.status = "diverged"
        else:
            self.first_loss = loss_v if self.first_loss is None else self.first_loss
            self.ema = loss_v if self.ema is None else 0.9 * self.ema + 0.1 * loss_v
            self.since += loss_v
            self.since_n += 1
            if step > 10 and self.ema > spec.diverge_factor * self.first_loss:
                self.status = "diverged"
        if self.status == "diverged":
            self.end_step = step
        return step == spec.steps or self.status == "diverged"

    def wants_curve_point(self, step: int) -> bool:
        return step % self.spec.eval_interval == 0 or step == self.end_step

    def add_curve_point(self, step: int, lr_mult: float, val: float) -> None:
        c = self.result.curve
        c["step"].append(step)
        c["tokens"].append(step * self.spec.tokens_per_step)
        c["lr"].append(self.spec.lr * lr_mult)
        c["train_loss"].append(self.since / self.since_n if self.since_n else math.nan)
        c["val_loss"].append(val)
        self.since, self.since_n = 0.0, 0

    def add_probes(self, step: int, values: dict) -> None:
        """Keep the stability probes of ``step`` (calibration.train.stability_probe) as diagnostics."""
        self.result.diagnostics.extend((step, name, float(v)) for name, v in values.items())
