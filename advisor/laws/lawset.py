"""Law sets: load, validate and evaluate the hyperparameter laws in recipes/laws/*.yaml.

A law set is data (schema: recipes/laws/SCHEMA.md). :func:`load_lawset` accepts the name of a
shipped set (``step-law``) or a path to a YAML file (``advisor fit`` writes those). Files are
read with the safe loader of ``advisor.common.yamlio`` and checked key by key; a malformed or hostile file raises
:class:`~advisor.errors.AdvisorError` with one line saying what is wrong.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Mapping

import yaml

from advisor.common.numbers import positive_number
from advisor.errors import AdvisorError
from advisor.laws.lawforms import evaluate_law, log_interval, validate_law, variables_needed
from advisor.specs.conventions import Conventions, of_lawset
from advisor.common.outputs import atomic_write_text
from advisor.common.yamlio import parse_yaml_text, plain, read_yaml_file

SCHEMA_ID = "hp-advisor/lawset/v1"
QUANTITIES = ("learning_rate", "batch_size", "weight_decay", "loss", "critical_batch_size")
CONVENTIONS = {
    "params": ("non_embedding", "total", "no_input_embedding"),
    "compute": ("6ND", "MD"),
    "batch_unit": ("tokens", "sequences"),
    "weight_decay": ("coupled", "independent"),
    "learning_rate": ("peak", "mup_base"),
}
_TOP_KEYS = {"schema", "name", "title", "source", "conventions", "laws", "mup", "provenance",
             "notes"}
@dataclass(frozen=True)
class LawSet:
    """A validated law set. ``laws`` maps quantity -> law mapping (see lawforms)."""

    name: str
    title: str
    source: Mapping
    conventions: Mapping
    laws: Mapping
    mup: Mapping | None = None
    provenance: Mapping | None = None
    notes: str | None = None
    path: str | None = field(default=None, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping, path: str | None = None) -> "LawSet":
        from advisor.laws.plausible import check_lawset

        validate_lawset_dict(d)
        ls = cls(name=d["name"], title=d.get("title", d["name"]), source=d["source"],
                 conventions=d["conventions"], laws=d["laws"], mup=d.get("mup"),
                 provenance=d.get("provenance"), notes=d.get("notes"), path=path)
        check_lawset(ls)
        return ls

    def to_dict(self) -> dict:
        d = {"schema": SCHEMA_ID, "name": self.name, "title": self.title,
             "source": dict(self.source), "conventions": dict(self.conventions),
             "laws": {k: dict(v) for k, v in self.laws.items()}}
        for key in ("mup", "provenance", "notes"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return d

    def has(self, quantity: str) -> bool:
        return quantity in self.laws

    @property
    def wd_rule(self) -> str | None:
        """The hidden matrices' weight-decay width rule the laws were fitted under
        (``mup.wd_rule``, a key of ``advisor.rules.optim_rules.WD_WIDTH_RULES``), or None where the
        set does not state one (every shipped set)."""
        return (self.mup or {}).get("wd_rule")

    @property
    def proxy_conventions(self) -> Conventions:
        """What the set's LR and weight decay mean (``advisor.specs.conventions``), from its
        ``conventions`` and ``mup`` sections."""
        return of_lawset(self.conventions, self.mup)

    @property
    def batch_unit(self) -> str:
        return self.conventions.get("batch_unit", "tokens")

    def batch_tokens(self, batch: float) -> float:
        """A batch in this set's ``batch_unit`` as tokens (sequences x ``conventions.seq_len``)."""
        if self.batch_unit != "sequences":
            return batch
        seq = self.conventions.get("seq_len")
        if not seq:
            raise AdvisorError(f"law set {self.name!r}: batch in sequences needs "
                               "conventions.seq_len")
        return batch * float(seq)

    def variables(self, N: float, D: float, M: float | None = None, **extra) -> dict:
        """The variables a law may read, for N (in this set's params convention), D tokens.

        ``M`` is non-embedding FLOPs per token (DeepSeek's convention); needed only when
        ``conventions.compute`` is MD.
        """
        N, D = positive_number(N, "N"), positive_number(D, "D")
        v = {"N": N, "D": D, "TPP": D / N}
        if self.conventions.get("compute", "6ND") == "MD":
            v["C"] = None if M is None else float(M) * float(D)
        else:
            v["C"] = 6.0 * float(N) * float(D)
        v.update({k: val for k, val in extra.items() if val is not None})
        return v

    def predict(self, quantity: str, N: float, D: float, **extra) -> float:
        """Value of ``quantity`` at N (this set's params convention) and D tokens.

        Batch sizes come in ``conventions.batch_unit``. For a law that reads the loss L, the
        set's own loss law supplies it unless ``L=`` is given; for weight decay by AdamW
        timescale, ``lr=`` and ``B_tokens=`` default to this set's own predictions.
        """
        law = self._law(quantity)
        v = self._resolve(law, N, D, extra)
        return evaluate_law(law, v)

    def interval(self, quantity: str, N: float, D: float, **extra):
        """95% interval from the law's stated uncertainty, or None where it states none."""
        law = self._law(quantity)
        return log_interval(law, self._resolve(law, N, D, extra))

    def out_of_range(self, quantity: str, N: float, D: float, **extra) -> list[str]:
        """Human-readable notes on where the target lies outside the law's fitted range."""
        law = self._law(quantity)
        rng = law.get("fitted_range") or {}
        v = self._resolve(law, N, D, extra)
        notes = []
        for var, (lo, hi) in rng.items():
            x = v.get(var)
            if x is None:
                continue
            if x > hi:
                notes.append(f"{var} = {x:.3g} is {x / hi:.3g}x above the fitted range "
                             f"[{lo:.3g}, {hi:.3g}]")
            elif x < lo:
                notes.append(f"{var} = {x:.3g} is {lo / x:.3g}x below the fitted range "
                             f"[{lo:.3g}, {hi:.3g}]")
        return notes

    def _law(self, quantity: str) -> Mapping:
        if quantity not in self.laws:
            raise AdvisorError(f"law set {self.name!r} has no {quantity} law")
        return self.laws[quantity]

    def _resolve(self, law: Mapping, N, D, extra) -> dict:
        v = self.variables(N, D, **{k: extra.get(k) for k in ("M",)},
                           **{k: val for k, val in extra.items() if k != "M"})
        needed = variables_needed(law)
        if "L" in needed and v.get("L") is None:
            if "loss" not in self.laws:
                raise AdvisorError(f"law set {self.name!r}: a law reads the loss L, but the "
                                   "set has no loss law and no L was given")
            v["L"] = evaluate_law(self.laws["loss"], v)
        if "lr" in needed and v.get("lr") is None:
            v["lr"] = self.predict("learning_rate", N, D, **extra)
        if "B_tokens" in needed and v.get("B_tokens") is None:
            v["B_tokens"] = self.batch_tokens(self.predict("batch_size", N, D, **extra))
        if "C" in needed and v.get("C") is None:
            raise AdvisorError(f"law set {self.name!r} measures compute as M*D: "
                               "M (FLOPs per token) is needed")
        return v


