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
      curves: [{name, source, n_points, total_steps, peak_lr, mean_rel, max_rel, final_rel,
                lr_profile}, ...]   # lr_profile: LR / lr_scale at 65 even fractions of the
                                    # curve's steps (uncertainty.lr_profile; optional: files
                                    # written before it load, their intervals are wider)
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
from advisor.common.outputs import atomic_write_text
from advisor.common.yamlio import plain, read_yaml_file

SCHEMA = "hp-advisor/schedule-law/v1"

# What a schedule law may predict: a loss in nats per token in (0, MAX_LOSS_NATS]. A model
# at initialisation has about ln(vocab) nats (12.4 for a 256k vocabulary); anything above
# 30 or at or below 0 is not a language model's loss, so the law that predicts it is wrong.
MAX_LOSS_NATS = 30.0
# The magnitudes a fitted law's positive constants stay within (lr_scale units; the fits'
# constants are of order 1e-3 to 1e3): outside it a file was edited or a fit went astray.
LOG_PARAM_RANGE = (1e-8, 1e8)
# Steps of the reference schedules a loaded law is asked for (see check_predictions).
_CHECK_POINTS = 64
_CHECK_MAX_STEPS = 1_000_000


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
    path: str = "the law file"

    @property
    def theta(self) -> np.ndarray:
        return np.array([self.params[p] for p in FORMS[self.law].params], dtype=np.float64)

    def predict(self, lrs, steps) -> np.ndarray:
        """Loss (nats) at ``steps`` for absolute per-step LRs ``lrs`` (index = step).
        AdvisorError when a predicted loss is not in (0, MAX_LOSS_NATS]: the law does not
        hold for this schedule, and no such number is handed on."""
        u = np.asarray(lrs, dtype=np.float64) / self.lr_scale
        with np.errstate(all="ignore"):
            out = FORMS[self.law].predict(self.theta, u, steps, rho=self.rho, lam=self.lam)
        bad = implausible_loss(out, steps)
        if bad is not None:
            i, v = bad
            step = int(np.asarray(steps).reshape(-1)[i])
            raise AdvisorError(f"the {self.law} law in {self.path} "
                               f"predicts a loss of {v:.4g} nats at step {step}, outside "
                               f"(0, {MAX_LOSS_NATS:g}] (after the first 1% of the run, "
                               "else (0, inf)): its constants do not describe a "
                               "training run (refit it with `advisor schedule fit`)")
        return out


def implausible_loss(losses, steps) -> tuple[int, float] | None:
    """(index, value) of the first implausible loss, or None. Every loss must be finite and
    positive; from 1% of the run on (steps >= max(steps) / 100) also at most MAX_LOSS_NATS
    (the first steps of a power law in the LR area may legitimately run high)."""
    a = np.asarray(losses, dtype=np.float64).reshape(-1)
    st = np.broadcast_to(np.asarray(steps, dtype=np.float64).reshape(-1), a.shape)
    late = st >= st.max() / 100 if st.size else st
    ok = np.isfinite(a) & (a > 0) & ((a <= MAX_LOSS_NATS) | ~late)
    if ok.all():
        return None
    i = int(np.argmin(ok))
    return i, float(a[i])


def check_predictions(law: "ScheduleLaw", where: str) -> None:
    """AdvisorError unless the law predicts plausible losses (:func:`implausible_loss`) for
    the schedules it was fitted on: a constant LR and a cosine to 10% over its fitted
    horizon (at most _CHECK_MAX_STEPS steps), at _CHECK_POINTS steps each."""
    from advisor.schedule.optimize import per_step_lrs

    T = int(min(law.total_steps_fitted, _CHECK_MAX_STEPS))
    steps = np.unique(np.linspace(1, T, min(T, _CHECK_POINTS)).astype(np.int64))
    for spec in ("constant", "cosine:final=0.1"):
        u = per_step_lrs(spec, T, 1.0)
        with np.errstate(all="ignore"):
            out = FORMS[law.law].predict(law.theta, u, steps, rho=law.rho, lam=law.lam)
        bad = implausible_loss(out, steps)
        if bad is not None:
            i, v = bad
            raise AdvisorError(f"{where}: the {law.law} law predicts a loss of {v:.4g} nats "
                               f"at step {int(steps[i])} of a {spec} schedule over its own "
                               f"fitted {T} steps, outside (0, {MAX_LOSS_NATS:g}]: its "
                               "constants do not describe a training run")


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
    lo, hi = LOG_PARAM_RANGE
    for p in FORMS[law].log_params:
        if not lo <= params[p] <= hi:
            raise AdvisorError(f"{where}: param {p} must be in [{lo:g}, {hi:g}] (a positive "
                               f"constant of a fitted law), got {params[p]!r}")
    for p, (blo, bhi) in FORMS[law].bounds.items():
        v = params[p]
        if (blo is not None and v < blo) or (bhi is not None and v > bhi):
            rng = (f"[{'-inf' if blo is None else f'{blo:g}'}, "
                   f"{'inf' if bhi is None else f'{bhi:g}'}]")
            raise AdvisorError(f"{where}: param {p} must be in {rng} (the {law} form's "
                               f"range), got {v!r}")
    if "L0" in params and params["L0"] > MAX_LOSS_NATS:
        raise AdvisorError(f"{where}: param L0 (the loss it tends to, nats) must be at most "
                           f"{MAX_LOSS_NATS:g}, got {params['L0']!r}")
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
    _validate_fit_curves(d.get("fit") or {}, where)


