"""A zoo of small byte-level GPTs built with the ``mup`` package: correct muP models that
differ the way real models do, and broken variants that each get muP wrong once.

It is the test bed of ``advisor check-spectral``: every correct model must pass and every
broken one must fail with the right cause named first (``tests/test_spectral_zoo.py``,
``bench/bench_spectral_zoo.py``). A zoo entry is a :class:`Spec`; ``factory(spec)`` turns it
into a width -> (model, optimizer) function, the form ``check-spectral --factory`` takes;
``CORRECT`` and ``BROKEN`` name every entry, and each is also a module-level factory with
``-`` and ``/`` turned into ``_`` (``--factory calibration.spectral.zoo:linear_readout``).

The default model is the one of issue 15, built as a user would: LayerNorm, learned
positions, GELU MLP of 4x width, 2 blocks, 4 heads (so the head size grows with width),
PyTorch's default ``nn.Linear`` init and N(0, 1) embeddings, ``mup.MuReadout``,
``set_base_shapes`` (base width 64, delta 128), attention scale ``attn_mult / d_head`` with
attn_mult = sqrt(base d_head) (equal to 1/sqrt(d_head) at the base width), ``mup.MuAdamW`` at
LR 1e-2. Units: widths in channels, vocabulary in tokens (bytes), sequence length in tokens.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

BASE_WIDTH = 64
VOCAB = 256
SEQ_LEN = 64


@dataclass(frozen=True)
class Spec:
    """One zoo model. The first group of fields are ways correct models differ; the second
    group are the deliberate mistakes (their defaults are the correct choice)."""

    norm: str = "layer"            # "layer" | "rms"
    pos: str = "learned"           # "learned" | "rotary"
    mlp: str = "gelu"              # "gelu" | "swiglu"
    mlp_ratio: float = 4.0         # MLP hidden width / model width
    heads: int = 4                 # fixed head count (head size grows with width) ...
    head_size: int = 0             # ... or, when > 0, fixed head size (count grows)
    tied: bool = False             # readout shares the embedding matrix (MuSharedReadout)
    bias: bool = False             # biases in every Linear and norm
    qk_norm: bool = False          # RMSNorm on queries and keys, per head
    hf_output: bool = False        # forward returns an object with .logits (Hugging Face)
    recipe: str = "default"        # "default": torch default init | "mup-init": mup.init.normal_
    #                                with set_base_shapes' rescaling and a zero-init readout
    depth: int = 2
    lr: float = 1e-2
    weight_decay: float = 0.0      # torch AdamW coefficient at the base width, hidden matrices
    wd_rule: str = "mup"           # width scaling of that coefficient: "mup" (x m, as
    #                                mup.MuAdamW does: lr * wd per step constant), "none"
    #                                (constant), "sqrt" (x sqrt(m), Fan et al. 2025)
    muon_lr: float = 2e-2          # optimizer "muon": base LR of the Muon groups
    # mistakes
    optimizer: str = "muadamw"     # "muadamw" | "adamw" (torch's: hidden LRs do not shrink)
    #                                | "muon": hidden matrices on Muon (Float32Muon, i.e.
    #                                torch.optim.Muon), everything else on mup.MuAdamW
    muon_scale: str = "spectral"   # optimizer "muon": "spectral" (update lr*sqrt(fan_out/
    #                                fan_in)*O, correct) | "match_rms_adamw" (Moonlight's 0.2*
    #                                sqrt(max(fan_in, fan_out)) at the base LR: grows with width)
    muon_embedding: bool = False   # optimizer "muon": the token embedding on Muon too
    readout: str = "mu"            # "mu" | "linear" (plain nn.Linear, no 1/m on the logits)
    #                                | "no-mult" (tied, x @ E^T without MuSharedReadout's 1/m)
    attn: str = "mup"              # "mup": attn_mult / d_head | "sqrt": 1 / sqrt(d_head)
    base_shapes: str = "ok"        # "ok" | "missing" (never called) | "self" (base = the model
    #                                itself, rebuilt at each width: every width multiplier is 1)
    embed_lr: str = "ok"           # "ok" | "hidden" (embedding LR divided by m like a matrix)
    rescale_tied: bool = False     # let set_base_shapes' default rescale_params=True rescale
    #                                MuSharedReadout's weight, i.e. the tied embedding, by sqrt(m)


class _HFOutput:
    """What a Hugging Face causal LM returns, reduced to the part the check reads."""

    def __init__(self, logits):
        self.logits = logits


def _norm(spec: Spec, dim: int) -> nn.Module:
    if spec.norm == "rms":
        return nn.RMSNorm(dim)
    return nn.LayerNorm(dim, bias=spec.bias)


def _rotary(x: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding (Su et al. 2021, arXiv 2104.09864) on (B, H, T, D), D even,
    base 10000, rotating the two halves of each head."""
    T, D = x.shape[-2], x.shape[-1]
    half = D // 2
    inv = 10000.0 ** (-torch.arange(half, dtype=torch.float32) / half)
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv[None, :]
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def _head_layout(spec: Spec, width: int) -> tuple[int, int]:
    """(number of heads, head size) at ``width``."""
    if spec.head_size:
        return width // spec.head_size, spec.head_size
    return spec.heads, width // spec.heads


