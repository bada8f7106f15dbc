"""The proxy model: a small decoder-only transformer, in muP or standard parameterisation.

One file, meant to be read top to bottom. The architecture is what people train today
(Llama-style): token embedding -> depth x [RMSNorm -> causal self-attention with rotary
positions (optional QK-norm) -> residual, RMSNorm -> SwiGLU MLP -> residual] -> RMSNorm ->
readout. No biases.

Two parameterisations share one set of *base constants* (recipes/families/<name>.yaml) and
coincide exactly at the base width d0 (same initialisation, same attention and output
multipliers, same per-parameter learning rates). Away from it, with m = width / d0:

    ===================  ===========================  =================================
    parameter            standard (sp)                muP (mup), Adam
    ===================  ===========================  =================================
    token embedding      std sigma_e, LR eta          std sigma_e, LR eta
    hidden matrices      std sigma_h, LR eta          std sigma_h / sqrt(m_fan_in), LR eta / m
    norm gains           1, LR eta                    1, LR eta
    readout              std sigma_r, LR eta          std sigma_r, LR eta, logits x 1/m (MuReadout)
    attention logits     q.k * 1/sqrt(d_head)         q.k * attn_mult / d_head
    ===================  ===========================  =================================

(Tensor Programs V, Yang et al. 2022, Table 3; the muP column is what ``mup.MuReadout`` and
``mup.MuAdamW`` implement once ``mup.set_base_shapes`` has marked which dimensions grow.)
``attn_mult`` defaults to sqrt(d_head at the base width), so the two scales agree at d0.
Depth scaling (``depth_alpha``; Depth-muP, Yang et al. 2023 and Bordelon et al. 2023, at
alpha = 0.5; CompleteP, Dey et al. 2025, at alpha = 1) multiplies each residual branch by
(depth / base_depth)^-alpha and the LR of every parameter inside the blocks (hidden matrices and
the blocks' norm gains) by (depth / base_depth)^(alpha - 1), their Adam eps by
(depth / base_depth)^-alpha; it is off when ``depth_alpha`` is null or 0. Every multiplier here,
width and depth, comes from ``advisor.optim_rules`` (the recommendation reads the same rules).

Units: widths and head sizes in channels; ``seq_len`` in tokens; LRs are peak LRs of the
base-width model.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from advisor.errors import AdvisorError
from advisor.optim_rules import (MUON_DEFAULTS, check_alpha, check_muon_alpha,
                                 check_muon_convention, group_multipliers, muon_torch_group,
                                 residual_multiplier)

FAMILIES_DIR = Path(__file__).resolve().parents[1] / "recipes" / "families"


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProxyConfig:
    """Everything that determines a proxy model's shape, parameterisation and initialisation."""

    width: int = 128                 # d_model, channels
    depth: int = 4                   # number of transformer blocks
    head_dim: int = 64               # channels per attention head (used when n_heads is None)
    n_heads: int | None = None       # if set, heads are fixed and head_dim = width / n_heads
    vocab_size: int = 256            # tokens (256 = raw bytes)
    seq_len: int = 256               # context length in tokens
    ffn_mult: float = 2.75           # SwiGLU hidden size = ffn_mult * width
    parameterization: str = "mup"    # "mup" | "sp": init and LR scaling of hidden matrices
    attn_scale: str | None = None    # "mup" (attn_mult/d_head) | "sp" (1/sqrt(d_head)); None: follow parameterization
    readout: str | None = None       # "mup" (MuReadout, logits/m) | "sp" (plain Linear); None: follow parameterization
    qk_norm: bool = False            # RMSNorm on queries and keys, per head
    z_loss: float = 0.0              # coefficient of the z-loss, mean(logsumexp(logits)^2)
    tied_embeddings: bool = False    # readout shares the token embedding's weight
    depth_alpha: float | None = None  # residual branch multiplier (depth/base_depth)^-alpha; None: off
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    # Base constants: the values at the base width; muP carries them to other widths.
    base_width: int = 128            # d0: muP and SP coincide here
    base_depth: int = 4              # L0: residual multiplier 1 here (depth scaling)
    init_std_hidden: float = 0.02    # std of hidden matrices at the base width
    init_std_embed: float = 0.02     # std of the token embedding (all widths)
    init_std_readout: float = 0.02   # std of the readout weight (muP: effective std / m)
    output_mult: float = 1.0         # logits multiplier (muP: times 1/m on top)
    attn_mult: float | None = None   # muP attention: scale = attn_mult / d_head; None: sqrt(base head_dim)
    family: str = ""                 # name of the recipe this came from (informational)

    def __post_init__(self):
        for name in ("width", "depth", "vocab_size", "seq_len", "base_width", "base_depth"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise AdvisorError(f"model {name} must be a positive integer, got {v!r}")
        for name, allowed in (("parameterization", ("mup", "sp")),
                              ("attn_scale", (None, "mup", "sp")),
                              ("readout", (None, "mup", "sp"))):
            if getattr(self, name) not in allowed:
                raise AdvisorError(f"model {name} must be one of "
                                   f"{', '.join(str(a) for a in allowed)}; got {getattr(self, name)!r}")
        if self.n_heads is not None:
            if self.n_heads < 1 or self.width % self.n_heads or self.base_width % self.n_heads:
                raise AdvisorError(f"{self.n_heads} heads do not divide width {self.width} "
                                   f"(and base width {self.base_width})")
        elif self.head_dim < 1 or self.width % self.head_dim or self.base_width % self.head_dim:
            raise AdvisorError(f"head_dim {self.head_dim} does not divide width {self.width} "
                               f"(and base width {self.base_width}): the family cannot build it")
        if self.d_head % 2:
            raise AdvisorError(f"rotary positions need an even head size, got {self.d_head}")
        if round(self.ffn_mult * self.width) < 1:
            raise AdvisorError(f"ffn_mult {self.ffn_mult} gives an empty MLP")
        for name in ("init_std_hidden", "init_std_embed", "init_std_readout", "output_mult",
                     "norm_eps", "rope_theta"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise AdvisorError(f"model {name} must be a positive number, got {v!r}")
        if self.z_loss < 0:
            raise AdvisorError(f"z_loss must be >= 0, got {self.z_loss}")
        if self.attn_mult is not None and self.attn_mult <= 0:
            raise AdvisorError(f"attn_mult must be positive, got {self.attn_mult}")
        if self.depth_alpha is not None:
            check_alpha(self.depth_alpha)

    # Derived sizes -------------------------------------------------------------------
    @property
    def d_head(self) -> int:
        return self.width // self.n_heads if self.n_heads else self.head_dim

    @property
    def heads(self) -> int:
        return self.n_heads or self.width // self.head_dim

    @property
    def ffn_hidden(self) -> int:
        return int(round(self.ffn_mult * self.width))

    @property
    def width_mult(self) -> float:
        """m = width / base_width."""
        return self.width / self.base_width

    @property
    def attn_scale_kind(self) -> str:
        return self.attn_scale or self.parameterization

    @property
    def readout_kind(self) -> str:
        return self.readout or self.parameterization

    @property
    def softmax_scale(self) -> float:
        """Multiplier of q.k in the attention logits."""
        if self.attn_scale_kind == "sp":
            return 1.0 / math.sqrt(self.d_head)
        base_d_head = self.base_width // self.n_heads if self.n_heads else self.head_dim
        mult = self.attn_mult if self.attn_mult is not None else math.sqrt(base_d_head)
        return mult / self.d_head

    @property
    def depth_mult(self) -> float:
        """m_L = depth / base_depth."""
        return self.depth / self.base_depth

    @property
    def alpha(self) -> float:
        """The depth exponent the rules use: ``depth_alpha``, 0 when off (null)."""
        return 0.0 if self.depth_alpha is None else float(self.depth_alpha)

    @property
    def residual_mult(self) -> float:
        """Multiplier on each residual branch: (depth / base_depth)^-alpha, 1 when off."""
        return residual_multiplier(self.depth_mult, self.alpha)

    def with_(self, **changes) -> "ProxyConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    @classmethod
    def from_family(cls, name: str, width: int, depth: int | None = None, **overrides) -> "ProxyConfig":
        """Build from recipes/families/<name>.yaml (or a path), at a width (and depth).

        The YAML holds ``architecture`` (shape settings) and ``base`` (base constants, with
        ``width`` and ``depth`` meaning base_width and base_depth); ``overrides`` win over both.
        """
        spec = load_family(name)
        kw = dict(spec.get("architecture") or {})
        base = dict(spec.get("base") or {})
        if "width" in base:
            kw["base_width"] = base.pop("width")
        if "depth" in base:
            kw["base_depth"] = base.pop("depth")
        kw.update(base)
        kw["family"] = spec.get("name", str(name))
        kw["width"] = width
        kw["depth"] = depth if depth is not None else kw.get("depth", kw.get("base_depth", 4))
        kw.update(overrides)
        unknown = set(kw) - cls.field_names()
        if unknown:
            raise AdvisorError(f"family {name!r}: unknown model setting(s) {', '.join(sorted(unknown))}")
        return cls(**kw)


def load_family(name_or_path) -> dict:
    """Read a model-family recipe (a name in recipes/families/ or a path to a YAML file)."""
    from advisor.yamlio import read_yaml_file

    p = Path(name_or_path)
    if not p.suffix:
        p = FAMILIES_DIR / f"{name_or_path}.yaml"
    if not p.is_file():
        known = sorted(f.stem for f in FAMILIES_DIR.glob("*.yaml"))
        raise AdvisorError(f"unknown model family {name_or_path!r} (known: {', '.join(known)})")
    spec = read_yaml_file(p, "family file")
    if not isinstance(spec, dict):
        raise AdvisorError(f"family file {p} must be a mapping")
    unknown = set(spec) - {"name", "description", "architecture", "base", "provenance"}
    if unknown:
        raise AdvisorError(f"family file {p}: unknown key(s) {', '.join(sorted(unknown))}")
    return spec


# --------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def rotary_tables(seq_len: int, d_head: int, theta: float):
    """cos and sin tables of shape (seq_len, d_head / 2) for rotary positions (Su et al. 2021)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, d_head, 2, dtype=torch.float32) / d_head)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rotary(x, cos, sin):
    """Rotate pairs (first half, second half) of the last dimension of x (B, H, T, D)."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos[: x.shape[-2]].to(x.dtype), sin[: x.shape[-2]].to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: ProxyConfig):
        super().__init__()
        self.heads, self.d_head, self.scale = cfg.heads, cfg.d_head, cfg.softmax_scale
        self.q = nn.Linear(cfg.width, cfg.width, bias=False)
        self.k = nn.Linear(cfg.width, cfg.width, bias=False)
        self.v = nn.Linear(cfg.width, cfg.width, bias=False)
        self.o = nn.Linear(cfg.width, cfg.width, bias=False)
        self.q_norm = RMSNorm(cfg.d_head, cfg.norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(cfg.d_head, cfg.norm_eps) if cfg.qk_norm else None

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        q, k, v = (lin(x).view(B, T, self.heads, self.d_head).transpose(1, 2)
                   for lin in (self.q, self.k, self.v))
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        return self.o(y.transpose(1, 2).reshape(B, T, C))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ProxyConfig):
        super().__init__()
        self.gate = nn.Linear(cfg.width, cfg.ffn_hidden, bias=False)
        self.up = nn.Linear(cfg.width, cfg.ffn_hidden, bias=False)
        self.down = nn.Linear(cfg.ffn_hidden, cfg.width, bias=False)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, cfg: ProxyConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.width, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.width, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)
        self.branch_mult = cfg.residual_mult

    def forward(self, x, cos, sin):
        x = x + self.branch_mult * self.attn(self.attn_norm(x), cos, sin)
        return x + self.branch_mult * self.mlp(self.mlp_norm(x))


class ProxyLM(nn.Module):
    """Maps token ids (B, T) to next-token logits (B, T, vocab_size)."""

    def __init__(self, cfg: ProxyConfig):
        super().__init__()
        from mup import MuReadout, MuSharedReadout

        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.width)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = RMSNorm(cfg.width, cfg.norm_eps)
        if cfg.readout_kind == "mup":
            if cfg.tied_embeddings:
                self.readout = MuSharedReadout(self.embed.weight, bias=False,
                                               output_mult=cfg.output_mult)
            else:
                self.readout = MuReadout(cfg.width, cfg.vocab_size, bias=False,
                                         output_mult=cfg.output_mult)
        else:
            self.readout = nn.Linear(cfg.width, cfg.vocab_size, bias=False)
            if cfg.tied_embeddings:
                self.readout.weight = self.embed.weight
        cos, sin = rotary_tables(cfg.seq_len, cfg.d_head, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, idx):
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, self.rope_cos, self.rope_sin)
        x = self.norm(x)
        if self.cfg.readout_kind == "sp" and self.cfg.output_mult != 1.0:
            x = x * self.cfg.output_mult
        return self.readout(x)  # MuReadout applies output_mult / m itself

    def hidden_matrices(self):
        """(name, parameter) of the matrices whose both dimensions grow with width."""
        return [(n, p) for n, p in self.named_parameters()
                if p.ndim == 2 and n.startswith("blocks.")]


