"""Recommendations *given* what the user has fixed: the LR at their batch, where their LR sits.

Pure functions over the constants of recipes/published/conditioning.yaml (written by
bench/conditional_eval.py from the Step Law grid and the tuned optima of
recipes/published/configs.yaml; docs/conditional.md has the evidence):

* the **ridge** g(u): the best LR at a batch B that is not the optimum B*, as an offset in
  octaves, ln lr*(B) - ln lr* = g(log2 B/B*) ln 2, measured on the loss surface fitted to Step
  Law's grid (advisor/fit/ridge.py). Its local slope names the published rule it follows
  (linear, square root, none);
* the **conditioned spread**: how far tuned optima of setups a law never saw lie from that
  law's LR once it is moved along the ridge to each optimum's own batch (sd in ln units,
  leave-one-setup-out), giving the 80% and 95% intervals;
* where a **chosen LR** sits: octaves from the optimum, its quantile in the interval, and its
  expected loss cost (nats per token) from the curvature of loss in log2 LR;
* the optimizer settings that follow the batch and the horizon: Adam's beta2 as a half-life in
  tokens, weight decay coupled and independent, and its timescale.

Units: octaves = log2 units; sds in natural-log units unless named ``_oct``; batches in tokens
per optimizer step; losses in nats per token.
"""
from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources

from advisor.errors import AdvisorError

SCHEMA = "hp-advisor/conditioning/v1"
LN2 = math.log(2.0)
Z80 = 1.281552
Z95 = 1.959964
MAX_LR = 1.0             # a peak AdamW LR above this is not a training configuration
FAR_OUTSIDE = 4.0        # warn when a fixed batch lies this factor beyond the evidence


@lru_cache(maxsize=1)
def load_conditioning() -> dict:
    """The constants of recipes/published/conditioning.yaml (read once per process)."""
    from advisor.yamlio import parse_yaml_text
    text = (resources.files("recipes") / "published" / "conditioning.yaml").read_text(
        encoding="utf-8")
    d = parse_yaml_text(text, "recipes/published/conditioning.yaml")
    if not isinstance(d, dict) or d.get("schema") != SCHEMA:
        raise AdvisorError(f"recipes/published/conditioning.yaml: schema must be {SCHEMA!r}")
    return d


# ------------------------------------------------------------------------------ the ridge
# slope ranges (d ln lr* / d ln B) that name a published rule: the linear scaling rule
# (Goyal et al. 2017), the square-root rule (Hoffer et al. 2017; Malladi et al. 2022 for
# Adam), none (the LR optimum does not move with the batch)
RULES = (("linear", 0.75, 1.5), ("square root", 0.3, 0.75), ("none", -0.3, 0.3))


def rule_for_slope(slope: float) -> str:
    """The published scaling rule a local slope d ln lr*/d ln B is closest to."""
    for name, lo, hi in RULES:
        if lo <= slope < hi:
            return name
    return "lr falls as batch grows" if slope < -0.3 else "faster than linear"


def ridge_offset_oct(u_oct: float, knots_oct, values_oct) -> float:
    """g(u): LR offset (octaves) at batch offset ``u_oct`` (octaves of B / B*).

    Linear between the tabulated knots; beyond them the edge segment's slope continues
    (the caller warns: that is outside the grid).
    """
    k, g = list(knots_oct), list(values_oct)
    if len(k) < 2 or len(k) != len(g):
        raise AdvisorError("conditioning ridge needs at least two knots")
    if u_oct <= k[0]:
        i = 0
    elif u_oct >= k[-1]:
        i = len(k) - 2
    else:
        i = max(j for j in range(len(k) - 1) if k[j] <= u_oct)
    t = (u_oct - k[i]) / (k[i + 1] - k[i])
    return g[i] + t * (g[i + 1] - g[i])


def local_slope(u_oct: float, knots_oct, values_oct, half_width: float = 0.5) -> float:
    """d ln lr* / d ln B of the ridge around ``u_oct`` (a central difference over +-0.5 octave)."""
    a = ridge_offset_oct(u_oct - half_width, knots_oct, values_oct)
    b = ridge_offset_oct(u_oct + half_width, knots_oct, values_oct)
    return (b - a) / (2 * half_width)


