"""Summaries of a results store: best LR per width and how far it moves (the LR-sweep
figure is ``advisor.cli.plots.lr_sweeps``).

Torch-free (numpy). Units: LRs are peak LRs of the base-width model; losses are final held-out
losses in nats per token.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, fields

import numpy as np

from advisor.specs.grouping import SWEEP_FREE, arm_labels, group_key


def _sweep_key(settings: dict) -> tuple:
    """One LR sweep: every setting but LR, seed and width (advisor.specs.grouping)."""
    return group_key(settings, SWEEP_FREE)


def lr_curves(runs) -> dict:
    """{sweep key: {width: [(lr, mean val loss over seeds, n seeds, n diverged)]}} sorted by lr.

    A sweep key is ``advisor.specs.grouping.group_key`` with LR, seed and width free: runs
    that differ in any other setting (optimizer, Muon convention, weight-decay rule, ...)
    are never averaged into one curve. Diverged runs count as +inf; failed runs are left out.
    """
    cells = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in runs:
        if r.status == "failed":
            continue
        loss = r.final_val_loss if r.status == "finished" else math.inf
        if not math.isfinite(loss):
            loss = math.inf
        s = r.settings
        cells[_sweep_key(s)][int(s["width"])][float(s["lr"])].append(loss)
    out = {}
    for key, widths in cells.items():
        out[key] = {}
        for w, lrs in sorted(widths.items()):
            pts = []
            for lr, losses in sorted(lrs.items()):
                finite = [x for x in losses if math.isfinite(x)]
                mean = float(np.mean(losses)) if len(finite) == len(losses) else math.inf
                pts.append((lr, mean, len(losses), len(losses) - len(finite)))
            out[key][w] = pts
    return out


@dataclass(frozen=True)
class BestLR:
    """One (sweep, width) of :func:`best_lr_table`: the peak LR with the lowest mean held-out
    loss (``best_lr``, NaN where every run diverged; ``log2_best_lr``) and that loss
    (``best_val_loss``, nats per token) over ``n_lrs`` LRs; ``arm`` names the sweep
    (:func:`advisor.specs.grouping.arm_labels`), ``sweep`` is its grouping key (left out of
    :meth:`to_dict`); the rest are the sweep's settings (``width``, ``depth``: channels,
    blocks; ``batch_size`` in sequences, ``tokens`` per run)."""

    arm: str
    parameterization: str
    width: int
    depth: int
    best_lr: float
    log2_best_lr: float
    best_val_loss: float
    n_lrs: int
    batch_size: int
    tokens: int
    schedule: str
    weight_decay: float
    model: dict
    sweep: tuple

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sweep"}


@dataclass(frozen=True)
class OptimumShift:
    """How far one arm's best LR moves from its smallest to its largest width:
    ``log2_shift`` = log2(best LR at ``largest_width`` / best LR at ``smallest_width``)."""

    arm: str
    parameterization: str
    depth: int
    smallest_width: int
    largest_width: int
    log2_shift: float


def best_lr_table(runs) -> list[BestLR]:
    """One :class:`BestLR` per (sweep, width)."""
    rows = []
    curves = lr_curves(runs)
    labels = arm_labels(curves)
    for key, widths in curves.items():
        settings = dict(key)
        for w, pts in widths.items():
            finite = [p for p in pts if math.isfinite(p[1])]
            if not finite:
                best_lr, best_loss = math.nan, math.nan
            else:
                best_lr, best_loss = min(finite, key=lambda p: p[1])[:2]
            rows.append(BestLR(
                arm=labels[key], parameterization=settings["parameterization"], width=w,
                depth=settings["depth"], best_lr=best_lr,
                log2_best_lr=math.log2(best_lr) if best_lr > 0 else math.nan,
                best_val_loss=best_loss, n_lrs=len(pts), batch_size=settings["batch_size"],
                tokens=settings["tokens"], schedule=settings["schedule"],
                weight_decay=settings["weight_decay"], model=dict(settings["model"]),
                sweep=key))
    return rows


def optimum_shift(rows: list[BestLR]) -> list[OptimumShift]:
    """Per sweep (the rows' ``sweep`` key: one arm, never two merged) with two or more widths
    of a finite best LR: its :class:`OptimumShift`."""
    groups = defaultdict(list)
    for r in rows:
        if math.isfinite(r.best_lr):
            groups[r.sweep].append(r)
    out = []
    for k, rs in groups.items():
        rs.sort(key=lambda r: r.width)
        if len(rs) >= 2:
            out.append(OptimumShift(
                arm=rs[0].arm, parameterization=rs[0].parameterization, depth=rs[0].depth,
                smallest_width=rs[0].width, largest_width=rs[-1].width,
                log2_shift=rs[-1].log2_best_lr - rs[0].log2_best_lr))
    return out


def best_by_width(runs) -> dict:
    """{width: {arm label: best mean held-out loss}}: does muP win at every width?"""
    out: dict = defaultdict(dict)
    curves = lr_curves(runs)
    labels = arm_labels(curves)
    for key, widths in curves.items():
        for w, pts in widths.items():
            finite = [p[1] for p in pts if math.isfinite(p[1])]
            out[w][labels[key]] = min(finite) if finite else math.nan
    return dict(sorted(out.items()))


