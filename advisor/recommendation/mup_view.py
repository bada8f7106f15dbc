"""The muP (width) view of a recommendation: per-group multipliers vs a proxy of the base width.

Pure computation from ``advisor.rules.optim_rules`` (muP for Adam, Tensor Programs V, Yang et al.
2022, Table 3: hidden matrices' LR x 1/m and init std x 1/sqrt(m), the readout's output x 1/m,
vector-like parameters and embeddings unchanged; m = width / base width) and its weight-decay
width rule (``WD_WIDTH_RULES``): a hidden matrix's torch ``weight_decay`` x m^e, e = 1 for
``mup`` (what ``mup.MuAdamW`` does), 1/2 for ``sqrt`` (Fan et al. 2025, arXiv 2510.15262:
lambda ~ sqrt(d) for hidden matrices under AdamW), 0 for ``none``.

Units: widths in channels; multipliers dimensionless; ``torch_weight_decay`` is torch's coupled
AdamW lambda (weights x (1 - lr_group * wd_group) per step); ``decay_per_step`` is
lr_group * wd_group at the peak LR, a fraction of the weight per optimizer step.
"""
from __future__ import annotations

from advisor.rules.optim_rules import WD_WIDTH_RULES, check_wd_rule, group_multipliers
from advisor.specs.conventions import Conventions
from advisor.specs.transfer import target_groups
from advisor.recommendation.blocks import MupGroup, MupView, WdRule

DEFAULT_WD_RULE = "mup"
# (optim_rules group, the muP view's row label)
_ROWS = (("embedding", "embedding"),
         ("hidden", "hidden matrices (attention q/k/v/o, MLP)"),
         ("block_vector", "norm gains, biases"),
         ("readout", "readout (unembedding)"))
ROW_LABELS = dict(_ROWS)          # optim_rules group -> the view's row label
WD_RULE_TEXT = {
    "mup": "hidden torch weight_decay x m (mup.MuAdamW): decay per step lr*wd the same at "
           "every width",
    "sqrt": "hidden torch weight_decay x sqrt(m): lambda ~ sqrt(d) for hidden matrices under "
            "AdamW (Fan et al. 2025, arXiv 2510.15262); decay per step x 1/sqrt(m)",
    "none": "the same torch weight_decay at every width; decay per step of hidden matrices "
            "x 1/m",
}
WD_RULE_SOURCE = ("advisor/rules/optim_rules.py WD_WIDTH_RULES; mup: mup.MuAdamW (Yang et al. 2022); "
                  "sqrt: Fan et al. 2025, arXiv 2510.15262; docs/recommend.md. The proxy's "
                  "optimizer (calibration/model/proxy.py build_optimizer) applies each run's "
                  "wd_rule (default mup), and a law set fitted by `advisor fit` on a results "
                  "store states its runs' rule as mup.wd_rule")
WD_BASIS = ("values at the target width for a muP proxy whose base LR and weight decay give "
            "the recommended peak LR and weight decay to the hidden matrices under the mup "
            "rule: base LR = LR x m, base weight decay = lambda / m; norm gains and biases "
            "get no weight decay")


def resolve_wd_rule(given: str | None, lawset_name: str,
                    stated: str | None) -> tuple[str, str, str | None]:
    """The muP view's weight-decay width rule: (rule, where it came from, warning or None).

    ``given``: the --wd-rule option (None: not given); ``stated``: the law set's
    ``mup.wd_rule`` (None: the set does not state one, as no shipped set does). The law set's
    rule is the default; another given rule is used but warned about, since the law set's
    numbers were fitted under its own rule.
    """
    if given is not None:
        check_wd_rule(given)
    if stated is not None:
        check_wd_rule(stated)
    if given is None and stated is None:
        return DEFAULT_WD_RULE, (f"default ({DEFAULT_WD_RULE}): law set {lawset_name} "
                                 "states no weight-decay width rule (mup.wd_rule)"), None
    if given is None:
        return stated, f"law set {lawset_name}'s mup.wd_rule: the rule its runs used", None
    if stated is None:
        return given, f"--wd-rule (law set {lawset_name} states no rule)", None
    if given == stated:
        return given, f"--wd-rule, the rule law set {lawset_name} states (mup.wd_rule)", None
    return given, (f"--wd-rule, against law set {lawset_name}'s mup.wd_rule {stated}"), (
        f"--wd-rule {given}: law set {lawset_name}'s laws were fitted on runs under the "
        f"{stated} weight-decay width rule (mup.wd_rule); the muP view applies {given}, "
        f"which those runs did not test (leave --wd-rule out to use {stated})")


