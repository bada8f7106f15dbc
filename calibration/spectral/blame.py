"""Blame: turn the failing rows of a width-invariance check into causes, most upstream first
(pure functions over :class:`calibration.spectral.invariance.CheckResult`, no torch).

Each failing row gets a direct cause from its layer kind and statistic:

- ``base-shapes``: the model carries mup infshapes whose width multiplier is 1 at every
  width (``set_base_shapes`` was given the model itself, or a base of the same width);
- ``readout``: the readout layer or the logits (their level may shrink, never grow; the
  readout's update must keep its scale);
- ``embedding``: input and position embeddings (one-hot inputs: their LR and init are
  constant in width under muP); an input layer whose only failing rows are its activations
  (its weight and update pass) is ``activation`` instead: downstream of something else;
- ``attention``: the attention logits scale * q k^T;
- ``hidden-lr``: the update of a hidden matrix (both sides grow): Adam's update has the size
  of the LR, so a growing update is an LR that is not divided by the width multiplier;
- ``hidden-init``: the weight level of a hidden matrix, when its update is fine;
- ``activation``: activations of layers whose own weights pass: they are downstream of
  something else.

Causes are ordered as the gradients and activations flow: the readout and the embeddings
feed every other layer's gradient; a hidden matrix's own update and weight come next (the
query and key matrices feed the attention logits, so a growing q/k update makes the logits
grow too); then the attention logits, which feed the attention outputs; then activations.
The first cause is the one to fix first; the later ones are marked as possibly following
from it. Units: slopes are d log(statistic) / d log(width).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

ORDER = ["base-shapes", "readout", "embedding", "hidden-lr", "hidden-init", "attention",
         "activation"]

ADVICE = {
    "base-shapes": "mup base shapes are wrong: every width multiplier is 1 (set_base_shapes "
                   "got the model itself or a base of the same width); build base and delta "
                   "models at the base width and 2x it",
    "readout": "readout not muP: use MuReadout (MuSharedReadout when tied), or multiply its "
               "output by base_width/width",
    "embedding": "embedding not muP: keep its LR and init constant in width (a vector-like "
                 "parameter in MuAdamW; do not divide its LR by the width multiplier)",
    "attention": "attention logits change with width: scale q.k by attn_mult/d_head, not "
                 "1/sqrt(d_head), when the head size grows with width",
    "hidden-lr": "hidden-matrix updates change with width: divide their Adam LR by the width "
                 "multiplier (mup.MuAdamW / MuAdam after set_base_shapes)",
    "hidden-init": "hidden-matrix weights change with width: init std ~ 1/sqrt(fan_in) "
                   "(PyTorch's default, or mup.init.* after set_base_shapes)",
    "activation": "activations change with width while their weights and updates do not: "
                  "look for a multiplier applied in forward (residual, norm or output scale)",
}

# The same causes when the layers named are stepped by Muon (orthogonalised updates, whose
# width rule is the LR factor per shape: advisor.rules.optim_rules' Muon section).
MUON_ADVICE = {
    "hidden-lr": "hidden-matrix updates change with width on Muon: scale each orthogonalised "
                 "update by sqrt(fan_out/fan_in) (the spectral convention, optim_rules."
                 "muon_torch_group), not by 0.2*sqrt(max(fan_in, fan_out)) (match_rms_adamw) "
                 "at a width-independent LR",
    "embedding": "embedding not muP: it is on Muon, whose orthogonalised update of a "
                 "vocab x width matrix changes with width; keep it on AdamW at a "
                 "width-independent LR (MuAdamW's vector-like rule)",
}


@dataclass
class Cause:
    name: str
    layers: list[str]
    rows: list[tuple[str, str, float]] = field(default_factory=list)   # (layer, stat, slope)
    follows: bool = False          # may be a consequence of an earlier cause
    muon: bool = False             # some of its layers are stepped by Muon

    def line(self) -> str:
        worst = max(self.rows, key=lambda r: abs(r[2])) if self.rows else None
        shown = ", ".join(self.layers[:6]) + (f" (+{len(self.layers) - 6} more)"
                                              if len(self.layers) > 6 else "")
        ev = f"; worst {worst[0]} {worst[1]} slope {worst[2]:+.2f}" if worst else ""
        tail = " [may follow from cause 1: fix that first and rerun]" if self.follows else ""
        advice = MUON_ADVICE.get(self.name) if self.muon else None
        return f"{advice or ADVICE[self.name]} -- {shown}{ev}{tail}"

    def to_dict(self):
        return asdict(self)


def direct_cause(layer: str, statistic: str, kind: str) -> str:
    """The cause a failing row points at by itself (module docstring)."""
    if kind == "readout" or layer == "logits":
        return "readout"
    if kind == "input":
        return "embedding"
    if statistic.startswith("attn_") or kind == "attention":
        return "attention"
    if kind == "hidden" and statistic == "update_op":
        return "hidden-lr"
    if kind == "hidden" and statistic == "weight_op":
        return "hidden-init"
    return "activation"


def blame(result) -> list[Cause]:
    """Causes of ``result``'s failing rows, most upstream first."""
    if getattr(result, "defect", None):
        return [Cause(result.defect_cause or "base-shapes", ["(model construction)"])]
    failed = [r for r in result.rows if r.verdict == "FAIL"]
    if not failed:
        return []
    # an input layer whose own weight and update pass but whose output moves is downstream
    # of something else (e.g. hidden layers that train too fast kill ReLU units feeding back)
    own = {r.layer for r in failed if r.statistic in ("weight_op", "update_op")}
    groups: dict[str, Cause] = {}
    for r in failed:
        name = direct_cause(r.layer, r.statistic, r.kind)
        if name == "embedding" and r.statistic.startswith("act_") and r.layer not in own:
            name = "activation"
        c = groups.setdefault(name, Cause(name, []))
        if r.layer not in c.layers:
            c.layers.append(r.layer)
        c.rows.append((r.layer, r.statistic, round(r.slope, 4)))
    # a hidden weight level that fails together with its update is the LR, not the init
    if "hidden-init" in groups and "hidden-lr" in groups:
        lr_layers = set(groups["hidden-lr"].layers)
        init = groups["hidden-init"]
        moved = [x for x in init.rows if x[0] in lr_layers]
        init.rows = [x for x in init.rows if x[0] not in lr_layers]
        init.layers = [n for n in init.layers if n not in lr_layers]
        groups["hidden-lr"].rows += moved
        if not init.rows:
            del groups["hidden-init"]
    causes = [groups[n] for n in ORDER if n in groups]
    mults = getattr(result, "width_mults", None) or {}
    if mults and len(mults) > 1 and all(v == 1.0 for v in mults.values()):
        causes.insert(0, Cause("base-shapes", ["(every parameter)"]))
    on_muon = set(getattr(result, "muon_layers", None) or ())
    for c in causes:
        c.muon = bool(on_muon.intersection(c.layers))
    for c in causes[1:]:
        c.follows = True
    return causes