def regime_at(u_oct: float, regimes) -> dict | None:
    """The measured regime (small batch, near the optimum, large batch) containing ``u_oct``."""
    for r in regimes:
        lo = -math.inf if r["regime"].startswith("small") else float(r["from_oct"])
        hi = math.inf if r["regime"].startswith("large") else float(r["to_oct"])
        if lo <= u_oct <= hi:
            return r
    return None


def lr_given_batch(lr_star: float, b_star: float, batch: float, cond: dict) -> dict:
    """The LR optimum at ``batch`` tokens, from a law's optimum ``lr_star`` at ``b_star``.

    Returns lr, the offsets in octaves, the local slope and the rule it follows, and whether
    ``batch`` lies beyond the ridge's measured range.
    """
    if not (lr_star > 0 and b_star > 0 and batch > 0):
        raise AdvisorError("lr_given_batch needs positive LR and batches")
    ridge = cond["ridge"]
    knots, vals = ridge["knots_oct"], ridge["lr_offset_oct"]
    u = math.log2(batch / b_star)
    g = ridge_offset_oct(u, knots, vals)
    slope = local_slope(u, knots, vals)
    reg = regime_at(u, ridge.get("regimes", ()))
    return {"lr": lr_star * 2.0 ** g, "batch_offset_oct": u, "lr_offset_oct": g,
            "local_slope": slope, "rule": rule_for_slope(slope),
            "regime": None if reg is None else reg["regime"],
            "regime_slope": None if reg is None else reg["slope"],
            "outside_ridge": not (knots[0] <= u <= knots[-1])}


# -------------------------------------------------------------------------- the intervals
def intervals(value: float, sd_ln: float) -> dict:
    """80% and 95% intervals of a log-normal value: value * exp(+-z sd)."""
    if not (value > 0 and sd_ln >= 0 and math.isfinite(sd_ln)):
        raise AdvisorError("an interval needs a positive value and a finite spread")
    out = {}
    for name, z in (("interval_80", Z80), ("interval_95", Z95)):
        out[name] = (value * math.exp(-z * sd_ln), value * math.exp(z * sd_ln))
    return out


def conditioned_sd(cond: dict, law: str, conditioned: bool, fallback: str) -> tuple[float, str]:
    """(sd in ln units of the LR given the batch, the law it was measured for).

    ``conditioned``: the batch is the user's (the ridge moved the LR) or the law's own; both
    spreads are measured leave-one-setup-out on tuned optima at their own batch.
    """
    key = "lr_sd_ln_conditioned" if conditioned else "lr_sd_ln_unconditioned"
    for name in (law, fallback):
        q = (cond.get("laws") or {}).get(name) or {}
        if q.get(key) is not None:
            return float(q[key]), name
    raise AdvisorError(f"recipes/published/conditioning.yaml has no {key} for {law!r}")


# ---------------------------------------------------------------------- a chosen LR
def lr_placement(lr: float, lr_opt: float, sd_ln: float, curvature_oct2: float) -> dict:
    """Where a chosen LR sits relative to the optimum ``lr_opt`` (the centre of a log-normal
    belief with sd ``sd_ln``): octaves above (+) or below (-), the quantile of the optimum's
    distribution it sits at, and the expected loss cost of choosing it over ``lr_opt``.

    With the optimum ~ lr_opt * exp(N(0, sd^2)) and loss a bowl of ``curvature_oct2`` nats per
    octave^2 around the true optimum, E[cost(lr)] - E[cost(lr_opt)] = curvature * octaves^2.
    """
    if not (lr > 0 and lr_opt > 0):
        raise AdvisorError("an LR must be positive")
    octs = math.log2(lr / lr_opt)
    z = math.log(lr / lr_opt) / sd_ln if sd_ln > 0 else math.copysign(math.inf, octs)
    q = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0))) if math.isfinite(z) else float(octs > 0)
    return {"octaves_from_optimum": round(octs, 3), "quantile": round(q, 3),
            "expected_cost_nats": float(f"{curvature_oct2 * octs * octs:.3g}"),
            "inside_80": abs(z) <= Z80, "inside_95": abs(z) <= Z95}


