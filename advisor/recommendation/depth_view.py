"""The depth view of a recommendation: how to carry a proxy's hyperparameters to a deeper model.

Pure computation from ``advisor.rules.optim_rules``: the proxy's base depth L0, the target's depth L
(its number of transformer blocks), m_L = L / L0, and for the chosen depth exponent alpha the
multiplier on every residual branch and the per-group multipliers of LR, weight decay, Adam eps
and init std, each relative to the proxy trained with the same base hyperparameters. The width
view (``mup`` in the recommendation) holds the width multipliers; ``with_width`` here gives the
products, what a muP + depth-scaled target applies in the end. Units: depths in blocks; every
multiplier is dimensionless.
"""
from __future__ import annotations

from advisor.errors import AdvisorError
from advisor.rules.optim_rules import ALPHAS, GROUPS, check_alpha, group_multipliers
from advisor.recommendation.blocks import DepthGroup, DepthView, WithWidth

DEFAULT_BASE_DEPTH = 4       # blocks of the shipped proxy family (recipes/families/proxy-llama.yaml)
DEFAULT_ALPHA = 1.0          # CompleteP: the exponent the depth coordinate check passes for

def _sig(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}")


def depth_view(depth: int, base_depth: int = DEFAULT_BASE_DEPTH, alpha: float = DEFAULT_ALPHA,
               width_mult: float = 1.0, target=None, wd_rule: str = "mup") -> DepthView:
    """The ``depth`` block of a recommendation.

    Args:
        depth: the target's number of blocks L.
        base_depth: the proxy's number of blocks L0 (the depth its base LR was tuned at).
        alpha: depth exponent: 0 (no depth scaling), 0.5 (Depth-muP) or 1 (CompleteP).
        width_mult: m_N = target width / proxy base width, for the ``with_width`` products.
        target: the target's groups at this depth (``advisor.specs.transfer.TargetGroups``,
            under the law's conventions), whose LRs the view states; None: omitted (a law
            that gives a peak LR, not a muP base LR).
        wd_rule: the weight-decay width rule of the ``with_width`` products
            (``advisor.rules.optim_rules.WD_WIDTH_RULES``; the muP view's).
    """
    for name, v in (("depth", depth), ("base depth", base_depth)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise AdvisorError(f"{name} must be a positive number of blocks, got {v!r}")
    a = check_alpha(alpha)
    m_l = depth / base_depth
    groups = []
    for g in GROUPS:
        d = group_multipliers(g, 1.0, m_l, a, wd_rule=wd_rule)
        w = group_multipliers(g, width_mult, m_l, a, wd_rule=wd_rule)
        groups.append(DepthGroup(
            group=g, what=GROUPS[g], lr_multiplier=_sig(d.lr),
            weight_decay_multiplier=_sig(d.weight_decay),
            decay_per_step_multiplier=_sig(d.decay_per_step), eps_multiplier=_sig(d.eps),
            init_std_multiplier=_sig(d.init_std),
            with_width=WithWidth(
                lr_multiplier=_sig(w.lr), weight_decay_multiplier=_sig(w.weight_decay),
                init_std_multiplier=_sig(w.init_std), output_multiplier=_sig(w.output),
                eps_multiplier=_sig(w.eps * w.eps_width),
                lr=None if target is None else _sig(target[g].lr, 3))))
    residual = group_multipliers("hidden", 1.0, m_l, a).residual
    rule = ALPHAS.get(a, f"depth exponent {a:g} (formulas of Dey et al. 2025, Table 1)")
    if a == 0.0:
        apply = ("no depth scaling: the proxy's LR is not expected to transfer in depth "
                 "(the depth coordinate check fails for alpha = 0)")
    else:
        apply = (f"only with an LR transferred from a depth-scaled proxy of {base_depth} "
                 "blocks (not with this recommendation's learning_rate, which a law fitted "
                 f"on standard models of the target's depth gives): multiply every residual "
                 f"branch by {_sig(residual)}: "
                 f"x = x + {_sig(residual)} * attn(norm(x)); x = x + {_sig(residual)} * "
                 f"mlp(norm(x)); give the parameters inside the blocks (hidden matrices and "
                 f"the blocks' norm gains and biases) LR x {_sig(m_l ** (a - 1.0))} and Adam "
                 f"eps x {_sig(residual)}; embedding, final norm and readout keep theirs; "
                 "init stds and weight decay unchanged in depth")
    return DepthView(
        base_depth=base_depth, depth=depth, depth_multiplier=_sig(m_l),
        alpha=a, rule=rule, residual_multiplier=_sig(residual),
        apply=apply, groups=tuple(groups),
        source=("advisor/rules/optim_rules.py: Depth-muP (Yang et al. 2023, arXiv 2310.02244; "
                "Bordelon et al. 2023, arXiv 2309.16620) at alpha 0.5, CompleteP (Dey et "
                "al. 2025, arXiv 2505.01618, Table 1) at alpha 1; checked on the CPU by "
                "tests/test_depth_coordcheck.py and recipes/plans/cpu-depth-sweep.yaml "
                "(docs/depth.md)"),
        note=("multipliers relative to a proxy of base_depth blocks trained with the same "
              "base hyperparameters; they apply when the LR is transferred from such a "
              "proxy, not to an LR a law fitted on standard models of the target's depth. "
              "with_width multiplies in the muP width rules (mup block); its eps "
              "multiplier includes CompleteP's 1/m_N (Dey et al. 2025, Eq. 40), which "
              "the proxy family does not apply"),
    )
