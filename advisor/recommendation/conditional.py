"""Recommendations *given* what the user has fixed: the LR at their batch, where their LR sits.

Pure functions over the constants of recipes/published/conditioning.yaml (written by
bench/conditional_eval.py from the Step Law grid and the tuned optima of
recipes/published/configs.yaml; docs/conditional.md has the evidence):

* the **ridge** g(u): the best LR at a batch B that is not the optimum B*, as an offset in
  octaves, ln lr*(B) - ln lr* = g(log2 B/B*) ln 2, measured on the loss surface fitted to Step
  Law's grid (advisor/fit/ridge.py). Its local slope names the published rule it follows
  (linear, square root, none);
* the **conditioned spread**: how far tuned optima lie from a law's LR once it is moved along
  the ridge to each optimum's own batch (sd in ln units; for the law of optima, each size left
  out of its fit), the construction whose coverage bench/conditional_eval.py measures with
  each setup held out; it gives the 80% and 95% intervals;
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

from advisor.common.numbers import positive_number
from advisor.errors import AdvisorError
from advisor.recommendation.blocks import (Beta2Given, EpsPerGroup, GivenBatch, GivenBlock,
                                           LrOptimumGiven, LrPlacement, LrRuleHere,
                                           WeightDecayViews)
from advisor.rules.lr_batch_rules import (LN2, Z80, Z95, local_slope, ridge_offset_oct,
                                          rule_for_slope)

SCHEMA = "hp-advisor/conditioning/v1"
DEFAULT_CONDITIONED_LAW = "optima-fit"   # whose held-out spread a law without its own uses
FAR_OUTSIDE = 4.0        # warn when a fixed batch lies this factor beyond the evidence


@lru_cache(maxsize=1)
def load_conditioning() -> dict:
    """The constants of recipes/published/conditioning.yaml (read once per process)."""
    from advisor.common.yamlio import read_shipped_yaml
    return read_shipped_yaml("published/conditioning.yaml", SCHEMA)


# ------------------------------------------------------------------------------ the ridge
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

    ``conditioned``: the batch is the user's (the ridge moved the LR) or the law's own. Both
    are the law's RMS ln error on all tuned optima (leave-one-size-out for the law of optima),
    the construction bench/conditional_eval.py tests with each setup held out.
    """
    key = "lr_sd_ln_conditioned" if conditioned else "lr_sd_ln_unconditioned"
    for name in (law, fallback):
        q = (cond.get("laws") or {}).get(name) or {}
        if q.get(key) is not None:
            return float(q[key]), name
    raise AdvisorError(f"recipes/published/conditioning.yaml has no {key} for {law!r}")


# ---------------------------------------------------------------------- a chosen LR
def lr_placement(lr: float, lr_opt: float, sd_ln: float, curvature_oct2: float) -> LrPlacement:
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
    return LrPlacement(value=lr, octaves_from_optimum=round(octs, 3), quantile=round(q, 3),
                       expected_cost_nats=float(f"{curvature_oct2 * octs * octs:.3g}"),
                       inside_80=abs(z) <= Z80, inside_95=abs(z) <= Z95)


def check_lr(lr) -> float:
    """A user's peak LR as a float, refused (AdvisorError) before any work when it is not
    positive or lies outside the refuse range of advisor/rules/plausibility.py."""
    from advisor.rules.plausibility import RANGES
    v = positive_number(lr, "--lr (the peak LR)")
    rng = RANGES["learning_rate"]
    lo, hi = rng.refuse
    if v > hi:
        raise AdvisorError(f"--lr {v:g} is not a peak AdamW LR that can train (above {hi:g}: "
                           f"{rng.why_high}); give the peak LR, e.g. 3e-4")
    if v < lo:
        raise AdvisorError(f"--lr {v:g} is below {lo:g}, too small to train "
                           f"({rng.why_low}); give the peak LR, e.g. 3e-4")
    return v