def validate_lawset_dict(d) -> None:
    """Raise AdvisorError unless ``d`` is a valid law set (schema hp-advisor/lawset/v1)."""
    if not isinstance(d, Mapping):
        raise AdvisorError("a law set must be a YAML mapping at the top level")
    if d.get("schema") != SCHEMA_ID:
        raise AdvisorError(f"law set schema must be {SCHEMA_ID!r}, got {d.get('schema')!r}")
    unknown = set(d) - _TOP_KEYS
    if unknown:
        raise AdvisorError(f"law set: unknown top-level key(s) "
                           f"{', '.join(sorted(map(str, unknown)))}")
    name = d.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
        raise AdvisorError(f"law set name must match [a-z0-9][a-z0-9._-]*, got {name!r}")
    for key in ("source", "conventions", "laws"):
        if not isinstance(d.get(key), Mapping):
            raise AdvisorError(f"law set {name!r}: {key!r} must be a mapping")
    for key, allowed in CONVENTIONS.items():
        val = d["conventions"].get(key)
        if val is not None and val not in allowed:
            raise AdvisorError(f"law set {name!r}: conventions.{key} must be one of "
                               f"{', '.join(allowed)}, got {val!r}")
    if "params" not in d["conventions"]:
        raise AdvisorError(f"law set {name!r}: conventions.params (what N counts) is required")
    seq = d["conventions"].get("seq_len")
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or seq <= 0):
        raise AdvisorError(f"law set {name!r}: conventions.seq_len must be a positive integer")
    if not d["laws"]:
        raise AdvisorError(f"law set {name!r} has no laws")
    for quantity, law in d["laws"].items():
        if quantity not in QUANTITIES:
            raise AdvisorError(f"law set {name!r}: unknown quantity {quantity!r} "
                               f"(known: {', '.join(QUANTITIES)})")
        validate_law(quantity, law)
    for key in ("mup", "provenance"):
        if d.get(key) is not None and not isinstance(d[key], Mapping):
            raise AdvisorError(f"law set {name!r}: {key!r} must be a mapping")
    try:
        of_lawset(d["conventions"], d.get("mup"))      # what its LR and weight decay mean
    except AdvisorError as exc:
        raise AdvisorError(f"law set {name!r}: {exc}") from None


