"""The LR optimum *given* a batch: the ridge of a fitted loss surface, and the grid's own.

On a surface fitted over (ln lr, ln B) (:mod:`advisor.fit.surface`), the best LR at a batch B
that is not the optimal one is found by minimising the surface's shape along ln lr at that
batch offset. The curve it traces, ``g(u) = ln lr*(B) - ln lr*`` as a function of
``u = ln B - ln B*``, is the *ridge*; its local slope d ln lr* / d ln B says which published
rule the data follow there: about 1 the linear scaling rule (Goyal et al. 2017), about 0.5
the square-root rule (Hoffer et al. 2017; Malladi et al. 2022 for Adam), about 0 none.

:func:`grid_conditional_optima` measures the same thing without any surface: per cell and
per batch of the grid, the vertex of a parabola in log2 lr through the best run and its two
LR neighbours (a check of the ridge, and tuned optima at batches the surface never chose).

Units: octaves (log2) in everything returned; lr peak LR, B tokens per step.
"""
from __future__ import annotations

import math

import numpy as np

from advisor.rules.lr_batch_rules import rule_for_slope

LN2 = math.log(2.0)
# batch offsets (octaves of B / B*) at which the ridge is tabulated: the Step Law grid spans
# about 2-3 octaves either side of each cell's optimum batch
KNOTS_OCT = tuple(x / 2 for x in range(-6, 7))          # -3 .. +3 in half octaves
LR_SEARCH_OCT = np.linspace(-5.0, 5.0, 2001)            # 0.005-octave LR search grid


def surface_ridge(fits, cells, knots_oct=KNOTS_OCT) -> dict:
    """The ridge g(u) of each surface fit at each cell, in octaves.

    ``fits``: :class:`advisor.fit.surface.SurfaceFit` with axes (learning_rate, batch_size)
    (an ensemble: their ridges are averaged); ``cells``: (N, D) pairs. Returns
    ``{"knots_oct": [...], "per_cell": {(N, D): [g at each knot]}, "median": [...]}``: the LR
    offset (octaves of lr*(B) / lr*) at each batch offset (octaves of B / B*).
    """
    ub = np.asarray(knots_oct, float) * LN2
    ul = LR_SEARCH_OCT * LN2
    grid = np.stack(np.meshgrid(ul, ub, indexing="ij"), -1)
    per_cell = {}
    for N, D in cells:
        curves = [ul[np.argmin(f.shape_value(grid, N, D), axis=0)] / LN2 for f in fits]
        per_cell[(N, D)] = [float(v) for v in np.median(curves, axis=0)]
    med = np.median(np.array(list(per_cell.values())), axis=0)
    return {"knots_oct": [float(k) for k in knots_oct], "per_cell": per_cell,
            "median": [round(float(v), 4) for v in med]}


def regime_slopes(knots_oct, ridge_oct) -> list[dict]:
    """Local slope of a ridge over three regimes of B / B*: below B*/2, B*/2..2B*, above 2B*.

    Each slope is a least-squares line through the ridge's knots in that regime (octaves per
    octave = d ln lr* / d ln B), with the rule it is nearest to.
    """
    k = np.asarray(knots_oct, float)
    g = np.asarray(ridge_oct, float)
    out = []
    for name, lo, hi in (("small batch: B < B*/2", -math.inf, -1.0),
                         ("near the optimum: B*/2 <= B <= 2 B*", -1.0, 1.0),
                         ("large batch: B > 2 B*", 1.0, math.inf)):
        sel = (k >= lo) & (k <= hi)
        if sel.sum() < 2:
            continue
        slope = float(np.polyfit(k[sel], g[sel], 1)[0])
        out.append({"regime": name, "from_oct": float(k[sel].min()),
                    "to_oct": float(k[sel].max()), "slope": round(slope, 3),
                    "rule": rule_for_slope(slope)})
    return out


def _vertex(xs, ys):
    """Vertex of the parabola through three points (x of the minimum), or None."""
    a = np.polyfit(xs, ys, 2)
    if a[0] <= 0:
        return None
    return float(-a[1] / (2 * a[0]))


def grid_conditional_optima(cells, min_lrs: int = 3) -> list[dict]:
    """Per cell and per batch of a grid: the best LR at that batch.

    ``cells``: ``advisor.evidence.steplaw_cells`` (runs with lr, batch, loss). The optimum is
    the vertex of the parabola in log2 lr through the lowest-loss run and its two LR
    neighbours; where the best run sits at the edge of the LR range it is not an interior
    optimum and is left out. Returns dicts n, d, batch, lr, loss (the best run's).
    """
    out = []
    for c in cells:
        for b in sorted({r["batch"] for r in c["runs"]}):
            line = sorted((r for r in c["runs"] if r["batch"] == b), key=lambda r: r["lr"])
            if len(line) < min_lrs:
                continue
            i = min(range(len(line)), key=lambda j: line[j]["loss"])
            if i == 0 or i == len(line) - 1:
                continue
            xs = [math.log2(line[j]["lr"]) for j in (i - 1, i, i + 1)]
            v = _vertex(xs, [line[j]["loss"] for j in (i - 1, i, i + 1)])
            if v is None or not xs[0] <= v <= xs[2]:
                v = xs[1]
            out.append({"n": c["n"], "d": c["d"], "batch": b, "lr": 2.0 ** v,
                        "loss": line[i]["loss"]})
    return out


# The surface is fitted to runs within 1.5-2.5% of their cell's best loss (SurfaceOptions
# window); more than about 2 octaves of batch from B* few runs are that close, and the
# polynomial there is extrapolated. Beyond this offset the shipped ridge continues with the
# slope of the grid's own per-batch optima (grid_conditional_optima) in that regime.
SURFACE_SUPPORT_OCT = 2.0


def join_grid_slopes(knots_oct, ridge_oct, grid_regimes, support_oct=SURFACE_SUPPORT_OCT):
    """The ridge with its values beyond +-``support_oct`` replaced by a line from the value
    at the support's edge with the grid's measured slope of that regime (small / large
    batch: ``grid_regimes`` as bench/conditional_eval.py measures them)."""
    slope = {r["regime"].split(":")[0]: r["slope"] for r in grid_regimes}
    k = list(knots_oct)
    g = list(ridge_oct)
    lo = k.index(-support_oct)
    hi = k.index(support_oct)
    out = []
    for x, v in zip(k, g):
        if x < -support_oct and "small batch" in slope:
            v = g[lo] + slope["small batch"] * (x + support_oct)
        elif x > support_oct and "large batch" in slope:
            v = g[hi] + slope["large batch"] * (x - support_oct)
        out.append(round(float(v), 4))
    return out
