"""The one map from a base LR and weight decay to a target's per-group values.

:func:`target_groups` takes an LR and a weight decay *in the terms of a* :class:`Conventions`
record (``mup_base``: the LR and torch weight decay every group has at the muP base width and
depth; ``peak``: every group's peak LR and weight decay, as a standard-parameterisation run at
the target uses them) and returns each parameter group's peak LR and torch ``weight_decay`` at
a target width and depth, for AdamW or for Muon on the hidden matrices. The rules are
``advisor.rules.optim_rules`` (muP for Adam, Depth-muP/CompleteP, the weight-decay width rule,
Muon's width conventions); the recommendation's views (muP, depth, Muon) and the exporters read
what this returns, so a value is converted once and every view states the same number.

Units: widths in channels, depths in blocks; LRs are peak LRs of the schedule; weight decay is
torch's coupled ``weight_decay`` (weights x (1 - lr_group * wd_group) per step).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from advisor.common.numbers import positive_number
from advisor.errors import AdvisorError
from advisor.rules.optim_rules import (GROUPS, MUON_GROUPS, Multipliers, check_muon_alpha,
                                       check_muon_convention, group_multipliers)
from advisor.specs.conventions import Conventions

VECTOR_GROUPS = ("block_vector", "final_norm")     # no weight decay on norm gains and biases


@dataclass(frozen=True)
class GroupValues:
    """One parameter group at the target: ``optimizer`` (adamw | muon), peak ``lr``, torch
    ``weight_decay``, and the rules' multipliers vs the base model (``multipliers``; all 1
    under the ``peak`` convention). For a Muon group ``lr`` is the LR before the per-shape
    update scale (``advisor.rules.optim_rules.muon_torch_group``)."""

    group: str
    optimizer: str
    lr: float
    weight_decay: float
    multipliers: Multipliers


@dataclass(frozen=True)
class TargetGroups:
    """Every group of :data:`advisor.rules.optim_rules.GROUPS` at one target, and the base
    LR and weight decay (in ``conventions``' terms) they were mapped from."""

    conventions: Conventions
    width: int
    depth: int | None
    width_multiplier: float
    depth_multiplier: float
    groups: tuple            # of GroupValues, in the order of GROUPS
    base_lr: float
    base_wd: float
    optimizer: str = "adamw"
    muon_convention: str | None = None

    def __getitem__(self, group: str) -> GroupValues:
        for g in self.groups:
            if g.group == group:
                return g
        raise KeyError(group)


def target_groups(conv: Conventions, base_lr: float, base_wd: float, width: int,
                  depth: int | None = None, *, alpha: float | None = None,
                  wd_rule: str | None = None, optimizer: str = "adamw",
                  muon_convention: str | None = None) -> TargetGroups:
    """Each group's peak LR and torch weight decay at a target of ``width`` channels and
    ``depth`` blocks (see the module docstring).

    Args:
        conv: what ``base_lr`` and ``base_wd`` mean.
        base_lr, base_wd: the LR and weight decay in ``conv``'s terms.
        depth: target blocks; None (or no ``conv.base_depth``): no depth scaling.
        alpha: depth exponent (default ``conv.depth_alpha``, else 0).
        wd_rule: the hidden matrices' weight-decay width rule (default ``conv.wd_rule``,
            else ``mup``).
        optimizer: ``adamw`` or ``muon`` (Muon on the hidden matrices, AdamW elsewhere).
        muon_convention: Muon's width convention; when ``conv`` is not a Muon convention of
            the same name the hidden LR is converted from AdamW's: ``match_rms_adamw`` reuses
            it (Moonlight's RMS matching, Liu et al. 2025, arXiv 2502.16982), ``spectral``
            multiplies it by 0.2 sqrt(width) (the same update on square matrices).
    """
    base_lr = positive_number(base_lr, "base LR")
    if isinstance(base_wd, bool) or not isinstance(base_wd, (int, float)) \
            or not math.isfinite(base_wd) or base_wd < 0:
        raise AdvisorError(f"base weight decay must be a number >= 0, got {base_wd!r}")
    if optimizer not in ("adamw", "muon"):
        raise AdvisorError(f"optimizer must be adamw or muon, got {optimizer!r}")
    wd_rule = wd_rule or conv.wd_rule or "mup"
    mup = conv.lr == "mup_base"
    m_n = width / conv.base_width if mup else 1.0
    a = conv.depth_alpha if alpha is None else alpha
    a = 0.0 if a is None else a
    m_l = depth / conv.base_depth if (mup and depth and conv.base_depth) else 1.0
    if optimizer == "muon":
        muon_convention = check_muon_convention(muon_convention or "match_rms_adamw")
        check_muon_alpha(a if m_l != 1.0 else 0.0)
    groups = []
    for g in GROUPS:
        mult = group_multipliers(g, m_n, m_l, a if mup else 0.0,
                                 "mup" if mup else "sp", wd_rule)
        lr, wd = base_lr * mult.lr, base_wd * mult.weight_decay
        if g in VECTOR_GROUPS:
            wd = 0.0
        opt = "adamw"
        if optimizer == "muon" and g in MUON_GROUPS:
            opt = "muon"      # Muon reuses AdamW's decay coefficient (Moonlight), not its rule
            wd = base_wd * m_n
            same = conv.is_muon and conv.muon_convention == muon_convention
            if not same and muon_convention == "spectral":
                lr *= 0.2 * math.sqrt(width)
        groups.append(GroupValues(g, opt, lr, wd, mult))
    return TargetGroups(conventions=conv, width=int(width), depth=depth, width_multiplier=m_n,
                        depth_multiplier=m_l, groups=tuple(groups), base_lr=base_lr,
                        base_wd=float(base_wd), optimizer=optimizer,
                        muon_convention=muon_convention if optimizer == "muon" else None)


def with_optimizer(tg: TargetGroups, optimizer: str, muon_convention: str | None = None,
                   depth: int | None = None) -> TargetGroups:
    """The same base LR and weight decay mapped again, for another optimizer (or depth)."""
    return target_groups(tg.conventions, tg.base_lr, tg.base_wd, tg.width,
                         tg.depth if depth is None else depth, optimizer=optimizer,
                         muon_convention=muon_convention)
