"""The Muon view of a recommendation: a Muon + AdamW optimizer config converted from AdamW laws.

Pure computation from ``advisor.rules.optim_rules`` (Muon section) and a finished
:class:`advisor.recommendation.core.Recommendation`. No shipped law set is fitted for Muon, so every
Muon number here is a *conversion* of the recommendation's AdamW LR and weight decay, stated
with its source:

* Moonlight's matching (Liu et al. 2025, arXiv 2502.16982, Sec. 2): scaling each matrix's
  orthogonalised update by 0.2 * sqrt(max(fan_in, fan_out)) gives it an entry RMS of 0.2 x LR,
  about AdamW's, so the hidden matrices reuse AdamW's peak LR and weight decay as they are
  (convention ``match_rms_adamw``, torch.optim.Muon's ``adjust_lr_fn="match_rms_adamw"``).
* Convention ``spectral`` (update spectral norm LR x sqrt(fan_out / fan_in); Yang, Simon and
  Bernstein 2023, arXiv 2310.17813): its base LR is chosen to give the square (d_model x
  d_model) attention matrices the same update as Moonlight's matching, i.e. AdamW LR x 0.2 x
  sqrt(d_model); the MLP matrices then follow the spectral rule for their shape.

Embedding, norm gains and readout stay on AdamW with the recommendation's AdamW settings.
Muon's momentum, Nesterov flag, Newton-Schulz steps, coefficients and eps are torch's defaults
(Keller Jordan's reference implementation). Units: LRs are peak LRs of the schedule; weight
decay is torch's decoupled ``weight_decay`` (weights x (1 - lr_group * wd_group) per step).
"""
from __future__ import annotations

import dataclasses

from advisor.errors import AdvisorError
from advisor.recommendation.blocks import (AdamWGroup, AdamWPart, MuonGroup, MuonPart, OptimizerBlock,
                                Value)
from advisor.rules.optim_rules import (MUON_CONVENTIONS, MUON_DEFAULTS, check_muon_convention,
                                 muon_torch_group, muon_width_multiplier)
from advisor.specs.conventions import parse_optimizer_label
from advisor.specs.transfer import with_optimizer

OPTIMIZERS = ("adamw", "muon")
DEFAULT_CONVENTION = "match_rms_adamw"
CONVERSION_WARNING = ("Muon settings are a conversion of AdamW laws (Moonlight's RMS "
                      "matching, Liu et al. 2025, arXiv 2502.16982), not a fit: no Muon law "
                      "set is shipped; tune the Muon LR with a proxy sweep (docs/muon.md)")

def _sig(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}")


def _matrices(model) -> list[tuple[str, int, int]]:
    """(name, fan_out, fan_in) of a Llama-style block's hidden matrices (``model``: the
    recommendation's ModelShape)."""
    d, f = int(model.d_model), int(model.ffn_hidden)
    q = int(model.n_heads) * int(model.head_dim)
    kv = int(model.n_kv_heads) * int(model.head_dim)       # GQA: fewer key/value heads
    attn = [("attention q, o", d, d)] if q == d else [("attention q", q, d),
                                                      ("attention o", d, q)]
    return attn + [("attention k, v", kv, d), ("MLP gate, up", f, d), ("MLP down", d, f)]


