"""A calibration plan for the user's architecture and a compute budget (``advisor plan``).

Pure planning, no torch: from an :class:`advisor.specs.hfarch.Architecture` and a budget, the sweep
plan (advisor.specs.plan's YAML) whose runs identify a muP LR law, with its estimated cost.

What the plan holds, and why:

- **Proxies of the same architecture**: head size, GQA ratio, MLP ratio, QK-norm, biases,
  tying, RoPE base and vocabulary are the target's (``Architecture.proxy_settings``); width
  and depth are reduced. Widths are ``base x (1, 2, 4)``, base the smallest multiple of
  ``head_dim x kv_group`` (whole key/value heads) at or above the device's minimum width. The
  muP base width is the smallest proxy's, and the family's base constants are carried to it
  (hidden std x sqrt(128 / base), as recipes/plans/ci.yaml does).
- **Token budgets** ``D1`` and ``2 D1`` (a factor of 2 spans the 1.5x the identifiability
  rule of :mod:`advisor.fit.identify` asks for) and **widths** spanning 4x in N: the LR law in
  D is identified, and the N exponent (the transfer check, near 0 under muP) is measured.
- **Batch sizes**: three per cell when the budget buys them (a batch law then), else one.
- **LR grid**: factors of 2 over the device's range (wide enough to bracket the optimum on
  the shipped corpus; the fit flags an optimum at the edge of a grid).

The cost is an estimate, stated with its basis: training FLOPs per token
(:func:`advisor.specs.proxyspec.flops_per_token`) at an effective throughput, plus a per-step
overhead, plus the held-out evaluations. A budget that cannot buy ``MIN_STEPS`` optimiser steps
at the largest batch of the shortest budget is refused with what it would take.

Units: budget in device-seconds; widths in channels; tokens in tokens; batch in sequences.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from advisor.errors import AdvisorError
from advisor.specs.hfarch import Architecture

FAMILY_BASE_WIDTH = 128          # recipes/families/proxy-llama.yaml base.width
FAMILY_HIDDEN_STD = 0.0566       # its base.init_std_hidden at that width
WIDTH_FACTORS = (1, 2, 4)
D_FACTORS = (1, 2)
SCHEDULE = "wsd:warmup=0.05,cooldown=0.25,shape=1-sqrt"


# sigma / k (octaves^2) of the loss-vs-LR bowl near each cell's optimum, measured with the
# fitter's own window by bench/plan_noise.py (advisor.fit.plan_precision.cell_noise):
# the median over cells. The GPU plan's proxies have not been run: the Step Law grid's
# (real LLM training at its 2e8-1e9 parameters) stands in for them.
STEPLAW_NOISE_RATIO = 0.318
STEPLAW_NOISE_BASIS = ("median sigma/k over the Step Law grid's 17 cells (Li et al. 2025, "
                       "/work/shared/data/external, bench/plan_noise.py; 0.04-0.81): "
                       "assumed for these proxies, not measured on them")
CPU_NOISE_RATIO = 0.892
CPU_NOISE_BASIS = ("median sigma/k over the 6 cells of a real CPU sweep of this profile "
                   "(tests/data/user_model_cpu_sweep.csv, 162-324 steps; 0.25-5.7), "
                   "bench/plan_noise.py")


@dataclass(frozen=True)
class DeviceProfile:
    """How a device's proxies are shaped and what a step costs there (an estimate)."""

    name: str
    flops: float            # effective training FLOP/s of one proxy run
    step_s: float           # seconds of overhead per optimiser step
    min_width: int          # smallest proxy width, channels
    depth: int              # proxy depth, blocks
    seq_len: int            # tokens per sequence
    batch: int              # sequences per step (one batch size)
    batches: tuple          # three batch sizes (batch law)
    lr_pow2: tuple          # LR grid 2^lo .. 2^hi
    min_steps: int          # steps a run needs before its loss ranks LRs
    eval_interval: int
    eval_sequences: int
    basis: str
    noise_over_curvature: float   # sigma / k of the proxies' loss-vs-LR bowls, octaves^2
    noise_basis: str


PROFILES = {
    "cpu": DeviceProfile(
        "cpu", flops=1.0e10, step_s=0.004, min_width=16, depth=2, seq_len=64, batch=8,
        batches=(4, 8, 16), lr_pow2=(-9, -3), min_steps=150, eval_interval=25,
        eval_sequences=32,
        basis="1e10 FLOP/s and 4 ms per step for one proxy on one core: docs/calibration.md "
              "measured 12-23 GFLOP/s at widths 64-256 on a 2-core VM, less under load",
        noise_over_curvature=CPU_NOISE_RATIO,
        noise_basis=CPU_NOISE_BASIS),
    "h100": DeviceProfile(
        "h100", flops=0.3 * 989e12, step_s=0.02, min_width=128, depth=4, seq_len=256,
        batch=32, batches=(16, 32, 64), lr_pow2=(-12, -4), min_steps=300, eval_interval=50,
        eval_sequences=128,
        basis="30% of the H100 SXM's 989 TFLOP/s dense bf16 (NVIDIA datasheet) and 20 ms per "
              "step of launch overhead; assumed, not measured (no GPU run of this plan yet)",
        noise_over_curvature=STEPLAW_NOISE_RATIO,
        noise_basis=STEPLAW_NOISE_BASIS),
}


