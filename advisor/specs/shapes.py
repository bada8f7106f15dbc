"""Model shapes for a target parameter count, from a target-model family in recipes/families.

Parameter counting (LLaMA-style decoder, no biases, untied embeddings unless the family ties):

    per layer      4 d^2 (q, k, v, o) + 3 d f (SwiGLU gate, up, down) + 2 d (two RMSNorm gains)
    non-embedding  n_layers * (4 d^2 + 3 d f)          -- Step Law / Kaplan convention: no norms
    input embedding  V d;  output head  V d (0 when tied)
    total          non-embedding + norms + embeddings

The non-embedding count follows Step Law's definition, numl * (4 h^2 + 3 h ffnh), so that its
law is evaluated at exactly the N it was fitted on.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Mapping

from advisor.errors import AdvisorError
from advisor.common.yamlio import parse_yaml_text

_FAMILY_KEYS = {"kind", "name", "title", "vocab_size", "head_dim", "d_model_multiple",
                "aspect_ratio", "ffn_ratio", "ffn_multiple", "tied_embeddings", "max_layers",
                "heads_multiple", "layer_rule"}


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    vocab_size: int
    head_dim: int
    d_model_multiple: int
    aspect_ratio: float
    ffn_ratio: float
    ffn_multiple: int
    tied_embeddings: bool
    max_layers: int
    heads_multiple: int = 1          # head counts: fewer than this, or a multiple of it
    layer_rule: str = "any"          # any | published: even to 32, x4 to 64, x8 beyond

    def heads_ok(self, n_heads: int) -> bool:
        """Tensor-parallel-friendly head counts: a multiple of heads_multiple (LLaMA 2 70B: 64
        heads; Llama 3 405B: 128), or fewer heads than that (small models, trained without
        tensor parallelism: GPT-3 125M and Pythia-160M have 12 of 64, SmolLM2-135M 9)."""
        m = self.heads_multiple
        return n_heads % m == 0 or n_heads < m

    def layers_ok(self, n_layers: int) -> bool:
        """Depths as published families use them (LLaMA 32/40/60/80, DeepSeek 30, TinyLlama
        22, SmolLM2 30/32, Llama 3 126 ~ 128): even up to 32, multiples of 4 up to 64,
        multiples of 8 beyond (rule ``published``); every depth for rule ``any``."""
        if self.layer_rule == "any":
            return True
        if n_layers <= 2:
            return True
        if n_layers <= 32:
            return n_layers % 2 == 0
        return n_layers % (4 if n_layers <= 64 else 8) == 0

    def ffn_hidden(self, d_model: int) -> int:
        raw = self.ffn_ratio * d_model
        return int(self.ffn_multiple * math.ceil(raw / self.ffn_multiple - 1e-9))

    def shape(self, d_model: int, n_layers: int) -> "Shape":
        f = self.ffn_hidden(d_model)
        non_emb = n_layers * (4 * d_model ** 2 + 3 * d_model * f)
        norms = n_layers * 2 * d_model + d_model
        emb_in = self.vocab_size * d_model
        emb_out = 0 if self.tied_embeddings else self.vocab_size * d_model
        return Shape(family=self.name, d_model=d_model, n_layers=n_layers,
                     n_heads=d_model // self.head_dim, n_kv_heads=d_model // self.head_dim,
                     head_dim=self.head_dim, ffn_hidden=f,
                     vocab_size=self.vocab_size, tied_embeddings=self.tied_embeddings,
                     params_total=non_emb + norms + emb_in + emb_out,
                     params_non_embedding=non_emb,
                     params_no_input_embedding=non_emb + norms + (emb_out or emb_in))


@dataclass(frozen=True)
class Shape:
    """A concrete model shape and its parameter counts (all counts are numbers of scalars)."""

    family: str
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int                  # key/value heads (GQA); n_heads without GQA
    head_dim: int
    ffn_hidden: int
    vocab_size: int
    tied_embeddings: bool
    params_total: int
    params_non_embedding: int        # n_layers * (4 d^2 + 3 d f): Step Law's N
    params_no_input_embedding: int   # total minus the input embedding (Porian et al.'s N)

    def params(self, convention: str) -> int:
        """Parameter count in a law set's ``conventions.params`` convention."""
        return {"total": self.params_total, "non_embedding": self.params_non_embedding,
                "no_input_embedding": self.params_no_input_embedding}[convention]

    def flops_per_token(self, seq_len: int) -> float:
        """DeepSeek's M: non-embedding FLOPs per token, 72 L d^2 + 12 L d seq.

        (DeepSeek LLM, Sec. 3.1; it counts 6 FLOPs per parameter-token for a standard
        4d-FFN block plus attention's 6 * 2 * L * d * seq.)
        """
        return 72.0 * self.n_layers * self.d_model ** 2 + 12.0 * self.n_layers * self.d_model * seq_len

    def to_dict(self) -> dict:
        return asdict(self)