# --------------------------------------------------------------------------------------
# Factory: shapes, initialisation, optimiser
# --------------------------------------------------------------------------------------

def build_model(cfg: ProxyConfig, device="cpu", seed: int | None = None) -> ProxyLM:
    """Build, set mup base shapes, and initialise a proxy model (see the module docstring).

    For muP, base shapes come from the same family at ``base_width`` (and 2 x base_width to
    tell which dimensions grow). For SP every dimension is marked finite, so the width rules
    give 1 (plain AdamW). Initialisation is done here, after the shapes are known, and never
    by ``mup``'s own rescaling (``rescale_params=False``), so the base constants mean what the
    family file says.
    """
    from mup import set_base_shapes

    if seed is not None:
        torch.manual_seed(seed)
    with torch.device(device):
        model = ProxyLM(cfg)
    if cfg.parameterization == "mup":
        with torch.device("meta"):
            base = ProxyLM(cfg.with_(width=cfg.base_width))
            delta = ProxyLM(cfg.with_(width=2 * cfg.base_width))
        set_base_shapes(model, base, delta=delta, rescale_params=False,
                        do_assert=cfg.readout_kind == "mup")
    else:
        set_base_shapes(model, None, rescale_params=False, do_assert=False)
    init_weights(model, cfg)
    return model


