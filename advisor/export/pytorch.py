"""Plain PyTorch: a snippet defining ``build_optimizers(model)`` that returns torch.optim.Muon
for the hidden matrices and torch.optim.AdamW for the rest, from a Muon recommendation
(``--optimizer muon``; ``advisor.recommendation.muon_view``). Field names are torch.optim.Muon's and AdamW's
constructor arguments; LRs are peak LRs, weight decay is torch's coupled lambda.
"""
from __future__ import annotations

import textwrap

from advisor.errors import AdvisorError
from advisor.export.common import Exporter


def pytorch_snippet(rec) -> str:
    """Plain PyTorch code that builds Muon + AdamW for ``model`` from a Muon recommendation.

    The snippet defines ``build_optimizers(model)`` returning (muon, adamw): 2-D parameters
    whose name does not mark them as embedding or readout go to torch.optim.Muon (torch >= 2.9),
    one group per shape with the group LR/weight decay of the config; the rest to AdamW.
    """
    opt = rec.optimizer
    if opt.muon is None:
        raise AdvisorError("the PyTorch snippet needs a Muon config (--optimizer muon)")
    mu, ad = opt.muon, opt.adamw
    lr = mu.lr.value
    wd = mu.weight_decay.value
    emb = next(g for g in ad.groups if g.group == "embedding")
    conv = mu.convention
    body = f'''\
        # Muon + AdamW from `advisor recommend --optimizer muon` ({conv} convention).
        # {opt.conversion_warning or "Muon LR from a law fitted on Muon runs."}
        import math

        import torch

        MUON_LR = {lr!r}            # peak LR; the schedule multiplies every group's lr
        MUON_WD = {wd!r}
        ADAMW_LR = {emb.lr!r}
        ADAMW_WD = {emb.weight_decay!r}
        CONVENTION = {conv!r}
        NOT_MUON = ("embed", "wte", "wpe", "tok_embeddings", "lm_head", "readout", "output")


        def update_scale(fan_out, fan_in):
            if CONVENTION == "spectral":
                return math.sqrt(fan_out / fan_in)
            return 0.2 * math.sqrt(max(fan_out, fan_in))


        def build_optimizers(model):
            muon_groups, adam_decay, adam_plain = {{}}, [], []
            for name, p in model.named_parameters():
                if not p.requires_grad:
                    continue
                if p.ndim == 2 and not any(k in name for k in NOT_MUON):
                    fan_out, fan_in = p.shape
                    if CONVENTION == "match_rms_adamw":
                        key = (MUON_LR, MUON_WD, "match_rms_adamw")
                    else:  # fold spectral scaling into the group LR over torch's "original"
                        ratio = update_scale(fan_out, fan_in) / math.sqrt(max(1.0, fan_out / fan_in))
                        key = (MUON_LR * ratio, MUON_WD / ratio, "original")
                    muon_groups.setdefault(key, []).append(p)
                elif p.ndim >= 2:
                    adam_decay.append(p)
                else:
                    adam_plain.append(p)
            muon = torch.optim.Muon(
                [{{"params": ps, "lr": k[0], "weight_decay": k[1], "adjust_lr_fn": k[2]}}
                 for k, ps in muon_groups.items()],
                lr=MUON_LR, momentum={mu.momentum!r}, nesterov={mu.nesterov!r},
                ns_steps={mu.ns_steps!r}, ns_coefficients={tuple(mu.ns_coefficients)!r},
                eps={mu.eps!r})
            adamw = torch.optim.AdamW(
                [{{"params": adam_decay, "weight_decay": ADAMW_WD}},
                 {{"params": adam_plain, "weight_decay": 0.0}}],
                lr=ADAMW_LR, betas=({ad.beta1!r}, {ad.beta2!r}), eps={ad.eps!r})
            return muon, adamw
        '''
    return textwrap.dedent(body)


def write(rec) -> str:
    """The snippet; refused for an AdamW recommendation."""
    if rec.optimizer.muon is None:
        raise AdvisorError("--format pytorch needs --optimizer muon")
    return pytorch_snippet(rec)


EXPORTER = Exporter(name="pytorch", write=write, suffix=".py",
                    doc="a PyTorch snippet building Muon + AdamW (--optimizer muon only)",
                    needs_muon=True)
