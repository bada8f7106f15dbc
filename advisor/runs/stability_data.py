"""A stability sweep's runs as points (arm, width, seed, LR, final loss, last probes) and as
log-partition trajectories over training (:func:`lse_trajectories`).

Read from a results store whose runs recorded the stability probes (calibration.train.stability_probe
writes them as diagnostics rows named ``stab.*``). Shared by the summary
(calibration.analyze.stability_summary) and ``advisor check-stability``. An **arm** is what a run
changes from the base setup (SP, no QK-norm, no z-loss, the most common warmup, AdamW decay
lr_t x wd): "mup", "qk_norm", "z_loss 0.0001", "warmup 80", "indep_wd", joined by " + ", or
"base". Units: LRs are peak LRs (base LRs for muP runs); losses in nats per token; widths in
channels; probe values as calibration.train.stability_probe records them.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

from advisor.errors import AdvisorError


def _warmup(schedule: str) -> int | None:
    m = re.search(r"warmup=(\d+)", str(schedule))
    return int(m.group(1)) if m else None


def arm_of(settings: dict, base_warmup) -> str:
    """The arm of a run: its differences from the base setup, joined by ' + ', or 'base'."""
    model = dict(settings.get("model") or {})
    parts = []
    if settings.get("parameterization", "mup") == "mup":
        parts.append("mup")
    if model.get("qk_norm"):
        parts.append("qk_norm")
    if float(model.get("z_loss", 0.0) or 0.0) > 0:
        parts.append(f"z_loss {float(model['z_loss']):g}")
    w = _warmup(settings.get("schedule", ""))
    if w is not None and base_warmup is not None and w != base_warmup:
        parts.append(f"warmup {w}")
    if settings.get("wd_coupling", "lr") != "lr":
        parts.append("indep_wd")
    return " + ".join(parts) or "base"


@dataclass
class Point:
    """One run's final numbers (losses +inf when unstable by divergence)."""

    arm: str
    width: int
    seed: int
    lr: float
    loss: float
    probes: dict = field(default_factory=dict)   # name -> value at the last probed step


def points_from_store(store) -> list[Point]:
    """Every finished or diverged run as a :class:`Point` with its last stability probes."""
    runs = [r for r in store.runs() if r.status != "failed"]
    if not runs:
        raise AdvisorError("no finished or diverged runs in the store")
    warmups = Counter(_warmup(r.settings.get("schedule", "")) for r in runs)
    base_warmup = warmups.most_common(1)[0][0]
    probes = store.diagnostics_by_prefix("stab.")
    out = []
    for r in runs:
        loss = r.final_val_loss if r.status == "finished" else math.inf
        loss = loss if loss is not None and math.isfinite(loss) else math.inf
        rows = probes.get(r.run_id, [])
        last = {}
        if rows:
            step = max(s for s, _, _ in rows)
            last = {n: v for s, n, v in rows if s == step and math.isfinite(v)}
        out.append(Point(arm_of(r.settings, base_warmup), int(r.settings["width"]),
                         int(r.settings.get("seed", 0)), float(r.settings["lr"]), loss, last))
    return out


def attn_max(p: Point) -> float:
    """The largest attention logit over the layers at a run's last probe (NaN if none)."""
    vals = [v for n, v in p.probes.items() if n.startswith("stab.attn_max.")]
    return max(vals) if vals else math.nan


@dataclass
class Trajectory:
    """One run's log-partition over training: ``steps`` and ``lse_mean`` / ``lse_max``
    (nats; the ``stab.lse_*`` probes at every evaluation), its z-loss coefficient (0 = off),
    width, seed, peak LR, status and final held-out loss (+inf when it diverged)."""

    z_loss: float
    width: int
    seed: int
    lr: float
    status: str
    loss: float
    steps: list[int] = field(default_factory=list)
    lse_mean: list[float] = field(default_factory=list)
    lse_max: list[float] = field(default_factory=list)


def lse_trajectories(store) -> list[Trajectory]:
    """Every finished or diverged run's log-partition trajectory (runs without ``stab.lse_*``
    rows are refused: they were recorded before the probes existed or with them off)."""
    runs = [r for r in store.runs() if r.status != "failed"]
    if not runs:
        raise AdvisorError("no finished or diverged runs in the store")
    probes = store.diagnostics_by_prefix("stab.lse_")
    out = []
    for r in runs:
        rows = probes.get(r.run_id, [])
        by = {"stab.lse_mean": {}, "stab.lse_max": {}}
        for s, n, v in rows:
            if n in by:
                by[n][int(s)] = v
        steps = sorted(by["stab.lse_mean"])
        loss = r.final_val_loss if r.status == "finished" else math.inf
        loss = loss if loss is not None and math.isfinite(loss) else math.inf
        model = dict(r.settings.get("model") or {})
        out.append(Trajectory(float(model.get("z_loss", 0.0) or 0.0), int(r.settings["width"]),
                              int(r.settings.get("seed", 0)), float(r.settings["lr"]),
                              r.status, loss, steps, [by["stab.lse_mean"][s] for s in steps],
                              [by["stab.lse_max"].get(s, math.nan) for s in steps]))
    if not any(t.steps for t in out):
        raise AdvisorError("the store's runs recorded no log-partition probes (stab.lse_mean): "
                           "stored before the probes existed, or with "
                           "ADVISOR_STABILITY_PROBES=off")
    return out