def shipped_dir():
    """The folder of law sets shipped with the package (works from a wheel too)."""
    return resources.files("recipes") / "laws"


def shipped_names() -> list[str]:
    return sorted(p.name[:-5] for p in shipped_dir().iterdir() if p.name.endswith(".yaml"))


def is_path_like(s: str) -> bool:
    """True when ``s`` names a file: it has a folder separator or a .yaml/.yml suffix."""
    seps = [os.sep] + ([os.altsep] if os.altsep else [])
    return s.lower().endswith((".yaml", ".yml")) or any(c in s for c in seps)


def load_lawset(name_or_path) -> LawSet:
    """A shipped law set by name (``step-law``) or a law-set YAML file by path.

    A path is a path only if it has a folder separator or a .yaml/.yml suffix; anything else
    is a shipped name, whatever the working directory holds (a folder named ``porian`` in the
    current directory does not hide the shipped ``porian``).
    """
    s = str(name_or_path)
    if is_path_like(s):
        return load_lawset_file(s)
    names = shipped_names()
    if s not in names:
        hint = (f"; to read the file {s}, write ./{s}" if os.path.isfile(s) else
                " (or give a path to a .yaml file)")
        raise AdvisorError(f"unknown law set {s!r}; shipped sets: {', '.join(names)}{hint}")
    text = (shipped_dir() / f"{s}.yaml").read_text(encoding="utf-8")
    return LawSet.from_dict(parse_yaml_text(text, f"shipped law set {s}"), path=f"{s}.yaml")


def load_lawset_file(path) -> LawSet:
    """A law-set YAML file by path (never a shipped name): for options that take a file."""
    return LawSet.from_dict(read_yaml_file(path, "law set"), path=str(path))


def load_shipped() -> list[LawSet]:
    return [load_lawset(n) for n in shipped_names()]


def lawset_text(d: Mapping) -> str:
    """``d`` validated (its form and :mod:`advisor.laws.plausible`) and as the YAML text a
    law-set file holds."""
    LawSet.from_dict(d)
    return yaml.safe_dump(plain(d), sort_keys=False, default_flow_style=None, width=100)


def dump_lawset(d: Mapping, path) -> None:
    """Validate ``d`` (its form and :mod:`advisor.laws.plausible`) and write it as YAML to
    ``path`` atomically (temp file + rename)."""
    atomic_write_text(path, lawset_text(d))

