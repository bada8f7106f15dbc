"""The user's architecture for calibration proxies: from a Hugging Face config.json or sizes.

An :class:`Architecture` holds what a proxy of the user's model must keep -- head size, query
heads per key/value head (GQA), MLP ratio, QK-norm, q/k/v biases, tied embeddings, RoPE base,
norm epsilon, vocabulary -- and what it may shrink: width and depth. :meth:`proxy_settings`
turns it into ``ProxyConfig`` settings (advisor.specs.proxyspec) that ``calibration.model.proxy`` builds
with muP applied by ``advisor.optim_rules``.

Supported families (``model_type``): llama, mistral, qwen2, qwen3 -- decoder-only, RMSNorm
pre-norm, SwiGLU MLP (``hidden_act`` silu), rotary positions, which is what our model code
builds. Anything else (another model type, a mixture of experts, an MLP or output-projection
bias, another activation) is refused with the reason, before any training. Settings a short
proxy cannot exercise (``sliding_window``, ``rope_scaling``) are kept as notes.

Units: widths and head sizes in channels, depth in blocks, vocabulary in tokens.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from advisor.errors import AdvisorError
from advisor.specs.modelspec import read_config_json

SUPPORTED_FAMILIES = ("llama", "mistral", "qwen2", "qwen3")


@dataclass(frozen=True)
class Architecture:
    """A decoder-only target the proxy model code can build at any width that
    :attr:`width_step` divides."""

    family: str                 # HF model_type, or "dims" for command-line sizes
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn_hidden: int
    vocab_size: int
    tied: bool = False
    qk_norm: bool = False
    qkv_bias: bool = False
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    source: str = ""
    notes: tuple = field(default_factory=tuple)

    def __post_init__(self):
        for k in ("d_model", "n_layers", "n_heads", "n_kv_heads", "head_dim", "ffn_hidden",
                  "vocab_size"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise AdvisorError(f"{self.source or 'model'}: {k} must be a positive integer, "
                                   f"got {v!r}")
        if self.n_heads % self.n_kv_heads:
            raise AdvisorError(f"{self.source}: {self.n_kv_heads} key/value heads do not divide "
                               f"{self.n_heads} attention heads")
        if self.head_dim % 2:
            raise AdvisorError(f"{self.source}: rotary positions need an even head_dim, got "
                               f"{self.head_dim}")
        for k in ("rope_theta", "norm_eps"):
            v = getattr(self, k)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise AdvisorError(f"{self.source}: {k} must be a positive number, got {v!r}")

    @property
    def kv_group(self) -> int:
        """Query heads per key/value head (1: multi-head attention)."""
        return self.n_heads // self.n_kv_heads

    @property
    def ffn_mult(self) -> float:
        """MLP hidden size / width, kept by the proxies."""
        return self.ffn_hidden / self.d_model

    @property
    def width_step(self) -> int:
        """Proxy widths are multiples of this: head_dim x kv_group (whole key/value heads)."""
        return self.head_dim * self.kv_group

    def proxy_settings(self) -> dict:
        """``ProxyConfig`` settings (everything but width, depth, base width and base
        constants) that make a proxy of this architecture."""
        return {"head_dim": self.head_dim, "kv_group": self.kv_group,
                "ffn_mult": round(self.ffn_mult, 6), "qk_norm": self.qk_norm,
                "qkv_bias": self.qkv_bias, "tied_embeddings": self.tied,
                "rope_theta": float(self.rope_theta), "norm_eps": float(self.norm_eps),
                "vocab_size": self.vocab_size}

    def describe(self) -> str:
        extras = [x for x, on in (("QK-norm", self.qk_norm), ("q/k/v biases", self.qkv_bias),
                                  ("tied embeddings", self.tied)) if on]
        return (f"{self.family}: width {self.d_model}, {self.n_layers} layers, {self.n_heads} "
                f"heads of {self.head_dim} ({self.n_kv_heads} key/value heads), MLP "
                f"{self.ffn_hidden} ({self.ffn_mult:.3g}x), vocabulary {self.vocab_size}, "
                f"RoPE base {self.rope_theta:g}" + (", " + ", ".join(extras) if extras else ""))

    def to_dict(self) -> dict:
        return {"family": self.family, "d_model": self.d_model, "n_layers": self.n_layers,
                "n_heads": self.n_heads, "n_kv_heads": self.n_kv_heads,
                "head_dim": self.head_dim, "ffn_hidden": self.ffn_hidden,
                "vocab_size": self.vocab_size, "tied": self.tied, "qk_norm": self.qk_norm,
                "qkv_bias": self.qkv_bias, "rope_theta": float(self.rope_theta),
                "norm_eps": float(self.norm_eps), "source": self.source,
                "notes": list(self.notes)}


def architecture_from_hf_config(path) -> Architecture:
    """The :class:`Architecture` of a llama / mistral / qwen2 / qwen3 config.json."""
    c = read_config_json(path)
    mtype = str(c.get("model_type", "")) or "(none)"
    if mtype not in SUPPORTED_FAMILIES:
        raise AdvisorError(f"{path}: model_type {mtype!r} is not a family the proxies can "
                           f"build (supported: {', '.join(SUPPORTED_FAMILIES)})")
    if any(c.get(k) for k in ("num_experts", "num_local_experts", "n_routed_experts")):
        raise AdvisorError(f"{path} describes a mixture-of-experts model; proxies are dense")
    act = str(c.get("hidden_act", "silu")).lower()
    if act not in ("silu", "swish"):
        raise AdvisorError(f"{path}: hidden_act {act!r}: the proxies build a SwiGLU (silu) MLP")
    if c.get("mlp_bias"):
        raise AdvisorError(f"{path}: mlp_bias is true; the proxies' MLP has no biases")
    # Qwen2 has q/k/v biases and no output bias (transformers' Qwen2Attention); Llama's and
    # Qwen3's attention_bias puts a bias on the output projection too, which we do not build.
    qkv_bias = mtype == "qwen2"
    if mtype != "qwen2" and c.get("attention_bias"):
        raise AdvisorError(f"{path}: attention_bias is true (biases on q, k, v and o); the "
                           "proxies build q/k/v biases only (Qwen2's layout)")
    need = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "vocab_size")
    missing = [k for k in need if c.get(k) is None]
    if missing:
        raise AdvisorError(f"{path}: missing {', '.join(missing)}")
    d, h = c["hidden_size"], c["num_attention_heads"]
    head_dim = c.get("head_dim") or (d // h if isinstance(d, int) and isinstance(h, int)
                                     and h and d % h == 0 else None)
    if head_dim is None:
        raise AdvisorError(f"{path}: num_attention_heads {h!r} does not divide hidden_size "
                           f"{d!r} and no head_dim is given")
    notes = []
    if c.get("sliding_window") and c.get("use_sliding_window", True):
        notes.append(f"sliding_window {c['sliding_window']} is longer than a proxy's "
                     "sequence: proxies use full causal attention")
    if c.get("rope_scaling"):
        notes.append("rope_scaling applies beyond the pre-training context; proxies use plain "
                     "RoPE")
    tied = c.get("tie_word_embeddings")
    return Architecture(
        family=mtype, d_model=d, n_layers=c["num_hidden_layers"], n_heads=h,
        n_kv_heads=c.get("num_key_value_heads") or h, head_dim=head_dim,
        ffn_hidden=c["intermediate_size"], vocab_size=c["vocab_size"],
        tied=bool(False if tied is None else tied), qk_norm=mtype == "qwen3",
        qkv_bias=qkv_bias, rope_theta=float(c.get("rope_theta") or 10000.0),
        norm_eps=float(c.get("rms_norm_eps") or 1e-6), source=str(path), notes=tuple(notes))


def architecture_from_spec(spec: dict, source: str = "command-line sizes") -> Architecture:
    """The :class:`Architecture` of a shape spec of :func:`advisor.modelspec.spec_from_options`
    (SwiGLU only: the proxies build no GELU MLP)."""
    if spec.get("mlp", "swiglu") != "swiglu":
        raise AdvisorError(f"{source}: a {spec['mlp']} MLP; the proxies build SwiGLU")
    d, h = spec["d_model"], spec["n_heads"]
    if d % h:
        raise AdvisorError(f"{source}: {h} heads do not divide width {d}")
    return Architecture(family="dims", d_model=d, n_layers=spec["n_layers"], n_heads=h,
                        n_kv_heads=spec.get("n_kv_heads") or h, head_dim=d // h,
                        ffn_hidden=spec["ffn_hidden"], vocab_size=spec["vocab"],
                        tied=bool(spec.get("tied")), source=source)
