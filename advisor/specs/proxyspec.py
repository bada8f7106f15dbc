"""The proxy model's configuration as pure data (no torch): ``ProxyConfig`` and its families.

Everything that determines a proxy model's shape, parameterisation and initialisation, read
from a proxy family in recipes/families (through :func:`advisor.specs.shapes.read_family_file`, the
one reader of that folder) with per-run overrides. ``calibration.model.proxy`` builds the torch
module from it; plans, the results store and the CLI read it without torch. The width and
depth multipliers come from ``advisor.rules.optim_rules``.

Units: widths and head sizes in channels; ``seq_len`` in tokens; FLOPs per token.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from advisor.errors import AdvisorError
from advisor.rules.optim_rules import check_alpha, residual_multiplier

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
    kv_group: int = 1                # query heads per key/value head (GQA; 1 = multi-head)
    qkv_bias: bool = False           # biases on the q, k, v projections (Qwen2)
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
        if not isinstance(self.kv_group, int) or isinstance(self.kv_group, bool) \
                or self.kv_group < 1 or self.heads % self.kv_group \
                or self.base_heads % self.kv_group:
            raise AdvisorError(f"kv_group {self.kv_group!r} (query heads per key/value head) "
                               f"must divide the {self.heads} heads at width {self.width} "
                               f"and the {self.base_heads} at base width {self.base_width}")
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
    def base_heads(self) -> int:
        """Attention heads at the base width."""
        return self.n_heads or self.base_width // self.head_dim

    @property
    def kv_heads(self) -> int:
        """Key/value heads: heads / kv_group (GQA)."""
        return self.heads // self.kv_group

    @property
    def kv_width(self) -> int:
        """Output channels of the k and v projections: kv_heads x d_head."""
        return self.kv_heads * self.d_head

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
    """Read a proxy-model family (a name in recipes/families/ or a path to a YAML file)."""
    from advisor.specs.shapes import read_family_file

    spec = read_family_file(name_or_path)
    unknown = set(spec) - {"name", "description", "architecture", "base", "provenance"}
    if unknown:
        raise AdvisorError(f"family file {name_or_path}: unknown key(s) "
                           f"{', '.join(sorted(unknown))}")
    return spec


def flops_per_token(cfg: ProxyConfig) -> float:
    """Training FLOPs per token: 6 x (matmul params incl. readout) + attention
    (12 x depth x width x seq_len, causal halved not taken), as in the PaLM appendix B."""
    n_matmul = cfg.depth * (2 * cfg.width ** 2 + 2 * cfg.width * cfg.kv_width
                            + 3 * cfg.width * cfg.ffn_hidden) \
        + cfg.width * cfg.vocab_size
    return 6.0 * n_matmul + 12.0 * cfg.depth * cfg.width * cfg.seq_len