def resolve_batch(batch_tokens, batch_size, seq_len: int):
    """The user's global batch in tokens (or None), from --batch-tokens or --batch-size
    (sequences of ``seq_len`` tokens); contradictions raise AdvisorError."""
    from advisor.common.numbers import parse_count
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
                       total_steps: int) -> WeightDecayViews:
    """Weight decay ``wd`` (coupled, as torch.optim.AdamW) stated every way trainers take it.

    coupled: lambda, each step multiplies weights by (1 - lr_t lambda);
    independent (decoupled from the LR, Wang and Aitchison 2024's convention): the per-step
    decay lr_peak * lambda at the peak LR, which a trainer that does not multiply its decay by
    the LR takes as its weight decay;
    timescale: tau = 1 / (lr lambda) steps = B / (lr lambda) tokens, and tau as a fraction of
    the run (Wang and Aitchison 2024; Bergsma et al. 2025's tau = B / (lr lambda D)).
    """
    per_step = lr * wd
    if per_step <= 0:
        return WeightDecayViews(coupled=wd, independent_per_step=0.0, timescale_steps=None,
                                timescale_tokens=None, timescale_fraction_of_run=None)
    steps = 1.0 / per_step
    return WeightDecayViews(
        coupled=float(f"{wd:.4g}"), independent_per_step=float(f"{per_step:.4g}"),
        timescale_steps=round(steps, 1), timescale_tokens=float(f"{steps * batch_tokens:.4g}"),
        timescale_fraction_of_run=round(steps * batch_tokens / tokens, 4),
        run_steps=total_steps)


# --------------------------------------------------------------- the user's fixed choices
def parse_fixed(seq_len: int, batch_tokens=None, batch_size=None, lr=None, beta2=None,
                weight_decay=None, warmup=None, schedule=None) -> dict:
    """The user's fixed choices, checked before any work (AdvisorError on contradictions).

    Returns {"batch_tokens": int | None, "lr": float | None, "beta2": float | None,
    "weight_decay": float | None (coupled lambda), "warmup": int | None (steps),
    "schedule": spec str | None}.
    """
    out = {"batch_tokens": resolve_batch(batch_tokens, batch_size, seq_len),
           "lr": None if lr is None else check_lr(lr), "beta2": None, "weight_decay": None,
           "warmup": None, "schedule": None}
    if beta2 is not None:
        try:
            b = float(beta2)
        except (TypeError, ValueError):
            raise AdvisorError(f"--beta2 must be a number, got {beta2!r}") from None
        if not 0.0 < b < 1.0:
            raise AdvisorError(f"--beta2 must lie strictly between 0 and 1, got {beta2!r}")
        out["beta2"] = b
    if weight_decay is not None:
        try:
            w = float(weight_decay)
        except (TypeError, ValueError):
            raise AdvisorError(f"--weight-decay must be a number, got {weight_decay!r}") from None
        from advisor.rules.plausibility import RANGES
        lo, hi = RANGES["weight_decay"].refuse
        if not math.isfinite(w) or w < lo or w > hi:
            raise AdvisorError(f"--weight-decay must be a coupled AdamW lambda in [{lo:g}, "
                               f"{hi:g}], got {weight_decay!r}")
        out["weight_decay"] = w
    if warmup is not None:
        from advisor.common.numbers import parse_count
        out["warmup"] = int(parse_count(warmup, "warmup", minimum=0, maximum=1e9))
    if schedule is not None:
        from advisor.rules.lr_schedule import parse_schedule
        out["schedule"] = parse_schedule(str(schedule)).to_spec()
    return out


def conditioned_lr(lr_law: float, b_law: float, batch: float | None, law_name: str,
                   default_law: str, cond: dict) -> dict:
    """The LR optimum given the batch: the law's LR (at its own batch ``b_law``) moved along
    the ridge to ``batch`` (None: the law's own batch, nothing moves), and the spread of that
    prediction measured held out (sd in ln units)."""
    given = batch is not None
    info = lr_given_batch(lr_law, b_law, batch if given else b_law, cond)
    sd, measured_for = conditioned_sd(cond, law_name, given, default_law)
    return info | {"sd_ln": sd, "sd_measured_for": measured_for, "given": given}


