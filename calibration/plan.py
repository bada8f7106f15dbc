"""Sweep plans: YAML files (recipes/plans/*.yaml) expanded into run specs.

A plan::

    name: ci
    description: what it is for
    settings:            # one value each, shared by every run
      family: proxy-llama
      data: stdlib
      seq_len: 64
      head_dim: 16       # a model-family setting (ProxyConfig field) is allowed too
    grid:                # every combination of these lists (a scalar is a 1-point axis)
      parameterization: [mup, sp]
      width: [32, 64]
      lr: {pow2: [-9, -5]}     # 2^-9, 2^-8, ..., 2^-5 (factors of 2)
      seed: [0]

``grid`` may also be a list of such mappings: the plan is then the union of their products
(e.g. an SP arm with its own init). Keys are RunSpec fields (calibration.train) or
ProxyConfig fields (calibration.model; they go into the run's ``model`` overrides). Every
run is validated here, before any compute: an unknown key, a bad value, an empty axis or a
width the family cannot build is one AdvisorError naming the plan.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from advisor.errors import AdvisorError

PLANS_DIR = Path(__file__).resolve().parents[1] / "recipes" / "plans"
_TOP_KEYS = {"name", "description", "settings", "grid"}
# ProxyConfig fields a plan may not set (they come from the RunSpec or the data).
_RESERVED_MODEL = {"width", "depth", "seq_len", "parameterization", "vocab_size", "family"}


@dataclass(frozen=True)
class Plan:
    name: str
    description: str
    path: str
    specs: tuple          # RunSpec, de-duplicated, in grid order

    @property
    def data_specs(self) -> list[str]:
        return sorted({s.data for s in self.specs})


def _axis_values(plan_name: str, key: str, value) -> list:
    if isinstance(value, dict):
        if set(value) != {"pow2"}:
            raise AdvisorError(f"plan {plan_name}: axis {key!r} must be a list, a scalar or "
                               f"{{pow2: [lo, hi]}}, got keys {sorted(value)}")
        lohi = value["pow2"]
        if (not isinstance(lohi, list) or len(lohi) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in lohi)
                or lohi[0] > lohi[1]):
            raise AdvisorError(f"plan {plan_name}: {key}: pow2 needs two integers lo <= hi, "
                               f"got {lohi!r}")
        return [2.0 ** k for k in range(lohi[0], lohi[1] + 1)]
    if isinstance(value, list):
        if not value:
            raise AdvisorError(f"plan {plan_name}: grid axis {key!r} is empty")
        return value
    return [value]


def _split_keys(plan_name: str, d: dict, where: str) -> None:
    from calibration.model import ProxyConfig
    from calibration.train import RunSpec

    allowed = (RunSpec.field_names() - {"model"}) | (ProxyConfig.field_names() - _RESERVED_MODEL)
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise AdvisorError(f"plan {plan_name}: unknown key(s) in {where}: {', '.join(unknown)}")


def load_plan(name_or_path) -> Plan:
    """Read, expand and validate a plan (a name in recipes/plans/ or a path)."""
    from advisor.yamlio import read_yaml_file

    p = Path(name_or_path)
    if not p.suffix and not p.exists():
        p = PLANS_DIR / f"{name_or_path}.yaml"
    if not p.is_file():
        known = sorted(f.stem for f in PLANS_DIR.glob("*.yaml"))
        raise AdvisorError(f"no plan {name_or_path!r} (a YAML path, or one of: {', '.join(known)})")
    raw = read_yaml_file(p, "plan")
    if not isinstance(raw, dict):
        raise AdvisorError(f"plan {p} must be a YAML mapping")
    label = str(raw.get("name") or p.stem)
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise AdvisorError(f"plan {label}: unknown key(s) {', '.join(unknown)} "
                           f"(allowed: {', '.join(sorted(_TOP_KEYS))})")
    settings = raw.get("settings") or {}
    if not isinstance(settings, dict):
        raise AdvisorError(f"plan {label}: settings must be a mapping")
    _split_keys(label, settings, "settings")
    grids = raw.get("grid")
    if isinstance(grids, dict):
        grids = [grids]
    if not grids or not isinstance(grids, list) or not all(isinstance(g, dict) and g for g in grids):
        raise AdvisorError(f"plan {label}: empty grid (give `grid:` a mapping of axes)")
    specs, seen = [], set()
    for g in grids:
        _split_keys(label, g, "grid")
        keys = list(g)
        axes = [_axis_values(label, k, g[k]) for k in keys]
        for combo in itertools.product(*axes):
            merged = dict(settings)
            merged.update(zip(keys, combo))
            spec = _make_spec(label, merged)
            if spec.run_id not in seen:
                seen.add(spec.run_id)
                specs.append(spec)
    return Plan(label, str(raw.get("description", "")), str(p), tuple(specs))


def _number(label: str, key: str, v):
    """YAML 1.1 reads 1e-3 (no dot) as a string: accept it as a number."""
    if isinstance(v, bool):
        raise AdvisorError(f"plan {label}: {key} must be a number, got {v!r}")
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            raise AdvisorError(f"plan {label}: {key} must be a number, got {v!r}") from None
    return float(v) if isinstance(v, int) and key != "tokens" else v


def _make_spec(label: str, merged: dict):
    from calibration.train import RunSpec

    run_fields = RunSpec.field_names()
    run_kw = {k: v for k, v in merged.items() if k in run_fields}
    model = {k: v for k, v in merged.items() if k not in run_fields}
    for k in ("lr", "weight_decay", "eps", "beta1", "beta2", "grad_clip", "diverge_factor",
              "muon_momentum"):
        if k in run_kw:
            run_kw[k] = _number(label, k, run_kw[k])
    for k in ("tokens",):
        if k in run_kw:
            v = _number(label, k, run_kw[k])
            run_kw[k] = int(v) if isinstance(v, float) and v.is_integer() else v
    try:
        spec = RunSpec(model=tuple(sorted(model.items())), **run_kw)
        spec.model_config()                # can the family build this width?
    except AdvisorError as exc:
        desc = ", ".join(f"{k}={merged[k]}" for k in ("width", "depth", "lr") if k in merged)
        raise AdvisorError(f"plan {label}: run ({desc}): {exc}") from None
    except TypeError as exc:
        raise AdvisorError(f"plan {label}: {exc}") from None
    return spec