def muon_block(rec, convention: str = DEFAULT_CONVENTION,
               base_width: int | None = None) -> OptimizerBlock:
    """The ``optimizer`` block for Muon + AdamW, from a finished AdamW recommendation: its law's
    LR and weight decay mapped once more (``advisor.specs.transfer``), for Muon."""
    check_muon_convention(convention)
    model = rec.model
    d = int(model.d_model)
    base_w = int(base_width or rec.mup.base_width or d)
    fitted = fitted_muon_convention(rec)
    if fitted is not None and fitted != convention:
        raise AdvisorError(f"law set {rec.law.name!r} was fitted on Muon runs with the "
                           f"{fitted} convention: ask for --muon-convention {fitted}")
    if rec.transfer is None:
        raise AdvisorError("the recommendation carries no per-group LRs to convert for Muon")
    tg = with_optimizer(rec.transfer, "muon", convention)
    muon_lr, wd = tg["hidden"].lr, tg["hidden"].weight_decay
    if fitted is not None:
        lr_source = (f"fitted on Muon runs ({convention} convention) by advisor fit: law set "
                     f"{rec.law.name!r}")
    elif convention == "match_rms_adamw":
        lr_source = ("AdamW peak LR reused as is: Moonlight's update-RMS matching (Liu et al. "
                     "2025, arXiv 2502.16982)")
    else:
        lr_source = (f"AdamW peak LR x 0.2 x sqrt(d_model = {d}): the same update on the "
                     "square attention matrices as Moonlight's matching; spectral scaling "
                     "sqrt(fan_out/fan_in) (Yang, Simon, Bernstein 2023, arXiv 2310.17813) "
                     "for the other shapes")
    groups = []
    for name, fo, fi in _matrices(model):
        r = muon_torch_group(fo, fi, convention)
        bf = max(1, round(fo * base_w / d))
        bi = max(1, round(fi * base_w / d))
        groups.append(MuonGroup(
            matrices=name, shape=(fo, fi), update_scale=_sig(r.update_scale),
            torch_group_lr=_sig(muon_lr * r.lr_factor),
            torch_group_weight_decay=_sig(wd * r.wd_factor), adjust_lr_fn=r.adjust_lr_fn,
            mup_update_multiplier_vs_base_width=_sig(
                muon_width_multiplier(fo, fi, bf, bi, convention))))
    emb, vec, out = tg["embedding"], tg["block_vector"], tg["readout"]   # LRs: 3 digits, as every view
    adamw_groups = (
        AdamWGroup("embedding", _sig(emb.lr, 3), _sig(emb.weight_decay),
                   "LR x 1, init x 1 (Tensor Programs V, Table 3)"),
        AdamWGroup("norm gains, biases", _sig(vec.lr, 3), vec.weight_decay,
                   "LR x 1; no weight decay on vectors"),
        AdamWGroup("readout (unembedding)", _sig(out.lr, 3), _sig(out.weight_decay),
                   f"LR x 1, output x 1/m (m = {d}/{base_w} = {_sig(d / base_w)}; muP's "
                   "MuReadout)"),
    )
    adam = rec.optimizer       # AdamW's betas/eps/clip stay: the AdamW groups use them
    muon = MuonPart(
        params="2-D weights inside the blocks (attention q/k/v/o, MLP); never the "
               "embedding or the readout",
        convention=convention, convention_rule=MUON_CONVENTIONS[convention],
        lr=Value(_sig(muon_lr), "peak LR of the Muon groups (before the per-shape update "
                 "scale)", lr_source, note="a fit" if fitted else "a conversion, not a fit"),
        weight_decay=Value(_sig(wd), "torch.optim.Muon weight_decay (decoupled, x lr per "
                           "step)", "the AdamW weight decay above, reused (Moonlight: weight "
                           "decay is needed at scale)"),
        momentum=MUON_DEFAULTS["momentum"], nesterov=MUON_DEFAULTS["nesterov"],
        ns_steps=MUON_DEFAULTS["ns_steps"],
        ns_coefficients=tuple(MUON_DEFAULTS["ns_coefficients"]), eps=MUON_DEFAULTS["eps"],
        source_defaults="torch.optim.Muon defaults (Keller Jordan's Muon, 2024)",
        groups=tuple(groups))
    return dataclasses.replace(
        adam, name="Muon + AdamW", muon=muon,
        adamw=AdamWPart(params="embedding, norm gains, readout", beta1=adam.beta1,
                        beta2=adam.beta2, eps=adam.eps, groups=adamw_groups),
        conversion_warning=None if fitted else CONVERSION_WARNING,
        source="Muon for hidden matrices, AdamW for the rest (Jordan et al. 2024; Liu et "
               "al. 2025); AdamW settings: " + (adam.source or ""))


def fitted_muon_convention(rec) -> str | None:
    """The Muon convention the recommendation's LR law was fitted under (``advisor fit`` on
    Muon runs writes ``conventions.optimizer: muon-<convention>``), or None (AdamW laws)."""
    opt, convention = parse_optimizer_label((rec.law.conventions or {}).get("optimizer"))
    return convention if opt == "muon" else None


def with_muon(rec, convention: str = DEFAULT_CONVENTION):
    """A copy of ``rec`` whose optimizer block is Muon + AdamW; the conversion warning is added
    unless the LR law was fitted on Muon runs of that convention."""
    block = muon_block(rec, convention)
    extra = [CONVERSION_WARNING] if block.conversion_warning else []
    return dataclasses.replace(rec, optimizer=block, warnings=list(rec.warnings) + extra)