class Attention(nn.Module):
    def __init__(self, spec: Spec, width: int):
        super().__init__()
        self.spec = spec
        self.n_heads, self.d_head = _head_layout(spec, width)
        _, base_d_head = _head_layout(spec, BASE_WIDTH)
        self.qkv = nn.Linear(width, 3 * width, bias=spec.bias)
        self.proj = nn.Linear(width, width, bias=spec.bias)
        if spec.qk_norm:
            self.q_norm, self.k_norm = nn.RMSNorm(self.d_head), nn.RMSNorm(self.d_head)
        # muP: attn_mult / d_head, attn_mult = sqrt(base d_head): the same as SP at the base.
        self.scale = (math.sqrt(base_d_head) / self.d_head if spec.attn == "mup"
                      else 1.0 / math.sqrt(self.d_head))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        if self.spec.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.spec.pos == "rotary":
            q, k = _rotary(q), _rotary(k)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, spec: Spec, width: int):
        super().__init__()
        hidden = int(round(spec.mlp_ratio * width))
        self.swiglu = spec.mlp == "swiglu"
        if self.swiglu:
            self.gate = nn.Linear(width, hidden, bias=spec.bias)
        self.fc = nn.Linear(width, hidden, bias=spec.bias)
        self.out = nn.Linear(hidden, width, bias=spec.bias)

    def forward(self, x):
        h = F.silu(self.gate(x)) * self.fc(x) if self.swiglu else F.gelu(self.fc(x))
        return self.out(h)


class Block(nn.Module):
    def __init__(self, spec: Spec, width: int):
        super().__init__()
        self.ln1, self.attn = _norm(spec, width), Attention(spec, width)
        self.ln2, self.mlp = _norm(spec, width), MLP(spec, width)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class ZooGPT(nn.Module):
    """Embeddings, ``spec.depth`` pre-norm blocks, final norm, readout (see :class:`Spec`)."""

    def __init__(self, spec: Spec, width: int, vocab: int = VOCAB, seq_len: int = SEQ_LEN):
        super().__init__()
        from mup import MuReadout, MuSharedReadout

        self.spec = spec
        self.wte = nn.Embedding(vocab, width)
        if spec.pos == "learned":
            self.wpe = nn.Embedding(seq_len, width)
        self.blocks = nn.ModuleList(Block(spec, width) for _ in range(spec.depth))
        self.ln_f = _norm(spec, width)
        zero = spec.recipe == "mup-init"
        if spec.readout == "no-mult":
            self.head = None                         # the refactor: F.linear(x, wte.weight)
        elif spec.tied:
            self.head = MuSharedReadout(self.wte.weight, bias=spec.bias, readout_zero_init=False)
        elif spec.readout == "linear":
            self.head = nn.Linear(width, vocab, bias=spec.bias)
        else:
            self.head = MuReadout(width, vocab, bias=spec.bias, readout_zero_init=zero)

    def forward(self, idx):
        x = self.wte(idx)
        if self.spec.pos == "learned":
            x = x + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        logits = F.linear(x, self.wte.weight) if self.head is None else self.head(x)
        return _HFOutput(logits) if self.spec.hf_output else logits


