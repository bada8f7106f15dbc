"""Plausibility ranges for every value ``recommend`` writes: the one home for them.

Each output value has two ranges:

* ``usual``: where published pre-training runs put it. The bounds enclose every configuration
  in ``recipes/published/configs.yaml`` (135M-405B parameters; tests/test_recommend_trust.py
  checks that they still do) with a margin of a few times; outside them a value is possible
  but unusual, and the output carries a warning that says why.
* ``refuse``: outside it the value cannot be a sensible training setting (an LR of 4.9e24, a
  weight decay that removes more than 1% of every weight per step, a run of one step); the
  recommendation is refused with one line (exit 2), because a config file that carries such a
  number would be used.

Units: ``learning_rate`` is the peak AdamW LR; ``weight_decay`` the coupled AdamW lambda
(PyTorch convention); ``decay_per_step`` is lr * lambda, the fraction of each weight removed
per step at the peak LR; ``batch_size_tokens`` tokens per optimizer step; ``warmup_steps`` and
``total_steps`` optimizer steps; ``tokens_per_param`` training tokens / total parameters.
Pure functions; no I/O.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from advisor.errors import AdvisorError


@dataclass(frozen=True)
class Range:
    """Bounds of one output value. ``refuse``/``usual`` are (lo, hi); None = unbounded."""

    unit: str
    refuse: tuple
    usual: tuple
    why_low: str
    why_high: str


RANGES: dict[str, Range] = {
    "learning_rate": Range(
        "peak AdamW LR", (1e-6, 0.1), (2e-5, 1e-2),
        "published runs use peak LRs of 6e-5 (GPT-3 175B) and above",
        "published runs use peak LRs up to 3e-3 (SmolLM2-135M) and muP base LRs up to 1e-2; "
        "an AdamW LR above 0.1 diverges"),
    "weight_decay": Range(
        "coupled AdamW lambda", (0.0, 10.0), (1e-3, 1.0),
        "published runs use lambda 0.01-0.1 with coupled AdamW",
        "published runs use lambda 0.01-0.1 with coupled AdamW; above 10 the decay dominates "
        "any gradient step"),
    "decay_per_step": Range(
        "fraction of each weight removed per step (lr * lambda)", (0.0, 1e-2), (1e-7, 1e-3),
        "published runs remove 6e-6 (GPT-3 175B) to 3e-4 of each weight per step",
        "published runs remove at most 3e-4 of each weight per step; at 1% per step the "
        "weights are gone within a few hundred steps"),
    "batch_size_tokens": Range(
        "tokens per optimizer step", (1.0, 2e9), (3e4, 1e8),
        "published pre-training batches hold 0.5M tokens or more",
        "published pre-training batches hold at most 16M tokens (LLaMA 3 405B)"),
    "total_steps": Range(
        "optimizer steps", (100, None), (1000, None),
        "a run this short is not pre-training: the laws and the warmup rule assume thousands "
        "of steps", ""),
    "warmup_steps": Range(
        "optimizer steps", (0, None), (100, None),
        "published runs warm up over 117 (GPT-3 175B) to 8,000 steps (Llama 3 405B), and "
        "Wen et al. 2025 saw peak LRs of 8e-3 diverge with 500", ""),
    "tokens_per_param": Range(
        "training tokens per parameter", (0.01, 1e6), (1.0, 3e4),
        "below about 1 token per parameter a model has barely seen data",
        "published runs go up to about 15,000 tokens per parameter (SmolLM2-135M, 2T tokens)"),
}


def check(values: dict, advice: str = "refusing to write it (check the law file and "
          "--tokens)") -> list[str]:
    """Warnings for values outside their usual range; AdvisorError outside the refuse range.

    ``values`` maps a key of :data:`RANGES` to a number; every key present is checked, and a
    non-finite value is always refused. Returns the warnings (strings), in key order.
    """
    warnings = []
    for key, x in values.items():
        r = RANGES[key]
        x = float(x)
        if not math.isfinite(x):
            raise AdvisorError(f"{key} came out as {x}: refusing to write it")
        lo, hi = r.refuse
        if (lo is not None and x < lo) or (hi is not None and x > hi):
            bound = (f"below {lo:.3g}" if lo is not None and x < lo
                     else f"above {hi:.3g}")
            why = r.why_low if lo is not None and x < lo else r.why_high
            raise AdvisorError(f"{key} {x:.3g} ({r.unit}) is {bound}, outside anything "
                               f"that can train: {why}; {advice}")
        ulo, uhi = r.usual
        if ulo is not None and x < ulo:
            warnings.append(f"{key} {x:.3g} ({r.unit}) is unusually low (below {ulo:.3g}): "
                            f"{r.why_low}")
        elif uhi is not None and x > uhi:
            warnings.append(f"{key} {x:.3g} ({r.unit}) is unusually high (above {uhi:.3g}): "
                            f"{r.why_high}")
    return warnings


def check_target(params_total: float, tokens: float) -> list[str]:
    """The one input check of a training target (N total parameters, D tokens) shared by
    every command that takes one (``recommend``, ``compare``): AdvisorError when D / N is
    outside what can train (:data:`RANGES` ``tokens_per_param``), else its warnings."""
    if not (params_total > 0 and math.isfinite(params_total)):
        raise AdvisorError(f"params must be a positive number, got {params_total!r}")
    return check({"tokens_per_param": float(tokens) / float(params_total)},
                 f"refusing the target ({params_total:.3g} parameters, {float(tokens):.3g} "
                 "tokens; check --params and --tokens)")
