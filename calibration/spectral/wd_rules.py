"""Weight-decay width rules for the spectral checks: which coefficient each hidden matrix gets.

Shared by ``calibration.spectral.invariance`` (the family factory), ``steady`` and ``zoo``;
its own module so that those import it and not each other. Weight decay is PyTorch's (weights
x (1 - lr * wd) per step); width multipliers are mup's (``infshape.width_mult()``).
"""
from __future__ import annotations

from advisor.errors import AdvisorError
from advisor.rules.optim_rules import check_wd_rule, hidden_wd_multiplier
from calibration.model.groups import fan_in_multiplier, param_group


def apply_wd_rule(opt, weight_decay: float, rule: str) -> None:
    """Set PyTorch weight-decay coefficients on ``opt``: hidden matrices (the one classifier,
    ``calibration.model.groups.param_group``) get ``weight_decay`` x the rule's width
    multiplier (``advisor.rules.optim_rules.hidden_wd_multiplier``: m^e, e = WD_WIDTH_RULES[rule]:
    "none" constant, "sqrt" Fan et al.'s sqrt(d), "mup" x m as mup.MuAdamW, so that lr * wd
    per step is constant); every other parameter gets 0. Groups are split so that each
    parameter has its own coefficient; call before stepping."""
    check_wd_rule(rule)
    if not weight_decay >= 0:
        raise AdvisorError(f"weight decay must be >= 0, got {weight_decay}")
    new = []
    for g in opt.param_groups:
        by_wd: dict[float, list] = {}
        for p in g["params"]:
            hidden = param_group(p, default=None) == "hidden"      # no name: by infshape
            wd = (weight_decay * hidden_wd_multiplier(fan_in_multiplier(p), rule)
                  if hidden else 0.0)
            by_wd.setdefault(wd, []).append(p)
        for wd, params in by_wd.items():
            new.append({**{k: v for k, v in g.items() if k != "params"},
                        "params": params, "weight_decay": wd})
    opt.param_groups[:] = new