def check_lr(lr) -> float:
    """A user's peak LR as a float, refused (AdvisorError) when not in (0, MAX_LR]."""
    try:
        v = float(lr)
    except (TypeError, ValueError):
        raise AdvisorError(f"--lr must be a number, got {lr!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise AdvisorError(f"--lr must be a positive peak LR, got {lr!r}")
    if v > MAX_LR:
        raise AdvisorError(f"--lr {v:g} is not a peak AdamW LR (above {MAX_LR:g}); "
                           "give the peak LR, e.g. 3e-4")
    return v


def resolve_batch(batch_tokens, batch_size, seq_len: int):
    """The user's global batch in tokens (or None), from --batch-tokens or --batch-size
    (sequences of ``seq_len`` tokens); contradictions raise AdvisorError."""
    from advisor.numbers import parse_count
    bt = None if batch_tokens is None else parse_count(batch_tokens, "batch-tokens",
                                                      minimum=1, maximum=1e10)
    bs = None if batch_size is None else parse_count(batch_size, "batch-size",
                                                    minimum=1, maximum=1e8)
    if bt is not None and bt != int(bt):
        raise AdvisorError(f"--batch-tokens must be a whole number of tokens, got {bt:g}")
    if bs is not None and bs != int(bs):
        raise AdvisorError(f"--batch-size must be a whole number of sequences, got {bs:g}")
    if bt is not None and int(bt) % seq_len:
        raise AdvisorError(f"--batch-tokens {int(bt)} is not a whole number of sequences of "
                           f"{seq_len} tokens (--seq-len); give a multiple of {seq_len}")
    if bt is not None and bs is not None and int(bs) * seq_len != int(bt):
        raise AdvisorError(f"--batch-size {int(bs)} x --seq-len {seq_len} = "
                           f"{int(bs) * seq_len} tokens contradicts --batch-tokens {int(bt)}")
    if bt is not None:
        return int(bt)
    return None if bs is None else int(bs) * seq_len


def evidence_range_warnings(batch: float | None, cond: dict) -> list[str]:
    """Warnings where a fixed batch lies far outside the batches of the evidence."""
    if batch is None:
        return []
    lo, hi = (float(x) for x in cond["evidence_range"]["batch_tokens"])
    if batch < lo / FAR_OUTSIDE or batch > hi * FAR_OUTSIDE:
        return [f"the batch of {batch:.4g} tokens lies far outside the evidence's batches "
                f"({lo:.3g}-{hi:.3g} tokens: the Step Law grid and the tuned optima of "
                "recipes/published/configs.yaml); the LR given it is extrapolated along the "
                "ridge"]
    return []


# ------------------------------------------------------------- optimizer settings
def beta2_half_life_tokens(beta2: float, batch_tokens: float) -> float:
    """Tokens over which Adam's second-moment average halves its weight: B ln 2 / -ln beta2."""
    if not 0.0 < beta2 < 1.0:
        raise AdvisorError(f"beta2 must be in (0, 1), got {beta2!r}")
    return batch_tokens * LN2 / -math.log(beta2)


def weight_decay_views(lr: float, wd: float, batch_tokens: float, tokens: float,
                       total_steps: int) -> dict:
    """Weight decay ``wd`` (coupled, as torch.optim.AdamW) stated every way trainers take it.

    coupled: lambda, each step multiplies weights by (1 - lr_t lambda);
    independent (decoupled from the LR, e.g. optax/Composer "decoupled" or Wang and Aitchison
    2024's convention): the per-step factor lr_peak * lambda at the peak LR;
    timescale: tau = 1 / (lr lambda) steps = B / (lr lambda) tokens, and tau as a fraction of
    the run (Wang and Aitchison 2024; Bergsma et al. 2025's tau = B / (lr lambda D)).
    """
    per_step = lr * wd
    if per_step <= 0:
        return {"coupled": wd, "independent_per_step": 0.0, "timescale_steps": None,
                "timescale_tokens": None, "timescale_fraction_of_run": None}
    steps = 1.0 / per_step
    return {"coupled": wd, "independent_per_step": float(f"{per_step:.4g}"),
            "timescale_steps": round(steps, 1),
            "timescale_tokens": float(f"{steps * batch_tokens:.4g}"),
            "timescale_fraction_of_run": round(steps * batch_tokens / tokens, 4),
            "run_steps": total_steps}


def coupled_from_independent(independent_per_step: float, lr: float) -> float:
    """The torch AdamW lambda that gives a per-step decay ``independent_per_step`` at peak ``lr``."""
    return independent_per_step / lr