def _validate_fit_curves(fit: dict, where: str) -> None:
    """The records of the fitted curves that the intervals read (advisor.schedule.uncertainty):
    each optional, but where present well-formed."""
    from advisor.schedule.uncertainty import PROFILE_POINTS

    curves = fit.get("curves")
    if curves is None:
        return
    if not isinstance(curves, list) or not all(isinstance(c, dict) for c in curves):
        raise AdvisorError(f"{where}: fit.curves must be a list of mappings")
    for i, c in enumerate(curves):
        at = f"{where}: fit.curves[{i}]"
        T = c.get("total_steps")
        if T is not None and (isinstance(T, bool) or not isinstance(T, int) or T < 1):
            raise AdvisorError(f"{at}.total_steps must be a positive integer, got {T!r}")
        for k in ("mean_rel", "max_rel", "final_rel"):
            v = c.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not math.isfinite(v)):
                raise AdvisorError(f"{at}.{k} must be a finite number or null, got {v!r}")
        prof = c.get("lr_profile")
        if prof is None:
            continue
        if T is None:
            raise AdvisorError(f"{at}: lr_profile needs total_steps (the curve's horizon)")
        if (not isinstance(prof, list) or len(prof) != PROFILE_POINTS + 1
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                           and math.isfinite(x) and 0 <= x <= 2 for x in prof)):
            raise AdvisorError(f"{at}.lr_profile must be {PROFILE_POINTS + 1} numbers in "
                               "[0, 2] (LR / lr_scale at even fractions of the curve)")


def load_schedule_law(path) -> ScheduleLaw:
    path = Path(path)
    if not path.is_file():
        raise AdvisorError(f"no such schedule-law file: {path}")
    d = read_yaml_file(path, "schedule law")
    validate_schedule_law_dict(d, str(path))
    law = ScheduleLaw(law=d["law"], params={k: float(v) for k, v in d["params"].items()},
                      lr_scale=float(d["lr_scale"]), lam=d.get("lam"),
                      total_steps_fitted=int(d["total_steps_fitted"]),
                      doc=d, rho=float(d.get("rho", 1.0)), path=str(path))
    check_predictions(law, str(path))
    return law


def dump_schedule_law(d: dict, path) -> Path:
    """Validate, then write atomically. Returns the path."""
    d = plain(d)
    validate_schedule_law_dict(d, "schedule law to write")
    path = Path(path)
    atomic_write_text(path, yaml.safe_dump(d, sort_keys=False, default_flow_style=None,
                                           width=100))
    return path


def _cv_row(r: dict) -> dict:
    """A cross-validation row for the file: a candidate that failed on some fold has no
    score (null) and says why, never an infinite score."""
    def num(x):
        return float(x) if x is not None and math.isfinite(x) else None
    row = {"candidate": r["label"], "score": num(r["score"]), "mean_rel": num(r["mean_rel"]),
           "final_rel": num(r["final_rel"])}
    errors = [f.get("error") for f in r.get("folds", ()) if f.get("error")]
    if row["score"] is None:
        row["failed"] = errors[0] if errors else "no finite score"
    return row


def build_document(fit, curves, cv_rows=(), command: str = "") -> dict:
    """The schedule-law document for a fit (see module docstring)."""
    from datetime import datetime, timezone

    from advisor.version import __version__
    from advisor.schedule.fitting import curve_errors, status_warnings
    from advisor.schedule.uncertainty import lr_profile

    per_curve = []
    for c in curves:
        e = curve_errors(fit, c)
        per_curve.append({"name": c.name, "source": c.source, "n_points": int(len(c.steps)),
                          "total_steps": int(c.total_steps), "peak_lr": c.peak_lr,
                          "mean_rel": e["mean_rel"], "max_rel": e["max_rel"],
                          "final_rel": e["final_rel"],
                          "lr_profile": lr_profile(c.lrs / fit.lr_scale, c.total_steps)})
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
            "cv": [_cv_row(r) for r in cv_rows],
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