@dataclass(frozen=True)
class Budget:
    """A compute budget: ``seconds`` of one ``device`` (a key of PROFILES)."""

    device: str
    seconds: float
    text: str

    @classmethod
    def parse(cls, cpu_minutes=None, gpu_hours=None, gpu: str = "h100") -> "Budget":
        if (cpu_minutes is None) == (gpu_hours is None):
            raise AdvisorError("give one budget: --budget-cpu-minutes M or --budget-gpu-hours H")
        if gpu not in PROFILES or gpu == "cpu":
            raise AdvisorError(f"--gpu must be one of "
                               f"{', '.join(k for k in PROFILES if k != 'cpu')}, got {gpu!r}")
        value = cpu_minutes if cpu_minutes is not None else gpu_hours
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise AdvisorError(f"the budget must be a number, got {value!r}") from None
        if not math.isfinite(v) or v <= 0 or v > 1e6:
            raise AdvisorError(f"the budget must be a positive number up to 1e6, got {value!r}")
        if cpu_minutes is not None:
            return cls("cpu", 60.0 * v, f"{v:g} CPU minutes")
        return cls(gpu, 3600.0 * v, f"{v:g} {gpu.upper()} GPU hours")


def proxy_widths(arch: Architecture, profile: DeviceProfile) -> list[int]:
    """Proxy widths: base x WIDTH_FACTORS, base the smallest multiple of the width step at or
    above the device's minimum width, and never above the target's width."""
    step = arch.width_step
    base = step * max(1, math.ceil(profile.min_width / step))
    widths = [base * f for f in WIDTH_FACTORS]
    if widths[-1] > arch.d_model:
        raise AdvisorError(f"the target's width {arch.d_model} is below the largest proxy "
                           f"({widths[-1]} = 4 x {base}, whole key/value heads of "
                           f"{arch.head_dim} x {arch.kv_group}): calibrate at its own width")
    return widths


