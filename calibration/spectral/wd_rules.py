"""Weight-decay width rules for the spectral checks: which coefficient each hidden matrix gets.

Shared by ``calibration.spectral.invariance`` (the family factory), ``steady`` and ``zoo``;
its own module so that those import it and not each other. Weight decay is PyTorch's (weights
x (1 - lr * wd) per step); width multipliers are mup's (``infshape.width_mult()``).
"""
from __future__ import annotations

from advisor.errors import AdvisorError
from advisor.rules.optim_rules import WD_WIDTH_RULES as WD_EXPONENT


def apply_wd_rule(opt, weight_decay: float, rule: str) -> None:
    """Set PyTorch weight-decay coefficients on ``opt``: hidden matrices (mup infshape with
    two infinite dimensions) get ``weight_decay * m ** e`` with m their width multiplier and
    e = WD_EXPONENT[rule] ("none": constant; "sqrt": Fan et al.'s sqrt(d); "mup": x m, what
    mup.MuAdamW does, so that lr * wd per step is constant); every other parameter gets 0.
    Groups are split so that each parameter has its own coefficient; call before stepping."""
    if rule not in WD_EXPONENT:
        raise AdvisorError(f"weight-decay rule must be one of {sorted(WD_EXPONENT)}, got {rule!r}")
    if not weight_decay >= 0:
        raise AdvisorError(f"weight decay must be >= 0, got {weight_decay}")
    exp = WD_EXPONENT[rule]
    new = []
    for g in opt.param_groups:
        by_wd: dict[float, list] = {}
        for p in g["params"]:
            inf = getattr(p, "infshape", None)
            wd = (weight_decay * float(inf.width_mult()) ** exp
                  if inf is not None and inf.ninf() == 2 else 0.0)
            by_wd.setdefault(wd, []).append(p)
        for wd, params in by_wd.items():
            new.append({**{k: v for k, v in g.items() if k != "params"},
                        "params": params, "weight_decay": wd})
    opt.param_groups[:] = new
