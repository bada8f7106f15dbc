"""The trust blocks of a recommendation: 95% intervals and the expected excess loss.

Reads recipes/published/trust.yaml (written by bench/trust_evidence.py from the published
configurations and the Step Law grid) and applies advisor/recommendation/uncertainty.py's construction to one
target. Units: LR and batch intervals in their own units (peak LR; tokens per step); spreads
in ln units unless named ``_oct`` (octaves = log2 units); losses in nats per token; compute in
FLOPs; GPU time in hours.
"""
from __future__ import annotations

import math
from functools import lru_cache

from advisor.recommendation import uncertainty as un
from advisor.errors import AdvisorError
from advisor.laws.lawforms import log_interval
from advisor.recommendation.blocks import (AfterCalibration, ExcessLoss, QuantityUncertainty,
                                           SweepProxy, Value)

TRUST_SCHEMA = "hp-advisor/trust/v1"
QUANTITY_KEYS = {"learning_rate": "learning_rate", "batch_size": "batch_size_tokens"}
# Calibration sweep the expected-loss block prices: 5 LR values a factor of 2 apart (the
# spacing of Wen et al. 2025's AdamW sweep), on a muP proxy 1/8 of the target's width at the
# target's depth, trained compute-optimally (20 tokens per parameter).
SWEEP_POINTS = 5
SWEEP_SPACING_OCT = 1.0
PROXY_WIDTH_DIVISOR = 8
PROXY_TOKENS_PER_PARAM = 20.0
# Assumed sustained throughput for the cost arithmetic (not measured here: no GPU): an H100's
# dense bf16 peak of 989 TFLOP/s at 40% model-FLOPs utilisation.
ASSUMED_FLOPS_PER_GPU_S = 989e12 * 0.40


@lru_cache(maxsize=1)
def load_trust() -> dict:
    from advisor.common.yamlio import read_shipped_yaml
    return read_shipped_yaml("published/trust.yaml", TRUST_SCHEMA)


def _setup_sd(trust: dict, law_name: str, quantity: str, fallback: str):
    """(sd in ln units, which law's measurement it is) for a law set and quantity."""
    for name in (law_name, fallback):
        q = (trust.get("laws", {}).get(name) or {}).get(quantity)
        if q and q.get("setup_sd_ln") is not None:
            return float(q["setup_sd_ln"]), name
    raise AdvisorError(f"recipes/published/trust.yaml has no setup spread for {quantity}")


CREDIBLE_FACTOR = 1.4


def credible_laws(laws_table: dict, quantity: str) -> set:
    """Law sets whose measured setup spread for ``quantity`` is within CREDIBLE_FACTOR of the
    best one's: the laws the evidence does not rank far behind, whose disagreement is the
    model uncertainty (a law far off on every setup would only measure its own error)."""
    sds = {name: q[quantity]["setup_sd_ln"] for name, q in laws_table.items()
           if q.get(quantity, {}).get("setup_sd_ln") is not None}
    best = min(sds.values())
    return {name for name, sd in sds.items() if sd <= CREDIBLE_FACTOR * best}


def quantity_uncertainty(primary, quantity: str, value: float, variables: dict,
                         law_values: dict, fallback_law: str) -> QuantityUncertainty:
    """Interval and its components for ``quantity`` of law set ``primary`` at one target.

    ``variables`` are the law's variables at the target (N in its convention, D, ...);
    ``law_values`` maps shipped law names to their values there (for the model spread; only
    the :func:`credible_laws` enter it).
    """
    trust = load_trust()
    credible = credible_laws(trust["laws"], quantity)
    law_values = [v for name, v in law_values.items() if name in credible]
    law = primary.laws[quantity]
    fit = log_interval(law, variables)
    sd_fit = 0.0 if fit is None else math.log(fit[1] / fit[0]) / (2 * un.Z95)
    sd_setup, measured_on = _setup_sd(trust, primary.name, quantity, fallback_law)
    sd_laws = un.spread_ln(law_values)
    kappa = float(trust["kappa"][quantity]["value"])
    x = un.extrapolation_ln(law.get("fitted_range"), variables)
    sd = un.combine(sd_fit, sd_setup, sd_laws, kappa, x)
    lo, hi = un.interval(value, sd)
    cov = (trust.get("coverage", {}).get(quantity) or {}).get(primary.name)
    return QuantityUncertainty(
        interval_95=[float(f"{lo:.3g}"), float(f"{hi:.3g}")],
        width_factor=round(hi / lo, 2),
        sd_ln=round(sd, 4), sd_octaves=round(sd / un.LN2, 3),
        components_ln={"fit": round(sd_fit, 4), "setup_to_setup": round(sd_setup, 4),
                       "between_laws": round(sd_laws, 4),
                       "extrapolation": round(kappa * x, 4)},
        extrapolation_ln_distance=round(x, 3),
        setup_spread_measured_for=measured_on,
        construction=("sd^2 = fit^2 + max(setup_to_setup, between_laws)^2 + (kappa x)^2; "
                      "interval value * exp(+-1.96 sd) (advisor/recommendation/uncertainty.py)"),
        evidence=("setup_to_setup: the 95th percentile of |ln ratio| of this law set to "
                  "published runs and tuned optima it was not fitted on, / 1.96 "
                  "(recipes/published/trust.yaml, from bench/trust_evidence.py); "
                  "between_laws: sd of ln values of the laws the evidence ranks within "
                  f"{CREDIBLE_FACTOR}x of the best ({', '.join(sorted(credible))}); "
                  "kappa = sd of the shipped laws' exponents"),
        coverage_held_out=cov)