def given_block(fixed: dict, *, lr_opt: float, lr_sd_ln: float, batch: float,
                b_opt: float, cond_info: dict, curvature_lr: float, curvature_batch: float,
                beta2: float, beta2_rec: float, wd: float, tokens: float,
                total_steps: int, eps: float | None = None,
                width_mult: float | None = None) -> GivenBlock:
    """The block ``given``: what the user fixed, where each choice sits relative to the
    optimum given the rest, and what it costs (nats per token; a quadratic bowl in octaves)."""
    b_oct = math.log2(batch / b_opt)
    given_batch = GivenBatch(
        tokens=batch, law_optimum_tokens=float(f"{b_opt:.4g}"),
        octaves_from_optimum=round(b_oct, 3),
        expected_cost_nats=float(f"{curvature_batch * b_oct * b_oct:.3g}"),
        lr_rule_here=LrRuleHere(
            local_slope_dlnlr_dlnB=round(cond_info["local_slope"], 3),
            rule=cond_info["rule"], regime=cond_info["regime"],
            regime_slope=cond_info["regime_slope"],
            source="ridge of the loss surface fitted to Step Law's grid "
                   "(recipes/published/conditioning.yaml)"))
    iv = intervals(lr_opt, lr_sd_ln)
    lr_opt_block = LrOptimumGiven(
        value=float(f"{lr_opt:.3g}"), unit="peak LR",
        interval_80=[float(f"{x:.3g}") for x in iv["interval_80"]],
        interval_95=[float(f"{x:.3g}") for x in iv["interval_95"]],
        sd_octaves=round(lr_sd_ln / LN2, 3))
    beta2_block = Beta2Given(
        value=beta2, half_life_tokens=float(f"{beta2_half_life_tokens(beta2, batch):.4g}"),
        recommended_for_this_batch=beta2_rec,
        recommended_half_life_tokens=float(f"{beta2_half_life_tokens(beta2_rec, batch):.4g}"),
        rule=("beta2 = 0.95^(B / 1M tokens) below 1M tokens (a fixed second-moment "
              "half-life in tokens; Porian et al. 2024 found beta2 0.99-0.999 essential at "
              "small batches), 0.95 above"))
    return GivenBlock(
        fixed={k: v for k, v in fixed.items() if v is not None}, batch=given_batch,
        lr_optimum_given_the_rest=lr_opt_block,
        lr=(None if fixed.get("lr") is None
            else lr_placement(fixed["lr"], lr_opt, lr_sd_ln, curvature_lr)),
        beta2=beta2_block,
        eps_per_group_mup=eps_per_group(eps, width_mult) if eps is not None and width_mult
        else None,
        weight_decay=weight_decay_views(lr_opt if fixed.get("lr") is None else fixed["lr"],
                                        wd, batch, tokens, total_steps))


def _with_interval(q, centre: float, setup_sd: float, measured_for: str, evidence: str):
    """A QuantityUncertainty ``q`` rebuilt around ``centre`` with sd^2 = setup_sd^2 +
    (its extrapolation term)^2, and 80% and 95% intervals."""
    from dataclasses import replace
    ext = float(q.components_ln.get("extrapolation", 0.0))
    sd = math.sqrt(setup_sd ** 2 + ext ** 2)
    iv = intervals(centre, sd)
    return replace(
        q, interval_95=[float(f"{x:.3g}") for x in iv["interval_95"]],
        interval_80=[float(f"{x:.3g}") for x in iv["interval_80"]],
        width_factor=round(iv["interval_95"][1] / iv["interval_95"][0], 2),
        sd_ln=round(sd, 4), sd_octaves=round(sd / LN2, 3),
        components_ln=dict(q.components_ln, setup_to_setup=round(setup_sd, 4), fit=0.0,
                           between_laws=0.0),
        setup_spread_measured_for=measured_for,
        construction=("sd^2 = setup_to_setup^2 + (kappa x)^2; intervals value * "
                      "exp(+-1.28 sd) (80%) and exp(+-1.96 sd) (95%)"),
        evidence=evidence)