@torch.no_grad()
def init_weights(model: ProxyLM, cfg: ProxyConfig) -> None:
    """Initialise from the base constants; muP divides hidden stds by sqrt(fan-in multiplier)."""
    for name, p in model.named_parameters():
        if p.ndim == 1:
            nn.init.ones_(p)                                   # norm gains
        elif name == "embed.weight":
            nn.init.normal_(p, std=cfg.init_std_embed)
        elif name == "readout.weight":                         # only when untied
            nn.init.normal_(p, std=cfg.init_std_readout)
        else:
            fan_in_mult = p.infshape[1].width_mult() if cfg.parameterization == "mup" else 1.0
            rule = group_multipliers("hidden", fan_in_mult, cfg.depth_mult, cfg.alpha,
                                     width_rule=cfg.parameterization)
            nn.init.normal_(p, std=cfg.init_std_hidden * rule.init_std)


def count_params(model: ProxyLM) -> tuple[int, int]:
    """(all parameters, non-embedding parameters). Non-embedding excludes the token
    embedding and the readout (counted once when tied), as in Kaplan et al. 2020's N."""
    seen, total, emb = set(), 0, 0
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if name in ("embed.weight", "readout.weight"):
            emb += p.numel()
    return total, total - emb


def param_group_kind(name: str, p) -> str:
    """The ``advisor.optim_rules`` group of a ProxyLM parameter, from its name and rank."""
    if name == "embed.weight":
        return "embedding"
    if name == "readout.weight":
        return "readout"
    if name.startswith("blocks."):
        return "hidden" if p.ndim == 2 else "block_vector"
    if name == "norm.weight":
        return "final_norm"
    raise AdvisorError(f"parameter {name!r} belongs to no optimizer-rules group")