def _mup_init(model: nn.Module) -> None:
    """The mup README's recipe: hidden matrices from ``mup.init.normal_`` (std 0.02 at the
    base width, scaled by infshape), embeddings N(0, 0.02^2); the readout stays zero."""
    from mup import MuReadout
    from mup.init import normal_

    readouts = {id(m.weight) for m in model.modules() if isinstance(m, MuReadout)}
    for name, p in model.named_parameters():
        if p.ndim < 2 or id(p) in readouts:
            continue
        if name.startswith(("wte", "wpe")):
            nn.init.normal_(p, std=0.02)
        else:
            normal_(p, std=0.02 * math.sqrt(BASE_WIDTH / 16))     # 0.04: trains at 20 steps


def build(spec: Spec, width: int, seed: int | None = None):
    """(model, optimizer) of the zoo entry ``spec`` at ``width``; ``seed`` None keeps torch's
    global random state (the check seeds it per replicate)."""
    from mup import MuAdamW, set_base_shapes

    if seed is not None:
        torch.manual_seed(seed)
    model = ZooGPT(spec, width)
    if spec.base_shapes == "ok":
        with torch.device("meta"):
            base, delta = ZooGPT(spec, BASE_WIDTH), ZooGPT(spec, 2 * BASE_WIDTH)
        # a user who keeps a plain Linear readout has to silence mup's own assertion; a tied
        # model must not let mup rescale the shared matrix (it is the embedding too)
        set_base_shapes(model, base, delta=delta, do_assert=spec.readout != "linear",
                        rescale_params=not spec.tied or spec.rescale_tied)
    elif spec.base_shapes == "self":
        set_base_shapes(model, None, do_assert=spec.readout != "linear")
    if spec.recipe == "mup-init":
        _mup_init(model)
    m = width / BASE_WIDTH
    if spec.embed_lr == "hidden":
        emb = [p for n, p in model.named_parameters() if n.startswith(("wte", "wpe"))]
        rest = [p for n, p in model.named_parameters() if not n.startswith(("wte", "wpe"))]
        groups = [{"params": emb, "lr": spec.lr / m}, {"params": rest}]
    else:
        groups = model.parameters()
    if spec.optimizer == "muon":
        return model, _muon_optimizer(model, spec)
    opt_cls = MuAdamW if spec.optimizer == "muadamw" else torch.optim.AdamW
    opt = opt_cls(groups, lr=spec.lr, weight_decay=0.0)
    if spec.weight_decay:
        from calibration.spectral.wd_rules import apply_wd_rule
        apply_wd_rule(opt, spec.weight_decay, spec.wd_rule)
    return model, opt


def _muon_optimizer(model: nn.Module, spec: Spec):
    """Muon (``calibration.train.muon_float32.Float32Muon``, a torch.optim.Muon) on the hidden
    matrices (two growing dimensions; with ``muon_embedding`` also ``wte``), one group per
    shape with the LR factor and ``adjust_lr_fn`` of ``advisor.rules.optim_rules.muon_torch_group``
    for ``spec.muon_scale``; mup.MuAdamW at ``spec.lr`` on everything else."""
    from mup import MuAdamW

    from advisor.rules.optim_rules import muon_torch_group
    from calibration.model.groups import param_group
    from calibration.model.proxy import MuonWithAdamW
    from calibration.train.muon_float32 import Float32Muon

    muon_groups: dict = {}
    rest = []
    for name, p in model.named_parameters():
        hidden = p.ndim == 2 and param_group(p, default=None) == "hidden"   # by infshape
        if not (hidden or (spec.muon_embedding and name == "wte.weight")):
            rest.append(p)
            continue
        rule = muon_torch_group(int(p.shape[0]), int(p.shape[1]), spec.muon_scale)
        key = (rule.lr_factor, rule.adjust_lr_fn)
        muon_groups.setdefault(key, {"params": [], "lr": spec.muon_lr * rule.lr_factor,
                                     "adjust_lr_fn": rule.adjust_lr_fn})["params"].append(p)
    muon = Float32Muon(list(muon_groups.values()), lr=spec.muon_lr, weight_decay=0.0)
    return MuonWithAdamW(muon, MuAdamW(rest, lr=spec.lr, weight_decay=0.0))


