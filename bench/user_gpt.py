"""A user's own GPT, written the way public nanoGPT-style repositories write one, made muP with
the ``mup`` package: the model that ``bench.bench_user_model --factory`` calibrates through
``advisor plan --factory bench.user_gpt:build`` (the ``(width) -> (model, optimizer)``
contract of ``advisor check-spectral``, with the sweep's ``lr=``, ``vocab=`` and
``seq_len=``: calibration/model/factory.py).

What it is, as such a repository has it: token and learned position embeddings, pre-LayerNorm
blocks (LayerNorm with bias), causal self-attention with one fused ``c_attn`` projection and
PyTorch's ``scaled_dot_product_attention``, a 4x GELU MLP (``c_fc``, ``c_proj``), a final
LayerNorm and an untied readout; normal(0, 0.02) initialisation with the residual projections
at 0.02 / sqrt(2 x depth). The head size is fixed (8) and the number of heads grows with the
width, as in most GPTs, so the 1/sqrt(head size) attention scale is a constant across widths
and muP needs no change there.

What muP adds (Yang et al. 2022, "Tensor Programs V", and the mup package's README):
``MuReadout`` for the readout (zero-initialised, logits x base_width / width),
``set_base_shapes`` against a base model at :data:`BASE_WIDTH` (and a delta model at twice
it), hidden matrices re-initialised with ``mup.init.normal_`` (std / sqrt(width /
base_width) on the fan-in), and ``MuAdamW`` (hidden-matrix LRs x base_width / width). The LR
the sweep passes is therefore the base-width LR. :data:`BASE_WIDTH` is the plan's muP base
width (``advisor plan`` puts its smallest proxy there: 16 for widths 16, 32, 64).

Units: widths in channels; ``lr`` the muP base-width AdamW LR.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

BASE_WIDTH = 16      # the muP base width: the plan's smallest proxy
HEAD_SIZE = 8
DEPTH = 2            # blocks, as the CPU plan's proxies
INIT_STD = 0.02


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int):
        super().__init__()
        self.n_head = n_embd // HEAD_SIZE
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, HEAD_SIZE).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, n_embd: int):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, n_embd: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, n_embd: int, vocab_size: int, block_size: int, n_layer: int = DEPTH):
        super().__init__()
        from mup import MuReadout

        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList(Block(n_embd) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = MuReadout(n_embd, vocab_size, bias=False, readout_zero_init=True)
        self.n_layer = n_layer

    def forward(self, idx):
        pos = torch.arange(idx.size(1), device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))

    def init_weights(self):
        """nanoGPT's initialisation, with mup's width scaling on the hidden matrices (call
        after ``set_base_shapes``)."""
        from mup.init import normal_

        for name, p in self.named_parameters():
            if name.startswith("lm_head"):
                continue                                 # MuReadout: zero-initialised
            if p.ndim == 1:
                if name.endswith("bias"):
                    nn.init.zeros_(p)
                continue                                 # LayerNorm gains stay 1
            if name.startswith(("wte", "wpe")):
                nn.init.normal_(p, std=INIT_STD)
            else:
                std = (INIT_STD / math.sqrt(2 * self.n_layer) if name.endswith("c_proj.weight")
                       else INIT_STD)
                normal_(p, std=std)                      # std / sqrt(fan_in / base fan_in)


def build(width: int, *, lr: float, vocab: int = 256, seq_len: int = 64):
    """(model, optimizer) at ``width`` (a multiple of 8): the muP GPT and ``mup.MuAdamW`` at
    the base-width LR ``lr`` (betas 0.9, 0.95, no weight decay)."""
    from mup import MuAdamW, set_base_shapes

    if width % HEAD_SIZE:
        raise ValueError(f"width {width} is not a multiple of the head size {HEAD_SIZE}")
    model = GPT(width, vocab, seq_len)
    with torch.device("meta"):
        base = GPT(BASE_WIDTH, vocab, seq_len)
        delta = GPT(2 * BASE_WIDTH, vocab, seq_len)
    set_base_shapes(model, base, delta=delta)
    with torch.no_grad():
        model.init_weights()
    return model, MuAdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