def family_names() -> list[str]:
    """Names of the families shipped in recipes/families (target and proxy kinds)."""
    base = resources.files("recipes") / "families"
    return sorted(p.name[:-5] for p in base.iterdir() if p.name.endswith(".yaml"))


def read_family_file(name_or_path):
    """The one reader of recipes/families: a shipped family's name (or a path to a YAML
    file) -> its mapping, parsed safely. Target families (``kind: target``) are turned into a
    :class:`Family` by :func:`load_family`; proxy families (the models ``advisor calibrate``
    trains) by ``advisor.specs.proxyspec.ProxyConfig.from_family``."""
    from pathlib import Path

    from advisor.common.yamlio import read_yaml_file

    p = Path(str(name_or_path))
    if p.suffix:
        d = read_yaml_file(p, "family file")
    else:
        names = family_names()
        if str(name_or_path) not in names:
            raise AdvisorError(f"unknown model family {name_or_path!r}; available: "
                               f"{', '.join(names)}")
        base = resources.files("recipes") / "families"
        d = parse_yaml_text((base / f"{name_or_path}.yaml").read_text(encoding="utf-8"),
                            f"family {name_or_path}")
    if not isinstance(d, Mapping):
        raise AdvisorError(f"family file {name_or_path} must be a mapping")
    return d


def load_family(name: str) -> Family:
    """A target-model family from recipes/families/<name>.yaml."""
    d = read_family_file(name)
    if d.get("kind") != "target":
        raise AdvisorError(f"family {name!r} is not a target-model family (kind: target)")
    unknown = set(d) - _FAMILY_KEYS
    if unknown:
        raise AdvisorError(f"family {name!r}: unknown key(s) {', '.join(sorted(unknown))}")
    try:
        return Family(name=d["name"], title=d.get("title", d["name"]),
                      vocab_size=int(d["vocab_size"]), head_dim=int(d["head_dim"]),
                      d_model_multiple=int(d["d_model_multiple"]),
                      aspect_ratio=float(d["aspect_ratio"]), ffn_ratio=float(d["ffn_ratio"]),
                      ffn_multiple=int(d["ffn_multiple"]),
                      tied_embeddings=bool(d["tied_embeddings"]),
                      max_layers=int(d.get("max_layers", 256)),
                      heads_multiple=int(d.get("heads_multiple", 1)),
                      layer_rule=str(d.get("layer_rule", "any")))
    except KeyError as exc:
        raise AdvisorError(f"family {name!r} lacks key {exc.args[0]!r}") from None


def shape_for_params(family: Family, params_total: float) -> Shape:
    """The shape of ``family`` whose total parameter count best matches ``params_total``.

    Among all (d_model, n_layers) with d_model a multiple of ``d_model_multiple``, a head
    count and a depth the family allows (:meth:`Family.heads_ok`, :meth:`Family.layers_ok`),
    minimise 10 * |ln(total / target)| + |ln(aspect / preferred aspect)|: as close to the
    target as those shapes allow (the recommendation states the difference), and as close to
    the family's aspect ratio as that permits.
    """
    smallest = family.shape(family.d_model_multiple, 1)
    if params_total < smallest.params_total * 0.5:
        raise AdvisorError(f"{params_total:.3g} parameters is smaller than the smallest "
                           f"{family.name} model ({smallest.params_total:.3g}: one layer of "
                           f"width {family.d_model_multiple} plus embeddings)")
    best, best_cost = None, math.inf
    m = family.d_model_multiple
    for n_layers in range(1, family.max_layers + 1):
        if not family.layers_ok(n_layers):
            continue
        # d_model that would hit the target at this depth, by bisection-free search nearby
        lo_k, hi_k = 1, 1
        while family.shape(hi_k * m, n_layers).params_total < params_total and hi_k < 4096:
            lo_k, hi_k = hi_k, hi_k * 2
        for k in _candidates(family, n_layers, lo_k, hi_k, params_total):
            s = family.shape(k * m, n_layers)
            if not family.heads_ok(s.n_heads):
                continue
            cost = (10 * abs(math.log(s.params_total / params_total))
                    + abs(math.log((s.d_model / n_layers) / family.aspect_ratio)))
            if cost < best_cost:
                best, best_cost = s, cost
    return best


def _candidates(family, n_layers, lo_k, hi_k, target):
    """The multiples k bracketing the target at this depth (binary search), and the nearest
    ones on each side whose head count the family allows."""
    m = family.d_model_multiple
    while hi_k - lo_k > 1:
        mid = (lo_k + hi_k) // 2
        if family.shape(mid * m, n_layers).params_total < target:
            lo_k = mid
        else:
            hi_k = mid
    out = {lo_k, hi_k}
    for start, step in ((lo_k, -1), (hi_k, 1)):
        k = start
        while 1 <= k <= 8192 and not family.heads_ok(k * m // family.head_dim):
            k += step
        if 1 <= k <= 8192:
            out.add(k)
    return out
