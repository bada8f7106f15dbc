"""Summaries of a results store: best LR per width and how far it moves (the LR-sweep
figure is ``advisor.cli.plots.lr_sweeps``).

Torch-free (numpy). Units: LRs are peak LRs of the base-width model; losses are final held-out
losses in nats per token.
"""
from __future__ import annotations

import math
from collections import defaultdict

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


def best_lr_table(runs) -> list[dict]:
    """One row per (sweep, width): the LR with the lowest mean held-out loss; ``arm`` names
    the sweep (:func:`advisor.specs.grouping.arm_labels`), ``sweep`` is its key."""
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
            rows.append({"arm": labels[key], "parameterization": settings["parameterization"],
                         "width": w,
                         "depth": settings["depth"], "best_lr": best_lr,
                         "log2_best_lr": math.log2(best_lr) if best_lr > 0 else math.nan,
                         "best_val_loss": best_loss, "n_lrs": len(pts),
                         "batch_size": settings["batch_size"], "tokens": settings["tokens"],
                         "schedule": settings["schedule"],
                         "weight_decay": settings["weight_decay"],
                         "model": dict(settings["model"]), "sweep": key})
    return rows


def optimum_shift(rows: list[dict]) -> list[dict]:
    """Per sweep (the rows' ``sweep`` key: one arm, never two merged): log2 of (best LR at
    the largest width / best LR at the smallest width)."""
    groups = defaultdict(list)
    for r in rows:
        if math.isfinite(r["best_lr"]):
            groups[r["sweep"]].append(r)
    out = []
    for k, rs in groups.items():
        rs.sort(key=lambda r: r["width"])
        if len(rs) >= 2:
            out.append({"arm": rs[0]["arm"], "parameterization": rs[0]["parameterization"],
                        "depth": rs[0]["depth"], "smallest_width": rs[0]["width"],
                        "largest_width": rs[-1]["width"],
                        "log2_shift": rs[-1]["log2_best_lr"] - rs[0]["log2_best_lr"]})
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


