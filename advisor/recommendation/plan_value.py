"""What a calibration plan buys (``advisor plan``): the expected excess loss at the target
before calibrating (``advisor recommend``'s own figure for the target with the default laws)
and after (the LR sd the planned sweep is expected to give, priced the same way).

Units: losses in nats per token; sds in octaves (log2 units); tokens in tokens.
"""
from __future__ import annotations

import math

from advisor.errors import AdvisorError
from advisor.recommendation import uncertainty as un
from advisor.recommendation.trust import load_trust


def plan_value(plan: dict, model_spec, tokens=None) -> dict:
    """The ``expected_excess_loss`` block of a plan (:func:`advisor.fit.design.make_plan`'s
    dict) for the target ``model_spec`` (advisor.specs.modelspec) trained on ``tokens``
    (default: ``recommend``'s): :func:`planned_excess_loss` with the design's LR sd
    (:func:`advisor.fit.design.planned_lr_sd`) and the design itself. AdvisorError when the
    default laws cannot price the target or the sweep identifies no D dependence."""
    from advisor.fit.design import planned_lr_sd
    from advisor.recommendation.core import recommend

    try:
        rec = recommend(model_spec=model_spec, tokens=tokens)
    except AdvisorError as exc:
        raise AdvisorError(f"cannot price what the plan buys at the target: advisor recommend "
                           f"refuses the default laws there ({exc}); give the target's "
                           "training tokens with --tokens") from None
    target_tokens = float(rec.target.tokens.value)
    design = planned_lr_sd(plan, target_tokens)
    Ds = plan["estimate"]["D_tokens"]
    buys = planned_excess_loss(rec.expected_excess_loss, design["law_sd_octaves"],
                               (min(Ds), max(Ds)), target_tokens,
                               describe_plan=f"a plan of {plan['estimate']['runs']} runs")
    return {**buys, "design": design}


def planned_excess_loss(before, lr_fit_sd_oct: float, fitted_tokens, target_tokens: float,
                        describe_plan: str = "the plan") -> dict:
    """What a calibration plan buys at the target: the expected excess loss (nats per token)
    before calibration, ``before`` (the :class:`ExcessLoss` block ``recommend`` prices for the
    target with the default laws), and after, with the LR sd the planned sweep is expected to
    give, priced the same way (curvature x E[err^2]).

    After: ``lr_fit_sd_oct`` (the sd of the fitted law at the target from the plan's design,
    :func:`advisor.fit.plan_precision.law_sd_octaves`) and, as ``recommend`` charges any law
    beyond its fitted range, kappa x (x: ln distance of ``target_tokens`` beyond
    ``fitted_tokens`` = (lo, hi)); no setup-to-setup term (the sweep measures the user's own
    setup, which is what calibrating is for). The batch term is the default laws', unchanged
    (this plan's batch is not priced). AdvisorError when the sweep identifies nothing (no
    finite LR sd). A plan whose after is not below before is still a plan (the user may
    calibrate for reasons the default laws cannot price: their own data, their own model):
    ``worth_it`` is then False and ``warning`` says why, with the figures.
    """
    kappa = float(load_trust()["kappa"]["learning_rate"]["value"])
    k_lr, k_b = float(before.curvature_lr.value), float(before.curvature_batch.value)
    sd_b = float(before.sd_batch_octaves)
    x = un.extrapolation_ln({"D": [float(fitted_tokens[0]), float(fitted_tokens[1])]},
                            {"D": float(target_tokens)})
    extra_oct = kappa * x / un.LN2
    where = (f"{describe_plan} buys nothing at the target's {target_tokens:.3g} tokens: the "
             f"expected excess loss before calibration is {before.value:.3g} nats/token "
             f"(LR sd {before.sd_lr_octaves:.2f} octaves, default laws)")
    if not math.isfinite(lr_fit_sd_oct):
        raise AdvisorError(f"{where}, and its sweep cannot fit the LR law's D dependence "
                           "(fewer than 3 cells or one token budget)")
    sd_lr = math.hypot(lr_fit_sd_oct, extra_oct)
    after = un.expected_excess_loss(k_lr, sd_lr, k_b, sd_b)
    worth_it = after < before.value
    warning = None if worth_it else (
        f"{where}; after it, {after:.3g} (LR sd {sd_lr:.2f} octaves: fit "
        f"{lr_fit_sd_oct:.2f}, extrapolation from its budgets "
        f"{fitted_tokens[0]:.3g}-{fitted_tokens[1]:.3g} tokens {extra_oct:.2f}): raise the "
        "budget, or give the target's training tokens (--tokens) if they are fewer")
    return {
        "unit": "nats per token at the target (expected, over the LR and batch intervals)",
        "target_tokens": float(f"{target_tokens:.4g}"),
        "before": {"value": float(before.value),
                   "lr_sd_octaves": float(before.sd_lr_octaves), "batch_sd_octaves": sd_b,
                   "source": "advisor recommend's expected_excess_loss for the target with "
                             "the default laws (the same figure)"},
        "after": {"value": float(f"{after:.3g}"), "lr_sd_octaves": round(sd_lr, 3),
                  "lr_sd_components_octaves": {"fit": round(lr_fit_sd_oct, 3),
                                               "extrapolation_in_D": round(extra_oct, 3)},
                  "batch_sd_octaves": sd_b},
        "saves": float(f"{before.value - after:.3g}"),
        "worth_it": bool(worth_it),
        **({"warning": warning} if warning else {}),
        "curvature": {"learning_rate": k_lr, "batch_size": k_b,
                      "unit": "nats per octave^2 (recommend's, at the target)"},
        "construction": (
            "after = curvature_lr sd_lr^2 + curvature_batch sd_batch^2 (recommend's "
            "pricing); sd_lr^2 = fit^2 + (kappa x)^2 with fit the sd of the fitted LR law at "
            "the target from the plan's design (advisor/fit/plan_precision.py) and kappa x "
            f"recommend's extrapolation term (kappa {kappa:g} per ln unit of D beyond the "
            "sweep's budgets); no setup-to-setup term after calibrating; batch term "
            "unchanged"),
    }