def build_optimizer(model: ProxyLM, cfg: ProxyConfig, lr: float, weight_decay: float = 0.0,
                    betas=(0.9, 0.95), eps: float = 1e-8, kind: str = "muadamw",
                    muon: dict | None = None):
    """AdamW with per-group LR, weight decay and eps from ``advisor.optim_rules``.

    ``kind="muadamw"``: muP's width rules for a muP model (what ``mup.MuAdamW`` gives: hidden
    matrices LR lr/m and weight decay wd*m, m their fan-in multiplier read off mup's
    ``infshape``, so the decay per step lr*wd is the same at every width); ``"adamw"``: no
    width multipliers (plain AdamW on any model). The depth rules (``cfg.depth_alpha``) apply
    to both. Weight decay is decoupled (torch's AdamW: weights x (1 - lr_group * wd_group)
    per step) and applied to matrices only, not to norm gains. ``lr`` is the base model's peak
    LR; each group's ``initial_lr`` is its peak LR, which the schedule multiplies.
    ``kind="muon"``: :func:`build_muon_optimizer` (``muon`` holds its settings).
    """
    if kind == "muon":
        return build_muon_optimizer(model, cfg, lr, weight_decay, betas=betas, eps=eps,
                                    **(muon or {}))
    if kind not in ("muadamw", "adamw"):
        raise AdvisorError(f"optimizer kind must be muadamw, adamw or muon, got {kind!r}")
    width_rule = "mup" if (kind == "muadamw" and cfg.parameterization == "mup") else "sp"
    groups: dict = {}
    seen = set()
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        group = param_group_kind(name, p)
        fan_in_mult = 1.0
        if width_rule == "mup" and hasattr(p, "infshape") and p.infshape.ninf() == 2:
            fan_in_mult = p.infshape.width_mult()
        rule = group_multipliers(group, fan_in_mult, cfg.depth_mult, cfg.alpha, width_rule)
        wd = weight_decay * rule.weight_decay if p.ndim >= 2 else 0.0
        key = (group, lr * rule.lr, wd, eps * rule.eps)
        if key not in groups:
            groups[key] = {"params": [], "lr": key[1], "weight_decay": key[2], "eps": key[3],
                           "group": group}
        groups[key]["params"].append(p)
    fused = {}
    if next(model.parameters()).is_cuda:
        fused = {"fused": True}
    opt = torch.optim.AdamW(list(groups.values()), lr=lr, betas=betas, eps=eps, **fused)
    for g in opt.param_groups:
        g["initial_lr"] = g["lr"]   # the schedule multiplies this
    return opt


