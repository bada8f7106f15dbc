"""Sweep plans: YAML files (recipes/plans/*.yaml) expanded into run specs.

A plan::

    name: ci
    description: what it is for
    settings:            # one value each, shared by every run
      family: proxy-llama
      data: stdlib
      seq_len: 64
      head_dim: 16       # a model-family setting (ProxyConfig field) is allowed too
    grid:                # every combination of these lists (a scalar is a 1-point axis)
      parameterization: [mup, sp]
      width: [32, 64]
      lr: {pow2: [-9, -5]}     # 2^-9, 2^-8, ..., 2^-5 (factors of 2)
      seed: [0]

``grid`` may also be a list of such mappings: the plan is then the union of their products
(e.g. an SP arm with its own init). Keys are RunSpec fields (advisor.specs.runspec) or
ProxyConfig fields (advisor.specs.proxyspec; they go into the run's ``model`` overrides). Every
run is validated here, before any compute: an unknown key, a bad value, an empty axis or a
width the family cannot build is one AdvisorError naming the plan.

Bounds: every run's memory and time are estimated from its shape (:func:`run_bytes`,
:func:`run_seconds_lower_bound`, plain arithmetic). A run that would take longer than
:data:`MAX_RUN_S` even on an implausibly fast device is refused here; one whose estimated
peak memory exceeds the device's is refused by :func:`check_memory` (called by the sweep,
which knows the device), both saying how much the run would need.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

from advisor.errors import AdvisorError

PLANS_DIR = Path(__file__).resolve().parents[2] / "recipes" / "plans"
# target and estimate: what `advisor plan` planned for and what it estimated (informational)
_TOP_KEYS = {"name", "description", "settings", "grid", "target", "estimate"}
# ProxyConfig fields a plan may not set (they come from the RunSpec or the data).
# vocab_size may be set (a user's architecture keeps its vocabulary; the data's must fit).
_RESERVED_MODEL = {"width", "depth", "seq_len", "parameterization", "family"}


# Time bound: a run is refused when even MIN_STEP_S per step and PEAK_FLOPS of training
# throughput, both faster than any device of today (an optimiser step of the smallest proxy
# is dozens of kernel launches of several microseconds each; 1e15 FLOP/s is about an H100's
# dense bf16 peak), would take it more than MAX_RUN_S.
MIN_STEP_S = 1e-4                # seconds per optimiser step, at the very least
PEAK_FLOPS = 1e15                # training FLOP/s, at the very most
MAX_RUN_S = 30 * 86400.0         # seconds: a month per proxy run

# A plan's time on its device, before any compute (:func:`plan_seconds_lower_bound`): each
# run's steps at the device kind's best case, seconds per step and FLOP/s. The CPU figures
# are ten times better than measured here (docs/calibration.md: 0.094 TFLOP/s peak of a
# dense matmul, ~5,900 tokens/s at width 64, i.e. tens of ms per step); CUDA's are
# MIN_STEP_S and PEAK_FLOPS. A plan whose best case exceeds MAX_PLAN_S is refused unless
# forced (`advisor calibrate --force`).
DEVICE_BEST_CASE = {"cpu": (1e-3, 1e12), "cuda": (MIN_STEP_S, PEAK_FLOPS)}
MAX_PLAN_S = 86400.0             # seconds: a day of the device's best case

# Peak LRs a plan may ask for: Adam moves each weight by about the LR per step, so above 1
# every weight is rewritten each step (`recommend` refuses AdamW LRs above 0.1), and below
# 1e-7 a proxy run of thousands of steps learns nothing measurable.
PLAN_LR_RANGE = (1e-7, 1.0)
ADAM_BYTES_PER_PARAM = 16        # fp32 weight, gradient and two Adam moments
OVERHEAD_BYTES = 512 * 2 ** 20   # the framework itself, allocator slack


def run_bytes(width: int, depth: int, ffn_hidden: int, heads: int, vocab_size: int,
              seq_len: int, batch_size: int, tied: bool = False, act_bytes: int = 4) -> float:
    """Estimated peak memory of one training run in bytes (an estimate, not a bound).

    Parameters (embedding, ``depth`` blocks of attention 4 w^2 and SwiGLU 3 w f, readout
    unless tied) at 16 bytes each (weight, gradient, Adam's two moments, fp32); activations
    kept for the backward pass per token and block: about 10 w + 4 f values plus the
    attention probabilities (heads x seq_len, when the attention kernel materialises them),
    ``act_bytes`` each (4 in fp32, 2 under bf16 autocast); and the logits (B T V, three fp32
    copies: logits, their float cast, the softmax gradient); plus OVERHEAD_BYTES.
    """
    params = (depth * (4 * width ** 2 + 3 * width * ffn_hidden + 2 * width) + width
              + vocab_size * width * (1 if tied else 2))
    tokens = batch_size * seq_len
    acts = tokens * depth * (10 * width + 4 * ffn_hidden + heads * seq_len) * act_bytes
    logits = 3 * 4 * tokens * vocab_size
    return float(ADAM_BYTES_PER_PARAM * params + acts + logits + OVERHEAD_BYTES)


def run_seconds_lower_bound(steps: int, flops_per_step: float) -> float:
    """Seconds a run of ``steps`` optimiser steps of ``flops_per_step`` training FLOPs takes
    at least: each step costs MIN_STEP_S or its FLOPs at PEAK_FLOPS, whichever is more."""
    return float(steps) * max(MIN_STEP_S, float(flops_per_step) / PEAK_FLOPS)


def _fmt_bytes(b: float) -> str:
    for unit, scale in (("TiB", 2 ** 40), ("GiB", 2 ** 30), ("MiB", 2 ** 20)):
        if b >= scale:
            return f"{b / scale:.3g} {unit}"
    return f"{b:.0f} B"


def _fmt_seconds(s: float) -> str:
    for unit, scale in (("years", 365.25 * 86400), ("days", 86400), ("hours", 3600)):
        if s >= scale:
            v = f"{s / scale:.3g}"
            return f"{v} {unit[:-1] if v == '1' else unit}"
    return f"{s:.3g} s"


def _describe(spec) -> str:
    return (f"width={spec.width}, depth={spec.depth}, batch_size={spec.batch_size}, "
            f"seq_len={spec.seq_len}, tokens={spec.tokens:.3g}, lr={spec.lr:.3g}")


def spec_bytes(spec, vocab_size: int | None = None, act_bytes: int = 4) -> float:
    """:func:`run_bytes` of a RunSpec (its family's shape; the data's vocabulary if given)."""
    cfg = spec.model_config(vocab_size=vocab_size)
    return run_bytes(cfg.width, cfg.depth, cfg.ffn_hidden, cfg.heads, cfg.vocab_size,
                     spec.seq_len, spec.batch_size, cfg.tied_embeddings, act_bytes)


def check_time(label: str, spec, vocab_size: int | None = None) -> None:
    """AdvisorError when ``spec`` would run longer than MAX_RUN_S even on the fastest device."""
    from advisor.specs.proxyspec import flops_per_token

    cfg = spec.model_config(vocab_size=vocab_size)
    need = run_seconds_lower_bound(spec.steps, flops_per_token(cfg) * spec.tokens_per_step)
    if need > MAX_RUN_S:
        raise AdvisorError(
            f"plan {label}: run ({_describe(spec)}) has {spec.steps:.3g} steps and would take "
            f"at least {_fmt_seconds(need)} (at {MIN_STEP_S:g} s per step or "
            f"{PEAK_FLOPS:.0e} FLOP/s, faster than any device); a proxy run may take at most "
            f"{_fmt_seconds(MAX_RUN_S)}: lower tokens")


def plan_seconds_lower_bound(specs, device_kind: str, vocab_sizes: dict | None = None) -> float:
    """Seconds the runs ``specs`` take at least, one after another, on a device of kind
    ``device_kind`` ("cpu" or "cuda"): each step costs the kind's best-case seconds per step
    or its FLOPs at the kind's best-case FLOP/s (:data:`DEVICE_BEST_CASE`), whichever is
    more."""
    from advisor.specs.proxyspec import flops_per_token

    step_s, flops = DEVICE_BEST_CASE["cuda" if str(device_kind).startswith("cuda") else "cpu"]
    total = 0.0
    for spec in specs:
        cfg = spec.model_config(vocab_size=(vocab_sizes or {}).get(spec.data))
        per_step = flops_per_token(cfg) * spec.tokens_per_step
        total += float(spec.steps) * max(step_s, per_step / flops)
    return total


def describe_seconds(s: float) -> str:
    """Seconds as the largest fitting unit, 3 significant digits ("4.2 hours")."""
    return _fmt_seconds(s)


def check_plan_time(label: str, specs, device_kind: str, vocab_sizes: dict | None = None,
                    force: bool = False) -> float:
    """The plan's best-case seconds on ``device_kind`` (:func:`plan_seconds_lower_bound`);
    AdvisorError when that exceeds MAX_PLAN_S, unless ``force``."""
    need = plan_seconds_lower_bound(specs, device_kind, vocab_sizes)
    if need > MAX_PLAN_S and not force:
        raise AdvisorError(
            f"plan {label}: its {len(specs)} run(s) would take at least {_fmt_seconds(need)} "
            f"on {device_kind} (its best case: "
            f"{DEVICE_BEST_CASE['cuda' if device_kind.startswith('cuda') else 'cpu'][0]:g} s "
            f"per step at the least), more than {_fmt_seconds(MAX_PLAN_S)}: lower tokens or "
            "the grid, use a faster device, or pass --force to start it anyway")
    return need


def check_memory(label: str, specs, memory_bytes: float, where: str,
                 vocab_sizes: dict | None = None, act_bytes: int = 4) -> None:
    """AdvisorError for the first run whose estimated peak memory (:func:`run_bytes`)
    exceeds ``memory_bytes`` (what ``where``, e.g. "cuda:0", has)."""
    if not memory_bytes or not math.isfinite(memory_bytes):
        return
    for spec in specs:
        need = spec_bytes(spec, (vocab_sizes or {}).get(spec.data), act_bytes)
        if need > memory_bytes:
            raise AdvisorError(
                f"plan {label}: run ({_describe(spec)}) needs about {_fmt_bytes(need)} of "
                f"memory (weights, gradients and Adam state, activations, logits), more than "
                f"the {_fmt_bytes(memory_bytes)} of {where}: lower width, depth, batch_size "
                "or seq_len")


@dataclass(frozen=True)
class Plan:
    name: str
    description: str
    path: str
    specs: tuple          # RunSpec, de-duplicated, in grid order

    @property
    def data_specs(self) -> list[str]:
        return sorted({s.data for s in self.specs})


def _axis_values(plan_name: str, key: str, value) -> list:
    if isinstance(value, dict):
        if set(value) != {"pow2"}:
            raise AdvisorError(f"plan {plan_name}: axis {key!r} must be a list, a scalar or "
                               f"{{pow2: [lo, hi]}}, got keys {sorted(value)}")
        lohi = value["pow2"]
        if (not isinstance(lohi, list) or len(lohi) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in lohi)
                or lohi[0] > lohi[1]):
            raise AdvisorError(f"plan {plan_name}: {key}: pow2 needs two integers lo <= hi, "
                               f"got {lohi!r}")
        return [2.0 ** k for k in range(lohi[0], lohi[1] + 1)]
    if isinstance(value, list):
        if not value:
            raise AdvisorError(f"plan {plan_name}: grid axis {key!r} is empty")
        return value
    return [value]


def _split_keys(plan_name: str, d: dict, where: str) -> None:
    from advisor.specs.proxyspec import ProxyConfig
    from advisor.specs.runspec import RunSpec

    allowed = (RunSpec.field_names() - {"model"}) | (ProxyConfig.field_names() - _RESERVED_MODEL)
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise AdvisorError(f"plan {plan_name}: unknown key(s) in {where}: {', '.join(unknown)}")


def load_plan(name_or_path) -> Plan:
    """Read, expand and validate a plan (a name in recipes/plans/ or a path)."""
    from advisor.common.yamlio import read_yaml_file

    p = Path(name_or_path)
    if not p.suffix and not p.exists():
        p = PLANS_DIR / f"{name_or_path}.yaml"
    if not p.is_file():
        known = sorted(f.stem for f in PLANS_DIR.glob("*.yaml"))
        raise AdvisorError(f"no plan {name_or_path!r} (a YAML path, or one of: {', '.join(known)})")
    raw = read_yaml_file(p, "plan")
    if not isinstance(raw, dict):
        raise AdvisorError(f"plan {p} must be a YAML mapping")
    label = str(raw.get("name") or p.stem)
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise AdvisorError(f"plan {label}: unknown key(s) {', '.join(unknown)} "
                           f"(allowed: {', '.join(sorted(_TOP_KEYS))})")
    settings = raw.get("settings") or {}
    if not isinstance(settings, dict):
        raise AdvisorError(f"plan {label}: settings must be a mapping")
    _split_keys(label, settings, "settings")
    grids = raw.get("grid")
    if isinstance(grids, dict):
        grids = [grids]
    if not grids or not isinstance(grids, list) or not all(isinstance(g, dict) and g for g in grids):
        raise AdvisorError(f"plan {label}: empty grid (give `grid:` a mapping of axes)")
    specs, seen = [], set()
    for g in grids:
        _split_keys(label, g, "grid")
        keys = list(g)
        axes = [_axis_values(label, k, g[k]) for k in keys]
        for combo in itertools.product(*axes):
            merged = dict(settings)
            merged.update(zip(keys, combo))
            spec = _make_spec(label, merged)
            check_time(label, spec)
            if spec.run_id not in seen:
                seen.add(spec.run_id)
                specs.append(spec)
    return Plan(label, str(raw.get("description", "")), str(p), tuple(specs))


def _number(label: str, key: str, v):
    """YAML 1.1 reads 1e-3 (no dot) as a string: accept it as a number."""
    if isinstance(v, bool):
        raise AdvisorError(f"plan {label}: {key} must be a number, got {v!r}")
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            raise AdvisorError(f"plan {label}: {key} must be a number, got {v!r}") from None
    return float(v) if isinstance(v, int) and key != "tokens" else v


def _make_spec(label: str, merged: dict):
    from advisor.specs.runspec import RunSpec

    run_fields = RunSpec.field_names()
    run_kw = {k: v for k, v in merged.items() if k in run_fields}
    model = {k: v for k, v in merged.items() if k not in run_fields}
    for k in ("lr", "weight_decay", "eps", "beta1", "beta2", "grad_clip", "diverge_factor",
              "muon_momentum"):
        if k in run_kw:
            run_kw[k] = _number(label, k, run_kw[k])
    for k in ("tokens",):
        if k in run_kw:
            v = _number(label, k, run_kw[k])
            run_kw[k] = int(v) if isinstance(v, float) and v.is_integer() else v
    lr = run_kw.get("lr")
    lo, hi = PLAN_LR_RANGE
    if (isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0
            and math.isfinite(lr) and not lo <= lr <= hi):     # RunSpec refuses lr <= 0, nan
        desc = ", ".join(f"{k}={merged[k]}" for k in ("width", "depth") if k in merged)
        raise AdvisorError(f"plan {label}: run ({desc}) has lr {lr:.3g}, outside "
                           f"[{lo:g}, {hi:g}]: Adam moves each weight by about the LR per "
                           "step, so no such run can train (advisor recommend refuses AdamW "
                           "LRs above 0.1)")
    try:
        spec = RunSpec(model=tuple(sorted(model.items())), **run_kw)
        spec.model_config()                # can the family build this width?
    except AdvisorError as exc:
        desc = ", ".join(f"{k}={merged[k]}" for k in ("width", "depth", "lr") if k in merged)
        raise AdvisorError(f"plan {label}: run ({desc}): {exc}") from None
    except TypeError as exc:
        raise AdvisorError(f"plan {label}: {exc}") from None
    return spec