def factory(spec, name: str = "zoo"):
    """A ``check-spectral`` factory: width -> (model, optimizer). ``spec`` is a
    :class:`Spec` or already a factory (the entries of :mod:`calibration.spectral.zoo_styles`)."""
    if callable(spec):
        return spec

    def make(width: int):
        return build(spec, width)

    make.__name__ = name
    return make


# The zoo. Correct models: every one must pass.
CORRECT = {
    "issue15": Spec(),
    "rmsnorm": Spec(norm="rms"),
    "rotary": Spec(pos="rotary"),
    "swiglu-8/3": Spec(mlp="swiglu", mlp_ratio=8 / 3),
    "gelu-2x": Spec(mlp_ratio=2.0),
    "gelu-1x": Spec(mlp_ratio=1.0),
    "head-size-16": Spec(head_size=16),
    "tied": Spec(tied=True),
    "biases": Spec(bias=True),
    "qk-norm": Spec(qk_norm=True),
    "hf-output": Spec(hf_output=True),
    "llama-like": Spec(norm="rms", pos="rotary", mlp="swiglu", mlp_ratio=8 / 3, qk_norm=True),
    "mup-recipe": Spec(recipe="mup-init"),
    "muon-spectral": Spec(optimizer="muon"),
}

# Broken models: each gets muP wrong once; the value is the cause the check must name first.
BROKEN = {
    "sp": (Spec(optimizer="adamw", readout="linear", attn="sqrt", base_shapes="missing"),
           "readout"),
    "plain-adamw": (Spec(optimizer="adamw"), "hidden-lr"),
    "linear-readout": (Spec(readout="linear"), "readout"),
    "sqrt-attention": (Spec(attn="sqrt"), "attention"),
    "mup-init-sp-lr": (Spec(recipe="mup-init", optimizer="adamw"), "hidden-lr"),
    "no-base-shapes": (Spec(base_shapes="missing", optimizer="adamw"), "base-shapes"),
    "self-base-shapes": (Spec(base_shapes="self"), "base-shapes"),
    "embed-lr-as-hidden": (Spec(embed_lr="hidden"), "embedding"),
    "tied-no-mult": (Spec(tied=True, readout="no-mult"), "readout"),
    "tied-rescaled": (Spec(tied=True, rescale_tied=True), "embedding"),
    "muon-rms-unscaled": (Spec(optimizer="muon", muon_scale="match_rms_adamw"), "hidden-lr"),
    "muon-embedding": (Spec(optimizer="muon", muon_embedding=True), "embedding"),
}


# Models written the ways public muP code writes them (issue 25): factories, some with
# their own contract settings (the MLP's batch and loss hooks).
def _register_styles():
    from calibration.spectral import zoo_styles
    for name, (make, settings) in zoo_styles.CORRECT.items():
        CORRECT[name] = make
        CONTRACTS[name] = settings
    for name, (make, settings, cause) in zoo_styles.BROKEN.items():
        BROKEN[name] = (make, cause)
        CONTRACTS[name] = settings


def self_seeding_factory(width: int):
    """The issue-15 model from a factory that seeds torch itself, as real factories do (the
    check offsets that seed per replicate)."""
    torch.manual_seed(1234)
    return build(CORRECT["issue15"], width)


CONTRACTS: dict = {}
_register_styles()
CORRECT["self-seeding"] = self_seeding_factory


def by_name(name: str):
    """The entry's Spec (or factory, for the styles)."""
    if name in CORRECT:
        return CORRECT[name]
    return BROKEN[name][0]


def contract(name: str, **settings):
    """The check's contract for zoo entry ``name`` (its hooks), with ``settings`` (e.g.
    seq_len) on top."""
    from calibration.spectral.contract import Contract
    return Contract(**{**CONTRACTS.get(name, {}), **settings})


def with_(spec: Spec, **changes) -> Spec:
    """A copy of ``spec`` with fields changed (dataclasses.replace)."""
    return replace(spec, **changes)


def _py_name(name: str) -> str:
    return name.replace("-", "_").replace("/", "_")


# Every entry as a module-level factory, for the CLI:
#   advisor check-spectral --factory calibration.spectral.zoo:linear_readout
for _name in [*CORRECT, *BROKEN]:
    globals()[_py_name(_name)] = factory(by_name(_name), _name)
del _name