class MuonWithAdamW:
    """torch.optim.Muon for the hidden matrices and torch.optim.AdamW for the other parameters,
    stepped together. ``param_groups`` lists both optimizers' groups (the same dicts, so the
    schedule's ``g["lr"] = g["initial_lr"] * mult`` reaches both)."""

    def __init__(self, muon, adamw):
        self.muon, self.adamw = muon, adamw

    @property
    def param_groups(self) -> list:
        return list(self.muon.param_groups) + list(self.adamw.param_groups)

    @property
    def optimizers(self) -> tuple:
        return (self.muon, self.adamw)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.optimizers:
            o.step()

    def state_dict(self) -> dict:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}


def _muon_class():
    """torch.optim.Muon, and whether it takes ``adjust_lr_fn`` (AdvisorError when absent)."""
    import inspect

    cls = getattr(torch.optim, "Muon", None)
    if cls is None:
        raise AdvisorError(f"optimizer muon needs torch.optim.Muon (torch >= 2.9); this is "
                           f"torch {torch.__version__}")
    params = inspect.signature(cls.__init__).parameters
    needed = {"lr", "weight_decay", "momentum", "nesterov", "ns_coefficients", "ns_steps", "eps"}
    missing = needed - set(params)
    if missing:
        raise AdvisorError(f"torch {torch.__version__}'s torch.optim.Muon lacks "
                           f"{', '.join(sorted(missing))}: cannot build optimizer muon")
    return cls, "adjust_lr_fn" in params


