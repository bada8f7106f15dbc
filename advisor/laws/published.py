"""Published pre-training configurations and tuned optima (recipes/published/configs.yaml).

What practice used, beside what the laws say: :func:`load_published` reads and checks the data
file; :func:`nearest` picks the entries closest to a target in (parameters, tokens). Parameter
counts are computed from each entry's shape (units: numbers of scalars):

    non-embedding  n_layers * (2 d q_dim + 2 d kv_dim + m d f)   m = 3 (SwiGLU) or 2 (GELU MLP)
    total          non-embedding + V d (+ V d again when the output head is untied)

where q_dim = n_heads * head_dim and kv_dim = n_kv_heads * head_dim (GQA); head_dim is
d / n_heads unless given (GPT-3 1.3B: 24 heads of 128 at d 2048). Norms and biases are left out
(under 0.1%) unless the spec states them (``norm_params``, ``bias_params``, ``position_params``:
``advisor.specs.modelspec`` counts them for a real architecture); they enter the total and the
count without the input embedding (positions only the total), never the non-embedding count.
Pure functions except :func:`load_published`, which reads the shipped file once per process.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Mapping

from advisor.errors import AdvisorError
from advisor.specs.shapes import Shape

SCHEMA_ID = "hp-advisor/published/v1"
KINDS = ("published", "tuned_optimum")
_ENTRY_KEYS = {"id", "model", "kind", "shape", "tokens", "seq_len", "peak_lr", "batch_tokens",
               "weight_decay", "warmup_steps", "schedule", "betas", "eps", "source", "checked",
               "loss_vs_lr"}
_SHAPE_KEYS = {"d_model", "n_layers", "n_heads", "n_kv_heads", "ffn_hidden", "mlp", "vocab",
               "tied", "head_dim", "norm_params", "bias_params", "position_params"}


@dataclass(frozen=True)
class PublishedConfig:
    """One published run or tuned optimum; numbers in the units of configs.yaml."""

    id: str
    model: str
    kind: str
    shape: Shape
    tokens: float
    seq_len: int
    peak_lr: float
    batch_tokens: float | None
    weight_decay: float | None
    warmup_steps: int | None
    schedule: str
    betas: tuple | None
    eps: float | None
    source: Mapping
    checked: str
    loss_vs_lr: Mapping | None = None

    def to_dict(self) -> dict:
        return {"id": self.id, "model": self.model, "kind": self.kind,
                "params_total": self.shape.params_total,
                "params_non_embedding": self.shape.params_non_embedding,
                "tokens": self.tokens, "seq_len": self.seq_len, "peak_lr": self.peak_lr,
                "batch_tokens": self.batch_tokens, "weight_decay": self.weight_decay,
                "warmup_steps": self.warmup_steps, "schedule": self.schedule,
                "betas": list(self.betas) if self.betas else None, "eps": self.eps,
                "source": dict(self.source), "checked": self.checked}


def shape_from_spec(spec: Mapping, name: str = "model") -> Shape:
    """A :class:`Shape` with exact parameter counts from d_model, layers, heads, ffn, vocab."""
    unknown = set(spec) - _SHAPE_KEYS
    if unknown:
        raise AdvisorError(f"{name}: unknown shape key(s) {', '.join(sorted(unknown))}")
    try:
        d, L, h = int(spec["d_model"]), int(spec["n_layers"]), int(spec["n_heads"])
        kv = int(spec.get("n_kv_heads", h))
        f, V = int(spec["ffn_hidden"]), int(spec["vocab"])
    except (KeyError, TypeError, ValueError) as exc:
        raise AdvisorError(f"{name}: shape needs integer d_model, n_layers, n_heads, "
                           f"ffn_hidden, vocab ({exc})") from None
    head_dim = int(spec.get("head_dim") or (d // h if h else 0))
    if min(d, L, h, kv, f, V, head_dim) <= 0 or h % kv or ("head_dim" not in spec and d % h):
        raise AdvisorError(f"{name}: shape must have positive sizes, d_model divisible by "
                           "n_heads (or an explicit head_dim) and n_heads by n_kv_heads")
    mlp = spec.get("mlp", "swiglu")
    if mlp not in ("swiglu", "gelu"):
        raise AdvisorError(f"{name}: mlp must be swiglu or gelu, got {mlp!r}")
    tied = bool(spec.get("tied", False))
    non_emb = L * (2 * d * h * head_dim + 2 * d * kv * head_dim
                   + (3 if mlp == "swiglu" else 2) * d * f)
    try:
        extra = {k: int(spec.get(k, 0)) for k in ("norm_params", "bias_params",
                                                   "position_params")}
    except (TypeError, ValueError):
        raise AdvisorError(f"{name}: norm_params, bias_params and position_params must be "
                           "whole numbers") from None
    if min(extra.values()) < 0:
        raise AdvisorError(f"{name}: norm_params, bias_params and position_params must not be "
                           "negative")
    vectors = extra["norm_params"] + extra["bias_params"]
    total = non_emb + vectors + extra["position_params"] + V * d * (1 if tied else 2)
    return Shape(family=name, d_model=d, n_layers=L, n_heads=h, n_kv_heads=kv,
                 head_dim=head_dim, ffn_hidden=f, vocab_size=V, tied_embeddings=tied,
                 params_total=total, params_non_embedding=non_emb,
                 params_no_input_embedding=non_emb + vectors + V * d)


def _num(entry, key, name, optional=False):
    x = entry.get(key)
    if x is None and optional:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0:
        raise AdvisorError(f"published config {name}: {key} must be a positive number, "
                           f"got {x!r}")
    return float(x)


def parse_published(data) -> list[PublishedConfig]:
    """Validate the parsed YAML of configs.yaml and return its entries."""
    if not isinstance(data, Mapping) or data.get("schema") != SCHEMA_ID:
        raise AdvisorError(f"published configs: schema must be {SCHEMA_ID!r}")
    out, seen = [], set()
    for e in data.get("entries") or []:
        name = e.get("id") if isinstance(e, Mapping) else None
        if not isinstance(name, str) or name in seen:
            raise AdvisorError(f"published configs: entry id missing or repeated: {name!r}")
        seen.add(name)
        unknown = set(e) - _ENTRY_KEYS
        if unknown:
            raise AdvisorError(f"published config {name}: unknown key(s) "
                               f"{', '.join(sorted(unknown))}")
        if e.get("kind") not in KINDS or e.get("checked") not in ("config", "memory"):
            raise AdvisorError(f"published config {name}: kind must be one of {KINDS} and "
                               "checked one of config, memory")
        src = e.get("source")
        if not isinstance(src, Mapping) or not src.get("citation") or not src.get("place"):
            raise AdvisorError(f"published config {name}: source needs citation and place")
        warm = e.get("warmup_steps")
        out.append(PublishedConfig(
            id=name, model=str(e.get("model", name)), kind=e["kind"],
            shape=shape_from_spec(e.get("shape") or {}, name), tokens=_num(e, "tokens", name),
            seq_len=int(_num(e, "seq_len", name)), peak_lr=_num(e, "peak_lr", name),
            batch_tokens=_num(e, "batch_tokens", name, optional=True),
            weight_decay=_num(e, "weight_decay", name, optional=True),
            warmup_steps=None if warm is None else int(warm),
            schedule=str(e.get("schedule", "")),
            betas=tuple(e["betas"]) if e.get("betas") else None,
            eps=_num(e, "eps", name, optional=True), source=dict(src), checked=e["checked"],
            loss_vs_lr=e.get("loss_vs_lr")))
    if not out:
        raise AdvisorError("published configs: no entries")
    return out


@lru_cache(maxsize=1)
def load_published() -> tuple:
    """The shipped entries of recipes/published/configs.yaml (parsed once per process)."""
    from advisor.common.yamlio import parse_yaml_text
    text = (resources.files("recipes") / "published" / "configs.yaml").read_text(
        encoding="utf-8")
    return tuple(parse_published(parse_yaml_text(text, "recipes/published/configs.yaml")))


def distance(params_total: float, tokens: float, entry: PublishedConfig) -> float:
    """Distance in log space: sqrt(ln(N/N_e)^2 + (0.5 ln(D/D_e))^2), N total parameters.

    Tokens weigh half as much as parameters: the LR and batch laws shift less per octave of
    D than per octave of N (Step Law: N^-0.713 vs D^0.307).
    """
    dn = math.log(params_total / entry.shape.params_total)
    dd = math.log(tokens / entry.tokens)
    return math.hypot(dn, 0.5 * dd)


def nearest(params_total: float, tokens: float, k: int = 3, kind: str | None = None,
            entries=None) -> list[PublishedConfig]:
    """The ``k`` entries nearest to (params_total, tokens), optionally of one ``kind``."""
    pool = [e for e in (entries if entries is not None else load_published())
            if kind is None or e.kind == kind]
    return sorted(pool, key=lambda e: distance(params_total, tokens, e))[:k]