def non_embedding_params(arch: Architecture, width: int, depth: int) -> int:
    """Non-embedding parameters of a proxy (as calibration.model.count_params counts them)."""
    heads = width // arch.head_dim
    kv = (heads // arch.kv_group) * arch.head_dim
    ffn = int(round(arch.ffn_mult * width))
    block = 2 * width * width + 2 * width * kv + 3 * width * ffn + 2 * width
    if arch.qkv_bias:
        block += width + 2 * kv
    if arch.qk_norm:
        block += 2 * arch.head_dim
    return depth * block + width


def _run_seconds(arch, profile, width, tokens, batch) -> float:
    from advisor.specs.proxyspec import ProxyConfig, flops_per_token

    cfg = ProxyConfig(width=width, depth=profile.depth, head_dim=arch.head_dim,
                      kv_group=arch.kv_group, ffn_mult=arch.ffn_mult,
                      vocab_size=arch.vocab_size, seq_len=profile.seq_len,
                      tied_embeddings=arch.tied, base_width=width)
    steps = tokens // (batch * profile.seq_len)
    n_evals = steps // profile.eval_interval + 1
    eval_tokens = n_evals * profile.eval_sequences * profile.seq_len
    fpt = flops_per_token(cfg)
    return (tokens * fpt + eval_tokens * fpt / 3.0) / profile.flops + steps * profile.step_s


def plan_cost(arch, profile, widths, d1, batches, n_lr) -> float:
    """Estimated device-seconds of the whole sweep."""
    return n_lr * sum(_run_seconds(arch, profile, w, f * d1, b)
                      for w in widths for f in D_FACTORS for b in batches)


def _largest_d1(arch, profile, widths, batches, n_lr, seconds) -> int:
    """The largest first token budget (a whole number of the largest batch's steps) whose
    plan fits ``seconds``; 0 when not even one step does."""
    unit = max(batches) * profile.seq_len
    lo, hi = 0, 1
    while plan_cost(arch, profile, widths, hi * unit, batches, n_lr) <= seconds:
        lo, hi = hi, hi * 2
        if hi > 1e7:
            break
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if plan_cost(arch, profile, widths, mid * unit, batches, n_lr) <= seconds:
            lo = mid
        else:
            hi = mid
    return lo * unit


def planned_lr_sd(plan: dict, target_tokens: float) -> dict:
    """The expected sd (octaves) of the LR law a plan (:func:`make_plan`'s dict) will fit, at
    ``target_tokens``, from its design (:mod:`advisor.fit.plan_precision`): the LR grid's
    spacing and size, the seeds per LR, and the cells (widths x token budgets); with the
    profile's noise-to-curvature ratio and its basis."""
    from advisor.fit.plan_precision import law_sd_octaves, optimum_sd_octaves, window_lrs

    profile = PROFILES[plan["estimate"]["device"]]
    g, settings = plan["grid"], plan["settings"]
    lo, hi = g["lr"]["pow2"]
    n_lr = hi - lo + 1
    seeds = len(g["seed"]) if isinstance(g.get("seed"), list) else 1
    widths = g["width"] if isinstance(g["width"], list) else [g["width"]]
    cells = [d for _ in widths for d in g["tokens"]]
    cell_sd = optimum_sd_octaves(profile.noise_over_curvature, n_lr, 1.0, seeds)
    law_sd = law_sd_octaves(cell_sd, cells, target_tokens)
    return {"law_sd_octaves": round(law_sd, 4), "cell_sd_octaves": round(cell_sd, 4),
            "cells": len(cells), "lrs": n_lr, "spacing_octaves": 1.0, "seeds": seeds,
            "window_lrs": window_lrs(n_lr, seeds),
            "noise_over_curvature": profile.noise_over_curvature,
            "noise_basis": profile.noise_basis,
            "assumes": ("the fitter's noise model: each cell's loss a parabola in log2 LR with "
                        "independent noise, its optimum the least-squares quadratic's through "
                        "the window's runs, centred on it; the D-only muP law a straight line "
                        "in ln D through every cell (widths pooled); the same sigma/k in "
                        "every cell; the proxies' optimum transfers across width (muP, "
                        "checked by the fit's N exponent) and depth "
                        f"({settings.get('depth')} blocks) exactly")}


def _fmt_s(s: float) -> str:
    return f"{s / 3600:.3g} hours" if s >= 3600 else f"{s / 60:.3g} minutes"


def make_plan(arch: Architecture, budget: Budget, data: str = "stdlib",
              name: str = "calibration") -> dict:
    """The plan (a dict in advisor.specs.plan's YAML layout, plus ``target`` and ``estimate``) that
    identifies a muP LR law within ``budget``; AdvisorError with the reason when none fits."""
    from advisor.fit.identify import check_cells, span_reason

    profile = PROFILES[budget.device]
    widths = proxy_widths(arch, profile)
    lo, hi = profile.lr_pow2
    n_lr = hi - lo + 1
    chosen = None
    for batches in (profile.batches, (profile.batch,)):
        d1 = _largest_d1(arch, profile, widths, batches, n_lr, budget.seconds)
        steps = d1 // (max(batches) * profile.seq_len)
        if steps >= profile.min_steps:
            chosen = (batches, d1)
            break
    if chosen is None:
        need = plan_cost(arch, profile, widths,
                         profile.min_steps * profile.batch * profile.seq_len, (profile.batch,),
                         n_lr)
        raise AdvisorError(
            f"a budget of {budget.text} cannot buy an identified plan: proxies of widths "
            f"{', '.join(map(str, widths))} (vocabulary {arch.vocab_size}) x 2 token budgets x "
            f"{n_lr} LRs need at least {profile.min_steps} steps each, about "
            f"{_fmt_s(need)} at the estimated rate ({profile.basis})")
    batches, d1 = chosen
    Ns = [non_embedding_params(arch, w, profile.depth) for w in widths]
    Ds = [f * d1 for f in D_FACTORS]
    for values, var in ((Ns, "N"), (Ds, "D")):
        reason = span_reason(values, var)
        if reason:
            raise AdvisorError(f"the plan would not identify the law: {reason}")
    check_cells(len(Ns) * len(Ds))
    base = widths[0]
    settings = {"family": "proxy-llama", "data": data, "parameterization": "mup",
                "optimizer": "muadamw", "depth": profile.depth, "seq_len": profile.seq_len,
                "base_width": base,
                "init_std_hidden": round(FAMILY_HIDDEN_STD
                                         * math.sqrt(FAMILY_BASE_WIDTH / base), 5),
                **arch.proxy_settings(),
                "schedule": SCHEDULE, "weight_decay": 0.0,
                "eval_interval": profile.eval_interval,
                "eval_sequences": profile.eval_sequences, "seed": 0,
                # runs differing in LR and tokens train as one stack (tied embeddings too)
                "stack": True}
    grid = {"width": widths, "tokens": Ds,
            "batch_size": list(batches) if len(batches) > 1 else batches[0],
            "lr": {"pow2": [lo, hi]}}
    cost = plan_cost(arch, profile, widths, d1, batches, n_lr)
    n_runs = len(widths) * len(Ds) * len(batches) * n_lr
    return {
        "name": name,
        "description": (f"muP calibration of {arch.family} ({arch.source or 'sizes'}): "
                        f"{n_runs} runs, about {_fmt_s(cost)} of {budget.device}"),
        "target": arch.to_dict(),
        "estimate": {"device": budget.device, "budget_seconds": round(budget.seconds),
                     "seconds": round(cost), "runs": n_runs, "basis": profile.basis,
                     "N_non_embedding": list(Ns), "D_tokens": list(Ds),
                     "identifies": ("learning-rate law in D (muP base LR); N exponent "
                                    "measured as the transfer check"
                                    + ("; batch law in D" if len(batches) > 1 else
                                       "; one batch size: the LR law holds at it (no batch law)")),
                     "not_calibrated": ([f"depth: proxies have {profile.depth} blocks, the "
                                         f"target {arch.n_layers} (muP transfers width, not "
                                         "depth)"] + list(arch.notes))},
        "settings": settings,
        "grid": grid,
    }