def curvature_lr(n_non_embedding: float, tokens: float) -> tuple[float, str]:
    """Loss-vs-LR curvature (nats per octave^2) at the target, from the Step Law grid trend,
    clipped to the range measured on the grid (no extrapolation beyond it)."""
    c = load_trust()["curvature"]["learning_rate"]
    raw = float(c["coefficient"]) * n_non_embedding ** float(c["exponents"]["N"]) \
        * tokens ** float(c["exponents"]["D"])
    lo, hi = (float(v) for v in c["clip"])
    value = min(max(raw, lo), hi)
    note = ("trend of the Step Law grid's 17 cells, "
            f"{float(c['coefficient']):.4g} N^{c['exponents']['N']} D^{c['exponents']['D']}")
    if value != raw:
        note += f" ({raw:.3g} here), clipped to the measured range [{lo:.3g}, {hi:.3g}]"
    return value, note


def curvature_batch() -> float:
    """Loss-vs-batch curvature (nats per octave^2): the median over the Step Law grid's cells
    (recipes/published/trust.yaml)."""
    return float(load_trust()["curvature"]["batch_size"]["median"])


def excess_loss_block(n_non_embedding: float, tokens: float, shape, sd_lr_ln: float,
                      sd_b_ln: float) -> ExcessLoss:
    """The block ``expected_excess_loss``: without calibrating, and after a sweep."""
    k_lr, k_note = curvature_lr(n_non_embedding, tokens)
    k_b = curvature_batch()
    sd_lr, sd_b = sd_lr_ln / un.LN2, sd_b_ln / un.LN2
    now = un.expected_excess_loss(k_lr, sd_lr, k_b, sd_b)
    ms_lr = un.mean_sq_error_after_sweep(sd_lr, SWEEP_POINTS, SWEEP_SPACING_OCT)
    ms_b = un.mean_sq_error_after_sweep(sd_b, SWEEP_POINTS, SWEEP_SPACING_OCT)
    after = k_lr * ms_lr + k_b * ms_b
    # cost: SWEEP_POINTS LR runs + SWEEP_POINTS batch runs on the proxy
    d_p = max(64, shape.d_model // PROXY_WIDTH_DIVISOR)
    f = max(64, shape.ffn_hidden // PROXY_WIDTH_DIVISOR)
    n_p = shape.n_layers * (4 * d_p * d_p + 3 * d_p * f)
    d_tokens = PROXY_TOKENS_PER_PARAM * n_p
    runs = 2 * SWEEP_POINTS
    flops = runs * 6.0 * n_p * d_tokens
    gpu_h = flops / ASSUMED_FLOPS_PER_GPU_S / 3600.0
    return ExcessLoss(
        value=float(f"{now:.3g}"), unit="nats per token (expected, over the interval)",
        source=("curvature_lr * E[err_lr^2] + curvature_batch * E[err_batch^2], err in "
                "octaves ~ N(0, sd^2) with the sd of the 95% intervals above; quadratic "
                "bowl in log2 LR and log2 batch; curvatures from the Step Law grid "
                "(recipes/published/trust.yaml)"),
        curvature_lr=Value(float(f"{k_lr:.3g}"), "nats per octave^2", k_note),
        curvature_batch=Value(k_b, "nats per octave^2",
                              "median over the Step Law grid's 17 cells"),
        sd_lr_octaves=round(sd_lr, 3), sd_batch_octaves=round(sd_b, 3),
        after_calibration=AfterCalibration(
            value=float(f"{after:.3g}"), unit="nats per token",
            sweep=(f"{SWEEP_POINTS} LRs and {SWEEP_POINTS} batch sizes, a factor of "
                   f"{2 ** SWEEP_SPACING_OCT:g} apart, centred on the recommendation"),
            assumes=("the sweep finds the grid point nearest the optimum (no noise) and "
                     "the proxy's optimum transfers to the target exactly (muP); the "
                     "transfer error is not measured here (needs a GPU). The proxy trains "
                     f"{PROXY_TOKENS_PER_PARAM:g} tokens per parameter: how the optimum "
                     "moves with the target's D comes from the law's D exponent, not "
                     "from the sweep"),
            proxy=SweepProxy(d_model=d_p, n_layers=shape.n_layers, ffn_hidden=f,
                             params_non_embedding=n_p, tokens=d_tokens),
            compute_flops=float(f"{flops:.3g}"),
            gpu_hours=float(f"{gpu_h:.3g}"),
            cost_arithmetic=(f"{runs} runs x 6 x {n_p:.3g} params x {d_tokens:.3g} tokens "
                             f"= {flops:.3g} FLOPs; / ({ASSUMED_FLOPS_PER_GPU_S:.3g} FLOP/s "
                             "assumed: H100 bf16 989 TFLOP/s at 40% MFU, not measured) "
                             f"= {gpu_h:.3g} GPU-hours")))