def with_conditioned_lr(unc, lr_opt: float, cond_lr: dict, batch_sd_ln: float | None = None):
    """The uncertainty block with the LR's interval given the batch (and 80% intervals).

    LR: sd^2 = sd_given^2 + (kappa x)^2, ``sd_given`` the spread of tuned optima around the
    law's LR moved to their batch (conditioning.yaml), the extrapolation term the existing one
    (advisor/recommendation/uncertainty.py). Batch: its held-out spread on tuned optima where
    measured (``batch_sd_ln``), else its interval as it was, with an 80% one beside it.
    """
    from dataclasses import replace
    at = "at their own batch" if cond_lr["given"] else "at the law's batch"
    lr_q = _with_interval(
        unc.learning_rate, lr_opt, cond_lr["sd_ln"],
        f"{cond_lr['sd_measured_for']} (tuned optima, {at})",
        "setup_to_setup: RMS ln error of this law's LR on tuned optima, each at its own batch "
        "(the law's LR moved along the Step Law ridge) or at the law's batch when no batch is "
        "fixed; held out by setup in bench/conditional_eval.py "
        "(recipes/published/conditioning.yaml); kappa x: extrapolation beyond the law's "
        "fitted range")
    b = unc.batch_size_tokens
    centre = math.sqrt(b.interval_95[0] * b.interval_95[1])
    if batch_sd_ln is None:
        bi = intervals(centre, b.sd_ln)
        b_q = replace(b, interval_80=[float(f"{x:.3g}") for x in bi["interval_80"]])
    else:
        b_q = _with_interval(
            b, centre, batch_sd_ln,
            f"{cond_lr['sd_measured_for']} (tuned optima's batches held out by setup)",
            "setup_to_setup: RMS ln error of this law's batch on tuned optima held out by "
            "setup (recipes/published/conditioning.yaml); kappa x: extrapolation")
    return replace(unc, learning_rate=lr_q, batch_size_tokens=b_q)


def batch_sd(cond: dict, law: str) -> float | None:
    """The held-out spread (ln) of a law's batch on tuned optima, where measured."""
    v = ((cond.get("laws") or {}).get(law) or {}).get("batch_sd_ln")
    return None if v is None else float(v)


FAN_IN_WIDTH = ("hidden", "readout")


def eps_per_group(eps: float, width_mult: float) -> EpsPerGroup:
    """Adam's eps for each muP parameter group at width multiplier ``width_mult`` (width /
    base width): eps x the group's width factor (``advisor.rules.optim_rules``: 1/m for
    groups whose gradients shrink as 1/m under muP, Dey et al. 2025 Eq. 40), so eps keeps its
    size relative to the gradients it divides; the ``mup`` package and the proxies leave eps
    unscaled, which is harmless while eps is far below the gradient RMS."""
    from advisor.rules.optim_rules import GROUPS, group_multipliers
    out = {}
    for g in GROUPS:
        # the group's fan-in width multiplier: hidden matrices and the readout read the
        # width; the embedding (one-hot input) and the vectors do not
        m = group_multipliers(g, width_mult=width_mult if g in FAN_IN_WIDTH else 1.0)
        out[g] = float(f"{eps * m.eps_width:.3g}")
    return EpsPerGroup(value=out, base_eps=eps, width_multiplier=width_mult,
                       rule="eps x eps_width of advisor/rules/optim_rules.py "
                            "group_multipliers (CompleteP, Dey et al. 2025, Eq. 40)")
