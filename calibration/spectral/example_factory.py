"""A worked example for ``advisor check-spectral --factory``: a small GPT built the way a
user would build one with the ``mup`` package, and the usual ways of getting muP wrong.

A factory is any function that takes a width (channels) and returns a model, or a
``(model, optimizer)`` pair; the model maps token ids (batch, seq) to logits
(batch, seq, vocab). Try::

    advisor check-spectral --factory calibration.spectral.example_factory:mup_gpt \\
        --widths 64,128,256 --steps 30
    advisor check-spectral --factory calibration.spectral.example_factory:sp_gpt ...

Heads are fixed (4), so the head size grows with width, which is the case where the
attention scale matters: muP scales q.k by 1/d_head, standard practice by 1/sqrt(d_head).
The base width is 64; every variant is the same model there.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

BASE_WIDTH = 64
N_HEADS = 4
VOCAB = 256          # bytes
SEQ_LEN = 64
LR = 2 ** -10        # Adam, base width: small, so that 20 probe steps stay in the early regime


class Attention(nn.Module):
    def __init__(self, width: int, scale: float):
        super().__init__()
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=False)
        self.scale = scale

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, N_HEADS, C // N_HEADS).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, width: int, scale: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(width, bias=False)
        self.attn = Attention(width, scale)
        self.ln2 = nn.LayerNorm(width, bias=False)
        self.fc = nn.Linear(width, 4 * width, bias=False)
        self.out = nn.Linear(4 * width, width, bias=False)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class TinyGPT(nn.Module):
    """Token + position embeddings, ``depth`` pre-LN blocks, final LayerNorm, readout."""

    def __init__(self, width: int, depth: int = 2, attn: str = "mup", readout: str = "mup",
                 vocab: int = VOCAB, seq_len: int = SEQ_LEN):
        super().__init__()
        from mup import MuReadout

        d_head = width // N_HEADS
        base_d_head = BASE_WIDTH // N_HEADS
        # muP: attn_mult / d_head with attn_mult = sqrt(base d_head): equal to SP at the base.
        scale = math.sqrt(base_d_head) / d_head if attn == "mup" else 1 / math.sqrt(d_head)
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(seq_len, width)
        self.blocks = nn.ModuleList(Block(width, scale) for _ in range(depth))
        self.ln_f = nn.LayerNorm(width, bias=False)
        self.head = (MuReadout(width, vocab, bias=False) if readout == "mup"
                     else nn.Linear(width, vocab, bias=False))

    def forward(self, idx):
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def build(width: int, *, parameterization: str = "mup", attn: str | None = None,
          readout: str | None = None, optimizer: str | None = None, depth: int = 2,
          lr: float = LR, seed: int | None = None, vocab: int = VOCAB, seq_len: int = SEQ_LEN):
    """A (model, optimizer) pair. ``parameterization`` sets the defaults of the other three
    switches; each can be set on its own to build a single, deliberate mistake."""
    from mup import MuAdamW, set_base_shapes

    mup = parameterization == "mup"
    attn = attn or parameterization
    readout = readout or parameterization
    optimizer = optimizer or ("muadamw" if mup else "adamw")
    if seed is not None:            # None: the check seeds torch per replicate
        torch.manual_seed(seed)
    shape = dict(depth=depth, attn=attn, readout=readout, vocab=vocab, seq_len=seq_len)
    model = TinyGPT(width, **shape)
    if mup:
        with torch.device("meta"):
            base = TinyGPT(BASE_WIDTH, **shape)
            delta = TinyGPT(2 * BASE_WIDTH, **shape)
        set_base_shapes(model, base, delta=delta, rescale_params=False, do_assert=False)
    else:
        set_base_shapes(model, None, rescale_params=False, do_assert=False)
    m = width / BASE_WIDTH
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                continue                                   # LayerNorm gains stay 1
            if name.startswith(("wte", "wpe")):
                nn.init.normal_(p, std=0.02)
            elif name.startswith("head"):
                nn.init.normal_(p, std=0.16)               # MuReadout divides logits by m
            else:                                          # hidden: std 0.05 at the base
                nn.init.normal_(p, std=0.05 / math.sqrt(m) if mup else 0.05)
    opt_cls = MuAdamW if optimizer == "muadamw" else torch.optim.AdamW
    opt = opt_cls(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    return model, opt


def mup_gpt(width: int):
    """The muP model: passes the check."""
    return build(width)


def sp_gpt(width: int):
    """Standard parameterisation (constant init std, one LR, 1/sqrt(d_head), plain readout)."""
    return build(width, parameterization="sp")


def mup_gpt_plain_adamw(width: int):
    """muP model trained with torch's AdamW: hidden LRs do not shrink with width."""
    return build(width, optimizer="adamw")


def mup_gpt_sp_readout(width: int):
    """muP model whose readout is a plain Linear (no 1/m on the logits)."""
    return build(width, readout="sp")


def mup_gpt_sqrt_attention(width: int):
    """muP model with attention scaled by 1/sqrt(d_head) while d_head grows with width."""
    return build(width, attn="sp")


def model_only(width: int):
    """A factory that returns just a model: the check then trains it with torch's AdamW."""
    return build(width)[0]
