"""Zoo models written the ways public muP code writes them (issue 25), for
``check-spectral``'s zoo (:mod:`calibration.spectral.zoo` registers them).

Written here from the styles, not copied: a nanoGPT-style GPT with a muP switch (fused
``c_attn``, explicit ``softmax(q k^T * s)`` with a causal mask buffer, ``forward(idx,
targets)`` returning ``(logits, loss)``, the output multiplier applied to the hidden state
*before* ``lm_head``, per-group AdamW LRs, or ``lr_scale`` entries its training loop applies);
a Transformer in the style of the mup package's example (sequence-first (T, B) inputs, a
fused ``in_proj_weight`` parameter, q pre-scaled then ``bmm``, ``MuReadout``, ``MuAdam``); a
GPT on ``nn.MultiheadAttention``; a Hugging Face-style model (``q_proj``/``k_proj``/...,
an eager attention function, a ``ModelOutput``-like dict, logits divided by a
``logits_scaling`` after ``lm_head`` as Granite does); and an MLP on next-byte prediction from
the previous bytes (not a language model's output shape: it needs the batch and loss hooks).

Each builder takes a width and returns (model, optimizer). Base width 64; widths in channels,
vocabulary 256 (bytes). Correct variants pass ``check-spectral`` at its defaults; each broken
one makes one mistake (the value in :data:`BROKEN` is the cause the check must name first).
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

BASE_WIDTH = 64
VOCAB = 256
MAX_SEQ = 128
LR = 1e-2


def _m(width: int) -> float:
    return width / BASE_WIDTH


# --------------------------------------------------------------------------------------
# nanoGPT style with a muP switch
# --------------------------------------------------------------------------------------

class NanoAttention(nn.Module):
    def __init__(self, width, n_head, attn):
        super().__init__()
        self.c_attn = nn.Linear(width, 3 * width, bias=False)
        self.c_proj = nn.Linear(width, width, bias=False)
        self.n_head, self.d = n_head, width // n_head
        base_d = BASE_WIDTH // n_head
        # muP: attn_mult / d with attn_mult = sqrt(base d); SP: 1 / sqrt(d)
        self.scale = math.sqrt(base_d) / self.d if attn == "mup" else 1.0 / math.sqrt(self.d)
        self.register_buffer("bias", torch.tril(torch.ones(MAX_SEQ, MAX_SEQ))
                             .view(1, 1, MAX_SEQ, MAX_SEQ))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, self.d).transpose(1, 2)
        k = k.view(B, T, self.n_head, self.d).transpose(1, 2)
        v = v.view(B, T, self.n_head, self.d).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * self.scale
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class NanoBlock(nn.Module):
    def __init__(self, width, n_head, attn):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(width), NanoAttention(width, n_head, attn)
        self.ln_2 = nn.LayerNorm(width)
        self.c_fc = nn.Linear(width, 4 * width, bias=False)
        self.c_proj = nn.Linear(4 * width, width, bias=False)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x))))


class NanoGPT(nn.Module):
    """nanoGPT-style GPT; ``mup_output`` "before" multiplies the final hidden state by
    1/width_mult before ``lm_head`` (muP), "none" forgets it."""

    def __init__(self, width, n_layer=2, n_head=4, attn="mup", mup_output="before"):
        super().__init__()
        self.width_mult = _m(width)
        self.mup_output = mup_output
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(VOCAB, width), wpe=nn.Embedding(MAX_SEQ, width),
            h=nn.ModuleList(NanoBlock(width, n_head, attn) for _ in range(n_layer)),
            ln_f=nn.LayerNorm(width)))
        self.lm_head = nn.Linear(width, VOCAB, bias=False)
        for name, p in self.named_parameters():
            if name.endswith(("wte.weight", "wpe.weight")):
                nn.init.normal_(p, std=0.02)
            elif p.ndim == 2 and "lm_head" not in name:
                nn.init.normal_(p, std=0.5 / math.sqrt(width))     # muP: std ~ 1/sqrt(fan_in)
        nn.init.zeros_(self.lm_head.weight)                        # muP: zero readout

    def forward(self, idx, targets=None):
        T = idx.size(1)
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(T, device=idx.device))
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if self.mup_output == "before":
            x = x / self.width_mult
        logits = self.lm_head(x)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss


def nano_optimizer(model: NanoGPT, lr_mode: str = "groups", scale_embedding: bool = False):
    """AdamW with muP's per-group LRs: hidden matrices lr / width_mult, the rest lr.
    ``lr_mode`` "groups": the LRs are set in the groups; "lr_scale": every group has lr and
    an ``lr_scale`` entry that the training loop multiplies in (check-spectral applies it)."""
    hidden, rest = [], []
    for name, p in model.named_parameters():
        is_hidden = p.ndim == 2 and ".h." in name
        is_emb = name.endswith(("wte.weight", "wpe.weight"))
        (hidden if is_hidden or (scale_embedding and is_emb) else rest).append(p)
    m = model.width_mult
    if lr_mode == "lr_scale":
        groups = [{"params": hidden, "lr": LR, "lr_scale": 1.0 / m},
                  {"params": rest, "lr": LR, "lr_scale": 1.0}]
    else:
        groups = [{"params": hidden, "lr": LR / m}, {"params": rest, "lr": LR}]
    return torch.optim.AdamW(groups, lr=LR, weight_decay=0.0, betas=(0.9, 0.95))


def nanogpt(attn="mup", mup_output="before", lr_mode="groups", scale_embedding=False):
    def make(width):
        model = NanoGPT(width, attn=attn, mup_output=mup_output)
        return model, nano_optimizer(model, lr_mode, scale_embedding)
    return make


# --------------------------------------------------------------------------------------
# The mup package's Transformer-example style: sequence-first, fused in_proj, bmm
# --------------------------------------------------------------------------------------

class FusedSelfAttention(nn.Module):
    def __init__(self, width, n_head, attn, attn_mult=1.0):
        super().__init__()
        self.n_head, self.head_dim = n_head, width // n_head
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)
        base_head = BASE_WIDTH // n_head
        self.scaling = (attn_mult * math.sqrt(base_head) / self.head_dim if attn == "mup"
                        else self.head_dim ** -0.5)

    def forward(self, x, mask):
        T, B, E = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        q = q * self.scaling
        q = q.contiguous().view(T, B * self.n_head, self.head_dim).transpose(0, 1)
        k = k.contiguous().view(T, B * self.n_head, self.head_dim).transpose(0, 1)
        v = v.contiguous().view(T, B * self.n_head, self.head_dim).transpose(0, 1)
        w = torch.bmm(q, k.transpose(1, 2))
        w = w + mask
        w = F.softmax(w, dim=-1)
        out = torch.bmm(w, v).transpose(0, 1).contiguous().view(T, B, E)
        return self.out_proj(out)


class SeqFirstLayer(nn.Module):
    def __init__(self, width, n_head, attn):
        super().__init__()
        self.self_attn = FusedSelfAttention(width, n_head, attn)
        self.linear1, self.linear2 = nn.Linear(width, 2 * width), nn.Linear(2 * width, width)
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)

    def forward(self, x, mask):
        x = x + self.self_attn(self.norm1(x), mask)
        return x + self.linear2(F.relu(self.linear1(self.norm2(x))))


class SeqFirstTransformer(nn.Module):
    """Sequence-first LM: (T, B) token ids -> (T, B, V) logits."""

    def __init__(self, width, n_head=4, n_layer=2, attn="mup"):
        super().__init__()
        from mup import MuReadout
        self.encoder = nn.Embedding(VOCAB, width)
        self.pos = nn.Embedding(MAX_SEQ, width)
        self.layers = nn.ModuleList(SeqFirstLayer(width, n_head, attn) for _ in range(n_layer))
        self.norm = nn.LayerNorm(width)
        self.decoder = MuReadout(width, VOCAB)

    def forward(self, src):
        T = src.size(0)
        mask = torch.triu(torch.full((T, T), float("-inf")), diagonal=1)
        x = self.encoder(src) + self.pos(torch.arange(T, device=src.device))[:, None, :]
        for layer in self.layers:
            x = layer(x, mask)
        return self.decoder(self.norm(x))


def seq_first(attn="mup"):
    def make(width):
        from mup import MuAdam, set_base_shapes
        model = SeqFirstTransformer(width, attn=attn)
        with torch.device("meta"):
            base = SeqFirstTransformer(BASE_WIDTH, attn=attn)
            delta = SeqFirstTransformer(2 * BASE_WIDTH, attn=attn)
        set_base_shapes(model, base, delta=delta)
        return model, MuAdam(model.parameters(), lr=LR)
    return make


# --------------------------------------------------------------------------------------
# nn.MultiheadAttention
# --------------------------------------------------------------------------------------

class MHABlock(nn.Module):
    def __init__(self, width, n_head):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, n_head, bias=False, batch_first=True)
        self.fc, self.out = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x, mask):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class MHAGPT(nn.Module):
    """A GPT on ``nn.MultiheadAttention`` (whose scale is fixed at 1/sqrt(d_head)):
    muP-correct only when the head size is fixed (``head_size``), not the head count."""

    def __init__(self, width, head_size=0, n_head=4, n_layer=2):
        super().__init__()
        from mup import MuReadout
        heads = width // head_size if head_size else n_head
        self.wte, self.wpe = nn.Embedding(VOCAB, width), nn.Embedding(MAX_SEQ, width)
        self.blocks = nn.ModuleList(MHABlock(width, heads) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(width)
        self.head = MuReadout(width, VOCAB)

    def forward(self, idx):
        T = idx.size(1)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for b in self.blocks:
            x = b(x, mask)
        return self.head(self.ln_f(x))


def mha(head_size=16, n_head=4):
    def make(width):
        from mup import MuAdamW, set_base_shapes
        model = MHAGPT(width, head_size=head_size, n_head=n_head)
        with torch.device("meta"):
            base = MHAGPT(BASE_WIDTH, head_size=head_size, n_head=n_head)
            delta = MHAGPT(2 * BASE_WIDTH, head_size=head_size, n_head=n_head)
        set_base_shapes(model, base, delta=delta)
        return model, MuAdamW(model.parameters(), lr=LR)
    return make


# --------------------------------------------------------------------------------------
# Hugging Face style (Granite-like muP multipliers)
# --------------------------------------------------------------------------------------

class CausalLMOutput(OrderedDict):
    """What an HF ``ModelOutput`` is to a caller: a dict whose keys are also attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def eager_attention_forward(module, query, key, value, attention_mask, scaling):
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    return torch.matmul(attn_weights, value).transpose(1, 2).contiguous()


class HFAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        w, self.n_heads = config["hidden_size"], config["num_attention_heads"]
        self.head_dim = w // self.n_heads
        self.scaling = config["attention_multiplier"] / self.head_dim     # muP: mult / d
        self.q_proj = nn.Linear(w, w, bias=False)
        self.k_proj = nn.Linear(w, w, bias=False)
        self.v_proj = nn.Linear(w, w, bias=False)
        self.o_proj = nn.Linear(w, w, bias=False)

    def forward(self, hidden_states, attention_mask):
        B, T, _ = hidden_states.shape
        shape = (B, T, -1, self.head_dim)
        q = self.q_proj(hidden_states).view(shape).transpose(1, 2)
        k = self.k_proj(hidden_states).view(shape).transpose(1, 2)
        v = self.v_proj(hidden_states).view(shape).transpose(1, 2)
        out = eager_attention_forward(self, q, k, v, attention_mask, self.scaling)
        return self.o_proj(out.reshape(B, T, -1))


class HFDecoderLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        w = config["hidden_size"]
        self.input_layernorm, self.post_attention_layernorm = nn.RMSNorm(w), nn.RMSNorm(w)
        self.self_attn = HFAttention(config)
        self.gate_proj = nn.Linear(w, 2 * w, bias=False)
        self.up_proj = nn.Linear(w, 2 * w, bias=False)
        self.down_proj = nn.Linear(2 * w, w, bias=False)

    def forward(self, h, mask):
        h = h + self.self_attn(self.input_layernorm(h), mask)
        x = self.post_attention_layernorm(h)
        return h + self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class HFCausalLM(nn.Module):
    """HF-style causal LM returning a ModelOutput-like dict; ``logits_scaling`` = width_mult
    divides the logits after ``lm_head`` (muP's output multiplier, Granite's placement)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(VOCAB, config["hidden_size"])
        self.layers = nn.ModuleList(HFDecoderLayer(config) for _ in range(2))
        self.norm = nn.RMSNorm(config["hidden_size"])
        self.lm_head = nn.Linear(config["hidden_size"], VOCAB, bias=False)

    def forward(self, input_ids, labels=None):
        T = input_ids.shape[1]
        mask = torch.triu(torch.full((T, T), float("-inf")), diagonal=1)[None, None]
        h = self.embed_tokens(input_ids)
        for layer in self.layers:
            h = layer(h, mask)
        logits = self.lm_head(self.norm(h)) / self.config["logits_scaling"]
        return CausalLMOutput(logits=logits, loss=None)


def hf_style():
    def make(width):
        m = _m(width)
        config = {"hidden_size": width, "num_attention_heads": 4, "logits_scaling": m,
                  "attention_multiplier": math.sqrt(BASE_WIDTH // 4)}
        model = HFCausalLM(config)
        hidden = [p for n, p in model.named_parameters() if p.ndim == 2 and "layers." in n]
        rest = [p for n, p in model.named_parameters() if not (p.ndim == 2 and "layers." in n)]
        opt = torch.optim.AdamW([{"params": hidden, "lr": LR / m}, {"params": rest, "lr": LR}],
                                weight_decay=0.0)
        return model, opt
    return make


# --------------------------------------------------------------------------------------
# An MLP that is not a language model: the batch and loss hooks
# --------------------------------------------------------------------------------------

CONTEXT = 4          # bytes of context, one-hot: 4 x 256 = 1024 input features


class MLP(nn.Module):
    """(B, 1024) one-hot context -> (B, 256) logits of the next byte; ``MuReadout``."""

    def __init__(self, width):
        super().__init__()
        from mup import MuReadout
        self.fc1 = nn.Linear(CONTEXT * VOCAB, width)
        self.fc2 = nn.Linear(width, width)
        self.fc3 = nn.Linear(width, width)
        self.readout = MuReadout(width, VOCAB)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.readout(F.relu(self.fc3(x)))


def mlp(optimizer="muadam"):
    def make(width):
        from mup import MuAdam, set_base_shapes
        model = MLP(width)
        with torch.device("meta"):
            base, delta = MLP(BASE_WIDTH), MLP(2 * BASE_WIDTH)
        set_base_shapes(model, base, delta=delta)
        cls = MuAdam if optimizer == "muadam" else torch.optim.Adam
        return model, cls(model.parameters(), lr=LR)
    return make


_STREAM = None


def mlp_batch(width: int, step: int, batch: int = 64):
    """The MLP's batch hook: (one-hot contexts, next bytes) from the stdlib corpus; random
    positions from torch's RNG (the check seeds it per replicate and step)."""
    global _STREAM
    if _STREAM is None:
        from calibration.train.data import load_data
        import numpy as np
        _STREAM = torch.from_numpy(np.asarray(load_data("stdlib").train, dtype=np.int64))
    starts = torch.randint(0, len(_STREAM) - CONTEXT - 1, (batch,))
    ctx = torch.stack([_STREAM[s:s + CONTEXT] for s in starts.tolist()])
    x = F.one_hot(ctx, VOCAB).float().reshape(batch, CONTEXT * VOCAB)
    return x, _STREAM[starts + CONTEXT]