def build_muon_optimizer(model: ProxyLM, cfg: ProxyConfig, lr: float, weight_decay: float = 0.0,
                         betas=(0.9, 0.95), eps: float = 1e-8, convention: str = "spectral",
                         momentum: float = MUON_DEFAULTS["momentum"],
                         nesterov: bool = MUON_DEFAULTS["nesterov"],
                         ns_steps: int = MUON_DEFAULTS["ns_steps"],
                         ns_coefficients=MUON_DEFAULTS["ns_coefficients"],
                         muon_eps: float = MUON_DEFAULTS["eps"]) -> MuonWithAdamW:
    """Muon on the hidden matrices, AdamW (muP rules from ``advisor.optim_rules``) elsewhere.

    Each hidden matrix's group gets the LR and weight decay of
    ``advisor.optim_rules.muon_torch_group`` for its shape (fan_out x fan_in) and
    ``convention`` ("spectral" or "match_rms_adamw"): update lr * s(shape) * NS(momentum),
    decay per step lr * weight_decay. The embedding, norm gains and readout are on AdamW with
    the same per-group rules as ``kind="muadamw"`` (LR x 1 at every width; muP's readout
    multiplier is in the model). ``lr`` is the base peak LR of both parts; Muon's own
    ``eps`` (``muon_eps``) only guards its normalisation. Depth scaling is refused.
    """
    check_muon_convention(convention)
    check_muon_alpha(cfg.alpha)
    cls, has_adjust = _muon_class()
    width_rule = "mup" if cfg.parameterization == "mup" else "sp"
    muon_groups: dict = {}
    adam_groups: dict = {}
    seen = set()
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        group = param_group_kind(name, p)
        if group == "hidden":
            rule = muon_torch_group(p.shape[0], p.shape[1], convention,
                                    match_rms_builtin=has_adjust)
            key = (rule.lr_factor, rule.wd_factor, rule.adjust_lr_fn)
            if key not in muon_groups:
                g = {"params": [], "lr": lr * rule.lr_factor,
                     "weight_decay": weight_decay * rule.wd_factor, "group": group,
                     "update_scale": rule.update_scale}
                if has_adjust:
                    g["adjust_lr_fn"] = rule.adjust_lr_fn
                muon_groups[key] = g
            muon_groups[key]["params"].append(p)
            continue
        rule = group_multipliers(group, 1.0, cfg.depth_mult, cfg.alpha, width_rule)
        wd = weight_decay * rule.weight_decay if p.ndim >= 2 else 0.0
        key = (group, lr * rule.lr, wd, eps * rule.eps)
        if key not in adam_groups:
            adam_groups[key] = {"params": [], "lr": key[1], "weight_decay": key[2],
                                "eps": key[3], "group": group}
        adam_groups[key]["params"].append(p)
    kw = {"momentum": momentum, "nesterov": nesterov, "ns_steps": ns_steps,
          "ns_coefficients": tuple(ns_coefficients), "eps": muon_eps}
    muon_opt = cls(list(muon_groups.values()), lr=lr, weight_decay=weight_decay, **kw)
    adamw = torch.optim.AdamW(list(adam_groups.values()), lr=lr, betas=betas, eps=eps)
    opt = MuonWithAdamW(muon_opt, adamw)
    for g in opt.param_groups:
        g["initial_lr"] = g["lr"]
    return opt


def compute_loss(logits, targets, z_loss: float = 0.0):
    """(loss to backpropagate, cross-entropy in nats/token). z-loss as in PaLM (Chowdhery et al. 2022)."""
    logits = logits.float()
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    if z_loss > 0:
        z = torch.logsumexp(logits, dim=-1)
        return ce + z_loss * (z ** 2).mean(), ce
    return ce, ce


def flops_per_token(cfg: ProxyConfig) -> float:
    """Training FLOPs per token: 6 x (matmul params incl. readout) + attention
    (12 x depth x width x seq_len, causal halved not taken), as in the PaLM appendix B."""
    n_matmul = cfg.depth * (4 * cfg.width ** 2 + 3 * cfg.width * cfg.ffn_hidden) \
        + cfg.width * cfg.vocab_size
    return 6.0 * n_matmul + 12.0 * cfg.depth * cfg.width * cfg.seq_len
