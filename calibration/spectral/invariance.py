"""The spectral width-invariance check behind ``advisor check-spectral``.

Train a model family for a few steps at three or more widths on real text (the Python
standard library's source bytes, ``calibration.data``), measure per layer

- ``act_rms``: RMS of the layer's output on a fixed probe batch after training;
- ``act_delta``: RMS of its change since initialisation on the same batch (the coordinate
  check's quantity: muP keeps it Theta(1) at every width);
- ``attn_delta`` / ``attn_rms``: the same for the attention logits scale * q k^T;
- ``update_op``: the kind-appropriate operator norm of the effective weight's change over
  the probe (sigma_max of dW on the Yang-Simon-Bernstein scale);
- ``weight_op``: the same norm of the effective weight itself,

and fit, per (layer, statistic), the least-squares slope of log(statistic) against
log(width). muP predicts slope 0 for all of them; a layer fails when |slope| > tol
(default 0.3: over widths 64-256 a factor 1.5). One-sided exceptions, which fail only when
they grow: the activations and the weight level of the output side (logits, readout), which
muP initialises below their natural scale (MuReadout divides by m) so that they shrink with
width, and the attention logits, which muP's 1/d_head scale starts near zero and which
grow only slowly in the first steps at larger head sizes (measured here: their change shrank
with width for the correct muP family in 20 steps, by a slope down to -0.3). The readout's
update must still keep its scale (two-sided).

The probe uses a small LR (2^-10 by default) and few steps so that training is still in the
early regime that muP's scaling describes; at 40 steps of LR 2^-7 the correct muP family
failed here on attention and MLP outputs of these small widths.

Every width starts from the same seed and sees the same batches. Units: widths in channels,
steps are optimizer steps of ``batch`` sequences of ``seq_len`` tokens.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from advisor.errors import AdvisorError

DEFAULT_TOL = 0.3
LEVEL_STATS = {"act_rms", "weight_op", "attn_rms"}


@dataclass
class Row:
    layer: str
    statistic: str
    slope: float
    verdict: str                       # "pass" | "FAIL"
    values: list[float] = field(default_factory=list)
    rule: str = "|slope| <= tol"

    def to_dict(self):
        return asdict(self)


@dataclass
class CheckResult:
    widths: list[int]
    steps: int
    tol: float
    rows: list[Row]

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == "FAIL"]

    @property
    def passed(self) -> bool:
        return not self.failed

    def to_dict(self):
        return {"widths": self.widths, "steps": self.steps, "tol": self.tol,
                "passed": self.passed, "failed_layers": sorted({r.layer for r in self.failed}),
                "rows": [r.to_dict() for r in self.rows]}

    def table(self, only_failures: bool = False) -> str:
        rows = self.failed if only_failures else self.rows
        w = max([len(r.layer) for r in rows] + [5])
        head = f"{'layer':<{w}}  {'statistic':<10} {'slope':>7}  verdict   values at widths {self.widths}"
        lines = [head, "-" * len(head)]
        for r in rows:
            vals = " ".join(f"{v:.3g}" for v in r.values)
            lines.append(f"{r.layer:<{w}}  {r.statistic:<10} {r.slope:>+7.3f}  {r.verdict:<8}  {vals}")
        n_fail = len(self.failed)
        lines.append(f"{len(self.rows) - n_fail} of {len(self.rows)} pass (tol {self.tol} on the "
                     f"log-log slope); " + ("PASS" if not n_fail else
                     f"FAIL: {', '.join(sorted({r.layer for r in self.failed}))}"))
        return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Pure parts: slope and verdict
# --------------------------------------------------------------------------------------

def loglog_slope(widths, values) -> float:
    """Least-squares slope of log(value) against log(width)."""
    x, y = np.log(np.asarray(widths, float)), np.log(np.asarray(values, float))
    x = x - x.mean()
    return float(np.dot(x, y - y.mean()) / np.dot(x, x))


def verdict(layer: str, statistic: str, kind: str, slope: float, tol: float) -> tuple[str, str]:
    """(verdict, rule) for one fitted slope (see the module docstring)."""
    output_side = kind == "readout" or layer == "logits"
    if (output_side and statistic.startswith("act_")) or (output_side and statistic in LEVEL_STATS) \
            or statistic.startswith("attn_"):
        return ("pass" if slope <= tol else "FAIL"), "slope <= tol (may shrink)"
    return ("pass" if abs(slope) <= tol else "FAIL"), "|slope| <= tol"


def classify(shapes: dict[int, dict[str, tuple]]) -> dict[str, str]:
    """Layer kind from how a (fan_out, fan_in) weight's shape changes with width:
    both sides grow -> hidden; only fan_out grows -> input; only fan_in grows -> readout."""
    ws = sorted(shapes)
    a, b = shapes[ws[0]], shapes[ws[-1]]
    kinds = {}
    for name in a:
        (o1, i1), (o2, i2) = a[name], b.get(name, a[name])
        grows_out, grows_in = o1 != o2, i1 != i2
        kinds[name] = ("hidden" if grows_out and grows_in else "input" if grows_out
                       else "readout" if grows_in else "fixed")
    return kinds


# --------------------------------------------------------------------------------------
# Factories and data
# --------------------------------------------------------------------------------------

def load_factory(spec: str) -> Callable:
    """'package.module:function' -> the function (AdvisorError if it cannot be found)."""
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise AdvisorError(f"--factory must look like package.module:function, got {spec!r}")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise AdvisorError(f"cannot import {mod_name!r}: {exc}") from None
    fn = getattr(mod, attr, None)
    if not callable(fn):
        raise AdvisorError(f"{mod_name!r} has no function {attr!r}")
    return fn


def family_factory(name: str, depth: int = 2, **overrides) -> Callable:
    """A factory over the project's proxy family (calibration.model), with model overrides
    (parameterization, attn_scale, readout, n_heads, ...) and ``optimizer`` ("muadamw" |
    "adamw") and ``lr``."""
    from calibration.model import ProxyConfig, build_model, build_optimizer

    kind = overrides.pop("optimizer", "muadamw")
    lr = overrides.pop("lr", 2 ** -10)
    ProxyConfig.from_family(name, width=128, depth=depth, **overrides)   # validate early

    def factory(width: int):
        cfg = ProxyConfig.from_family(name, width=width, depth=depth, **overrides)
        model = build_model(cfg, seed=0)
        return model, build_optimizer(model, cfg, lr=lr, weight_decay=0.0, kind=kind)

    factory.__name__ = f"{name}-family"
    return factory


def text_batches(n_batches: int, batch: int, seq_len: int, seed: int = 0):
    """``n_batches`` (inputs, targets) LongTensor pairs of real text (stdlib source bytes)."""
    import torch

    from calibration.data import load_data

    data = load_data("stdlib")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        starts = rng.integers(0, len(data.train) - seq_len - 1, size=batch)
        chunk = np.stack([np.asarray(data.train[s:s + seq_len + 1], dtype=np.int64) for s in starts])
        t = torch.from_numpy(chunk)
        out.append((t[:, :-1], t[:, 1:]))
    return out


# --------------------------------------------------------------------------------------
# Measurement at one width
# --------------------------------------------------------------------------------------

def _build(factory: Callable, width: int, lr: float):
    import torch

    made = factory(width)
    if isinstance(made, tuple):
        if len(made) != 2:
            raise AdvisorError("a factory must return a model or a (model, optimizer) pair")
        model, opt = made
    else:
        model, opt = made, None
    if not isinstance(model, torch.nn.Module):
        raise AdvisorError(f"the factory returned {type(model).__name__}, not a torch.nn.Module")
    if opt is None:
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    return model, opt


def measure_width(factory: Callable, width: int, steps: int, batches, probe, lr: float = 2 ** -10,
                  seed: int = 0) -> tuple[dict, dict]:
    """Train a fresh model of ``width`` for ``steps`` steps on ``batches`` (cycled) and return
    ({(layer, statistic): value}, {layer: (fan_out, fan_in)})."""
    import torch

    from calibration.spectral import probes

    torch.manual_seed(seed)
    model, opt = _build(factory, width, lr)
    model.train()
    x_probe = probe[0]
    before = probes.record(model, x_probe)
    logits = before["acts"]["logits"]
    if logits.ndim != 3 or logits.shape[:2] != x_probe.shape:
        raise AdvisorError(f"the model maps {tuple(x_probe.shape)} token ids to logits of shape "
                           f"{tuple(logits.shape)}; expected (batch, seq, vocab)")
    if not any(True for _ in model.parameters()):
        raise AdvisorError("the model has no parameters")
    w0 = probes.snapshot_weights(model)
    for step in range(steps):
        x, y = batches[step % len(batches)]
        out = probes.logits_of(model(x))
        loss = torch.nn.functional.cross_entropy(out.float().reshape(-1, out.shape[-1]), y.reshape(-1))
        if not torch.isfinite(loss):
            raise AdvisorError(f"width {width}: loss became {loss.item()} at step {step + 1}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    after = probes.record(model, x_probe)
    w1 = probes.snapshot_weights(model)

    stats = {}
    for name, a1 in after["acts"].items():
        a0 = before["acts"].get(name)
        stats[(name, "act_rms")] = probes.rms(a1)
        if a0 is not None and a0.shape == a1.shape:
            stats[(name, "act_delta")] = probes.rms(a1 - a0)
    for name, a1 in after["attn"].items():
        a0 = before["attn"].get(name)
        stats[(name, "attn_rms")] = probes.rms(a1)
        if a0 is not None and a0.shape == a1.shape:
            stats[(name, "attn_delta")] = probes.rms(a1 - a0)
    shapes = {n: tuple(m.shape) for n, m in w1.items()}
    return stats, {"shapes": shapes, "w0": w0, "w1": w1}


def run_check(factory: Callable, widths, steps: int = 20, tol: float = DEFAULT_TOL,
              batch: int = 8, seq_len: int = 64, lr: float = 2 ** -10, seed: int = 0,
              seeds: int = 2, progress: Callable[[str], None] | None = None) -> CheckResult:
    """Measure every width, fit slopes, give verdicts. See the module docstring."""
    from calibration.spectral import probes

    widths = sorted(int(w) for w in widths)
    if len(widths) < 3 or len(set(widths)) != len(widths) or widths[0] < 1:
        raise AdvisorError(f"need at least three distinct positive widths, got {widths}")
    if seeds < 1:
        raise AdvisorError(f"need at least one seed, got {seeds}")
    if steps < 1:
        raise AdvisorError(f"--steps must be at least 1, got {steps}")
    if not tol > 0:
        raise AdvisorError(f"tolerance must be positive, got {tol}")
    batches = text_batches(8, batch, seq_len, seed=seed)
    probe = text_batches(1, batch, seq_len, seed=seed + 1)[0]
    shapes_seen: dict[int, dict] = {}
    raw: dict[tuple, tuple] = {}
    logs: dict[int, dict] = {w: {} for w in widths}
    for s in range(seeds):
        for w in widths:
            if progress:
                progress(f"width {w}, seed {seed + s}: training {steps} steps")
            stats, wts = measure_width(factory, w, steps, batches, probe, lr=lr, seed=seed + s)
            shapes_seen[w] = wts["shapes"]
            raw[(w, s)] = (stats, wts)
    kinds = classify(shapes_seen)
    for (w, s), (stats, wts) in raw.items():      # weight statistics need the kinds
        k = {n: kinds.get(n, "hidden") for n in wts["w1"]}
        dw = {n: wts["w1"][n] - wts["w0"][n] for n in wts["w1"]}
        for n, v in probes.operator_norms(wts["w1"], k).items():
            stats[(n, "weight_op")] = v
        for n, v in probes.operator_norms(dw, k).items():
            stats[(n, "update_op")] = v
        for key, v in stats.items():
            logs[w].setdefault(key, []).append(math.log(v) if v > 0 else -math.inf)
    # geometric mean over seeds
    per_width = {w: {key: math.exp(sum(v) / len(v)) for key, v in logs[w].items()
                     if len(v) == seeds} for w in widths}
    rows = []
    keys = [key for key in per_width[widths[0]] if all(key in per_width[w] for w in widths)]
    for layer, stat in keys:
        kind = kinds.get(layer, "fixed" if layer == "logits" else "act")
        if kind == "fixed" and layer != "logits":
            continue                                 # neither side grows: nothing to test
        vals = [per_width[w][(layer, stat)] for w in widths]
        if not all(math.isfinite(v) and v > 0 for v in vals):
            continue                                 # e.g. a zero update of a frozen layer
        slope = loglog_slope(widths, vals)
        v, rule = verdict(layer, stat, kind, slope, tol)
        rows.append(Row(layer, stat, slope, v, vals, rule))
    return CheckResult(widths, steps, tol, rows)
