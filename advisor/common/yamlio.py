"""Reading and writing the project's YAML files (law sets, families, plans, schedule laws),
and the one conversion of outputs to plain data (:func:`plain`, :func:`json_text`).

Writing goes through :func:`advisor.common.outputs.atomic_write_text`.

One loader for all of them: ``yaml.SafeLoader`` (no object construction, so hostile tags are
refused) that also reads ``1e-3`` and ``7.0e7`` as floats. PyYAML follows YAML 1.1, where a
float needs a dot and a signed exponent, so ``lr: 1e-3`` would otherwise be the *string*
"1e-3": the commonest way to break a plan or a law file. Errors are one-line AdvisorErrors.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import yaml

from advisor.errors import AdvisorError

MAX_FILE_BYTES = 1 << 20


# libyaml's parser where PyYAML was built with it (7x faster on the shipped files; the
# constructor is the same SafeConstructor, so it builds no objects either).
_SAFE_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SafeLoader(_SAFE_BASE):
    """yaml.SafeLoader (libyaml-backed when available) that also reads exponent-only floats."""


SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def parse_yaml_text(text: str, where: str):
    """Parse YAML text safely; ``where`` names the source in the one-line error."""
    try:
        return yaml.load(text, Loader=SafeLoader)  # safe: SafeLoader constructs no objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise AdvisorError(f"{where} is not valid YAML{loc}: {problem}") from None


def read_yaml_file(path, what: str = "file"):
    """Parse a YAML file, with one-line errors for missing, huge or malformed files."""
    p = Path(path)
    if not p.is_file():
        raise AdvisorError(f"{what} not found: {path}")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise AdvisorError(f"{what} {path} is larger than 1 MiB; refusing to read it")
    data = parse_yaml_text(p.read_text(encoding="utf-8", errors="replace"), f"{what} {path}")
    if data is None:  # an empty file, or only comments
        raise AdvisorError(f"{what} {path} is empty")
    return data


def read_shipped_yaml(relpath: str, schema: str) -> dict:
    """A mapping shipped in the ``recipes`` package (``relpath`` such as
    ``published/trust.yaml``), refused (AdvisorError) unless its ``schema`` is ``schema``."""
    from importlib import resources
    node = resources.files("recipes")
    for part in relpath.split("/"):
        node = node / part
    where = f"recipes/{relpath}"
    d = parse_yaml_text(node.read_text(encoding="utf-8"), where)
    if not isinstance(d, dict) or d.get("schema") != schema:
        raise AdvisorError(f"{where}: schema must be {schema!r}")
    return d


def plain(x):
    """``x`` as plain YAML- and JSON-safe Python: objects with ``to_dict()`` (the typed
    blocks) as their dicts, other dataclass instances as {field: value} in field order,
    mappings (keys as strings), lists (from tuples and arrays), numpy scalars as int and
    float, and inf, -inf and NaN as None (null): no non-finite number reaches an output.
    What every YAML and JSON writer here dumps."""
    from collections.abc import Mapping
    from dataclasses import fields, is_dataclass

    if hasattr(x, "to_dict") and callable(x.to_dict):
        return plain(x.to_dict())
    if is_dataclass(x) and not isinstance(x, type):
        return {f.name: plain(getattr(x, f.name)) for f in fields(x)}
    if isinstance(x, Mapping):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if hasattr(x, "tolist"):             # numpy arrays and scalars
        return plain(x.tolist())
    if isinstance(x, float):
        return float(x) if math.isfinite(x) else None
    return x


def json_text(x, indent: int = 2) -> str:
    """``x`` as JSON through :func:`plain` (non-finite numbers are null); ``allow_nan=False``
    makes a number that escaped :func:`plain` an error rather than a non-standard file."""
    return json.dumps(plain(x), indent=indent, allow_nan=False)