def _sig(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}")


def hypothetical_groups(d_model: int, base_width: int, lr: float, weight_decay: float,
                        wd_rule: str = DEFAULT_WD_RULE):
    """The target's groups (``advisor.specs.transfer.target_groups``) for a muP proxy of
    ``base_width`` whose base LR and weight decay give the peak LR ``lr`` and the coupled
    lambda ``weight_decay`` to the hidden matrices at width ``d_model`` under the mup rule
    (WD_BASIS): the muP reading of a law that gives a peak LR, not a muP base LR."""
    m = d_model / base_width
    conv = Conventions(lr="mup_base", base_width=int(base_width), wd_rule=check_wd_rule(wd_rule))
    return target_groups(conv, lr * m, weight_decay / m, d_model)


def mup_view(d_model: int, head_dim: int, base_width: int, lr: float | None = None,
             weight_decay: float | None = None, wd_rule: str = DEFAULT_WD_RULE,
             origin: str | None = None, groups=None) -> MupView:
    """The ``mup`` block for a target of width ``d_model`` vs a proxy of ``base_width``.

    Args:
        d_model, head_dim: the target's width and head dimension (channels).
        base_width: the proxy's width (channels) the multipliers are relative to.
        lr, weight_decay: the recommended peak LR (the hidden matrices' LR at the target) and
            coupled AdamW lambda, read through :func:`hypothetical_groups` when ``groups``
            is None.
        wd_rule: a key of ``advisor.rules.optim_rules.WD_WIDTH_RULES``.
        origin: where the rule came from (:func:`resolve_wd_rule`), recorded in the view.
        groups: the target's groups (``advisor.specs.transfer.TargetGroups``) whose LRs and
            weight decays the view states (the recommendation's, where its law gives a muP
            base LR); None: the weight decays of :func:`hypothetical_groups`, no LRs.
    """
    check_wd_rule(wd_rule)
    m = d_model / base_width
    stated = groups is not None          # the law's own groups: their LRs are stated too
    if groups is None:
        groups = hypothetical_groups(d_model, base_width, lr, weight_decay, wd_rule)
    rows = []
    for key, label in _ROWS:
        g = group_multipliers(key, m, wd_rule=wd_rule)
        t = groups[key]
        rows.append(MupGroup(
            group=label, lr_multiplier=_sig(g.lr), init_std_multiplier=_sig(g.init_std),
            output_multiplier=_sig(g.output), weight_decay_multiplier=_sig(g.weight_decay),
            decay_per_step_multiplier=_sig(g.decay_per_step),
            lr=_sig(t.lr, 3) if stated else None,
            torch_weight_decay=_sig(t.weight_decay, 3), decay_per_step=_sig(t.lr * t.weight_decay, 3)))
    rows.append(MupGroup(
        group="attention logits", scale="1/d_head (times a base-width-tuned multiplier)",
        note=f"head_dim is fixed at {head_dim}, so 1/d_head and 1/sqrt(d_head) differ by a "
             "constant here"))
    rule = WdRule(name=wd_rule, exponent=WD_WIDTH_RULES[wd_rule], rule=WD_RULE_TEXT[wd_rule],
                  source=WD_RULE_SOURCE, basis=WD_BASIS, origin=origin)
    return MupView(base_width=base_width, width=d_model, width_multiplier=_sig(m),
                   groups=tuple(rows),
                   note="multipliers relative to a muP proxy of width base_width trained with "
                        "the same base LR; for a standard-parameterisation run use the peak "
                        "LR above as is", wd_rule=rule)

