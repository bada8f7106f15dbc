"""Schedule-law files: a fitted loss-vs-schedule law as YAML (schema ``hp-advisor/schedule-law/v1``).

Layout::

    schema: hp-advisor/schedule-law/v1
    law: multipower            # or tissue, valley
    params: {L0: ..., A: ..., alpha: ..., B: ..., C: ..., beta: ..., gamma: ...}
    lr_scale: 0.0003           # peak LR of the fit; the law sees LR / lr_scale
    lam: null                  # tissue only: momentum of the annealing area
    rho: 1.0                   # multipower only: forward area sum (LR/lr_scale)^rho (1 = published)
    total_steps_fitted: 24000  # longest fitted curve, in optimizer steps
    fit:                       # how it was fitted and how well
      options: {...}
      curves: [{name, source, n_points, mean_rel, max_rel, final_rel}, ...]
      cv: {...}                # cross-validated choice of law and procedure (select.py)
    provenance: {created, advisor_version, command, converged, at_bounds, identified,
                 unidentified, calls, warnings}   # the optimizer's status
                 # (fitting.status_warnings); calls: converged, message, nfev of each call

Loaded with the project's safe YAML loader (advisor.common.yamlio) and validated before use; written atomically (a temporary
file in the same folder, then a rename), after validation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from advisor.errors import AdvisorError
from advisor.schedule.forms import FORMS
from advisor.common.yamlio import atomic_write_text, plain, read_yaml_file

SCHEMA = "hp-advisor/schedule-law/v1"


@dataclass
class ScheduleLaw:
    """A fitted law, ready to predict loss curves for per-step LRs."""

    law: str
    params: dict
    lr_scale: float
    lam: float | None
    total_steps_fitted: int
    doc: dict
    rho: float = 1.0

    @property
    def theta(self) -> np.ndarray:
        return np.array([self.params[p] for p in FORMS[self.law].params], dtype=np.float64)

    def predict(self, lrs, steps) -> np.ndarray:
        """Loss (nats) at ``steps`` for absolute per-step LRs ``lrs`` (index = step)."""
        u = np.asarray(lrs, dtype=np.float64) / self.lr_scale
        return FORMS[self.law].predict(self.theta, u, steps, rho=self.rho, lam=self.lam)


def validate_schedule_law_dict(d, where: str = "schedule law") -> None:
    """Raise AdvisorError naming the first thing wrong with a schedule-law document."""
    if not isinstance(d, dict):
        raise AdvisorError(f"{where}: not a YAML mapping")
    if d.get("schema") != SCHEMA:
        raise AdvisorError(f"{where}: schema must be {SCHEMA!r}, got {d.get('schema')!r}")
    law = d.get("law")
    if law not in FORMS:
        raise AdvisorError(f"{where}: law must be one of {', '.join(FORMS)}, got {law!r}")
    params = d.get("params")
    if not isinstance(params, dict):
        raise AdvisorError(f"{where}: params must be a mapping")
    need = FORMS[law].params
    missing = [p for p in need if p not in params]
    if missing:
        raise AdvisorError(f"{where}: params lacks {', '.join(missing)}")
    extra = [p for p in params if p not in need]
    if extra:
        raise AdvisorError(f"{where}: unknown params {', '.join(map(str, extra))} for {law}")
    for p in need:
        v = params[p]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise AdvisorError(f"{where}: param {p} must be a finite number, got {v!r}")
    for p in FORMS[law].log_params:
        if params[p] <= 0:
            raise AdvisorError(f"{where}: param {p} must be positive")
    s = d.get("lr_scale")
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not (s > 0 and math.isfinite(s)):
        raise AdvisorError(f"{where}: lr_scale must be a positive number (the fit's peak LR)")
    reason = FORMS[law].check(params, d.get("lam"))
    if reason:
        raise AdvisorError(f"{where}: {reason}")
    rho = d.get("rho", 1.0)
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0 < rho <= 2:
        raise AdvisorError(f"{where}: rho must be a number in (0, 2], got {rho!r}")
    T = d.get("total_steps_fitted")
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise AdvisorError(f"{where}: total_steps_fitted must be a positive integer")
    for key in ("fit", "provenance"):
        if key in d and not isinstance(d[key], dict):
            raise AdvisorError(f"{where}: {key} must be a mapping")


def load_schedule_law(path) -> ScheduleLaw:
    path = Path(path)
    if not path.is_file():
        raise AdvisorError(f"no such schedule-law file: {path}")
    d = read_yaml_file(path, "schedule law")
    validate_schedule_law_dict(d, str(path))
    return ScheduleLaw(law=d["law"], params={k: float(v) for k, v in d["params"].items()},
                       lr_scale=float(d["lr_scale"]), lam=d.get("lam"),
                       total_steps_fitted=int(d["total_steps_fitted"]), doc=d,
                       rho=float(d.get("rho", 1.0)))


def dump_schedule_law(d: dict, path) -> Path:
    """Validate, then write atomically. Returns the path."""
    d = plain(d)
    validate_schedule_law_dict(d, "schedule law to write")
    path = Path(path)
    atomic_write_text(path, yaml.safe_dump(d, sort_keys=False, default_flow_style=None,
                                           width=100))
    return path


def build_document(fit, curves, cv_rows=(), command: str = "") -> dict:
    """The schedule-law document for a fit (see module docstring)."""
    from datetime import datetime, timezone

    from advisor.version import __version__
    from advisor.schedule.fitting import curve_errors, status_warnings

    per_curve = []
    for c in curves:
        e = curve_errors(fit, c)
        per_curve.append({"name": c.name, "source": c.source, "n_points": int(len(c.steps)),
                          "total_steps": int(c.total_steps), "peak_lr": c.peak_lr,
                          "mean_rel": e["mean_rel"], "max_rel": e["max_rel"],
                          "final_rel": e["final_rel"]})
    longest = max(curves, key=lambda c: c.steps[-1])
    lr = longest.lrs[: longest.steps[-1] + 1]
    warm = int(np.argmax(lr >= lr.max() * (1 - 1e-9)))
    min_frac = min(float(c.lrs[c.ipeak():c.steps[-1] + 1].min()) / fit.lr_scale for c in curves)
    opts = fit.to_dict()["options"]
    opts["fix"] = {k: v for k, v in fit.options.fix}
    d = {
        "schema": SCHEMA,
        "law": fit.law,
        "params": dict(fit.params),
        "lr_scale": float(fit.lr_scale),
        "lam": fit.lam,
        "rho": float(fit.options.rho),
        "total_steps_fitted": int(max(c.steps[-1] for c in curves)),
        "warmup_steps_fitted": warm,
        "min_lr_fraction_fitted": min_frac,
        "fit": {
            "options": opts,
            "objective": fit.objective,
            "seconds": fit.seconds,
            "mean_rel": float(np.mean([p["mean_rel"] for p in per_curve])),
            "curves": per_curve,
            "cv": [{"candidate": r["label"], "score": r["score"], "mean_rel": r["mean_rel"],
                    "final_rel": r["final_rel"]} for r in cv_rows],
        },
        "provenance": {
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "advisor_version": __version__,
            "command": command,
            "converged": bool(fit.extra.get("status", {}).get("converged", True)),
            "at_bounds": list(fit.extra.get("status", {}).get("at_bounds", [])),
            "identified": bool(fit.extra.get("status", {}).get("identified", True)),
            "unidentified": list(fit.extra.get("status", {}).get("unidentified", [])),
            "calls": list(fit.extra.get("status", {}).get("calls", [])),
            "warnings": status_warnings(fit),
            "references": ["Tissue et al. 2024, arXiv 2408.11029",
                           "Luo et al. 2025, arXiv 2503.12811"]
            + ([f"{fit.law} law: {FORMS[fit.law].reference}"] if FORMS[fit.law].ours
               else []),
        },
    }
    return plain(d)