def mlp_loss(output, targets):
    """The MLP's loss hook: cross-entropy of (B, 256) logits."""
    return F.cross_entropy(output, targets)


MLP_CONTRACT = {"batch_fn": mlp_batch, "loss_fn": mlp_loss}

# name -> (factory maker, contract settings)
CORRECT = {
    "nanogpt-mult-before": (nanogpt(), {}),
    "nanogpt-lr-scale": (nanogpt(lr_mode="lr_scale"), {}),
    "bmm-fused-seq-first": (seq_first(), {}),
    "torch-mha": (mha(head_size=16), {}),
    "hf-style": (hf_style(), {}),
    "mlp": (mlp(), MLP_CONTRACT),
}

# name -> (factory maker, contract settings, the cause named first)
BROKEN = {
    "nanogpt-no-mult": (nanogpt(mup_output="none"), {}, "readout"),
    "nanogpt-sqrt-attention": (nanogpt(attn="sqrt"), {}, "attention"),
    "bmm-fused-sqrt": (seq_first(attn="sqrt"), {}, "attention"),
    "torch-mha-fixed-heads": (mha(head_size=0, n_head=4), {}, "attention"),
    "lr-scale-embedding": (nanogpt(lr_mode="lr_scale", scale_embedding=True), {}, "embedding"),
    "mlp-adam": (mlp(optimizer="adam"), MLP_CONTRACT, "hidden-lr"),
}
