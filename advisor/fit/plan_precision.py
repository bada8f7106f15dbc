"""How precisely a planned sweep will pin the LR law down, before any run: the expected
standard error of the fitted (muP base) LR at a target's token budget, from the plan's design.

The noise model is the fitter's (:mod:`advisor.fit.optima`): in each cell the loss near the
optimum is a parabola in log2 LR, ``L = L* + k (x - x*)^2``, measured with independent noise of
sd ``sigma`` per run; the cell's optimum is the stationary point of the least-squares
quadratic through the runs of :func:`advisor.fit.optima.fit_window` (at least
``window_runs_needed()`` runs and ``MIN_DISTINCT`` LRs nearest the optimum). By the delta
method, with x measured from the optimum,

    var(x*) = (sigma / k)^2 [ (A^T A)^-1 ]_11 / 4,     A = [1, x, x^2] over the window's runs,

so only the ratio ``sigma / k`` (octaves^2) of the device's proxies enters, with the grid
spacing and the seeds per LR (each seed one more run at each LR). Under muP the law is
``ln lr* = a + b ln D`` through every cell (widths pooled: the N dependence is muP's), so its
value at a target ``D_t`` has the variance of a straight-line prediction,

    var = var(x*) [ 1/n + (u_t - mean u)^2 / sum (u_i - mean u)^2 ],   u = ln D,

which grows as the target leaves the swept budgets. Assumed: the optimum lies midway in the
window (symmetric grid around it), the noise is the same in every cell, the surface fit
(the default method) is as precise as the per-cell fit it smooths, and the proxies' optimum
transfers across width exactly (muP; the plan's transfer check measures it).

:func:`cell_noise` measures ``sigma`` and ``k`` on a finished sweep, cell by cell, with the
fitter's own window (bench/plan_noise.py prints them). Units: x in octaves (log2 LR), losses
in nats per token, k in nats per octave^2, D in tokens. Pure numpy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from advisor.fit.optima import MIN_DISTINCT, fit_window, window_runs_needed


def window_lrs(n_lr: int, seeds: int) -> int:
    """Distinct LRs in the fitter's window when every LR has ``seeds`` runs: enough for
    ``window_runs_needed()`` runs and at least MIN_DISTINCT LRs, at most the grid's."""
    need = max(MIN_DISTINCT, math.ceil(window_runs_needed(1) / max(1, seeds)))
    return min(int(n_lr), need)


def optimum_sd_octaves(noise_over_curvature: float, n_lr: int, spacing_oct: float,
                       seeds: int = 1) -> float:
    """Expected sd (octaves) of one cell's fitted LR optimum (module doc): the window's LRs
    ``spacing_oct`` apart, centred on the optimum, ``seeds`` runs each; inf when the window
    cannot hold a quadratic (fewer than MIN_DISTINCT LRs).

    Checked against the fitter itself for one seed per LR, as plans run (tests/
    test_plan_value.py: within 25%). With repeats the fitter's window stops at fewer LRs
    (3 LRs x 2 seeds), where the delta method understates its scatter (up to 2x at
    sigma/k 0.9)."""
    m = window_lrs(n_lr, seeds)
    if m < MIN_DISTINCT or spacing_oct <= 0 or noise_over_curvature < 0:
        return math.inf
    x = np.repeat((np.arange(m) - (m - 1) / 2.0) * spacing_oct, max(1, int(seeds)))
    A = np.column_stack([np.ones_like(x), x, x * x])
    c11 = float(np.linalg.inv(A.T @ A)[1, 1])
    return float(noise_over_curvature) * math.sqrt(c11) / 2.0


def law_sd_octaves(cell_sd_oct: float, cell_tokens, target_tokens: float) -> float:
    """Expected sd (octaves) of the D-only LR law's value at ``target_tokens``, fitted
    through cells at ``cell_tokens`` (one entry per cell, widths included) with per-cell sd
    ``cell_sd_oct`` (module doc); inf when the cells do not vary D."""
    u = np.log(np.asarray(cell_tokens, float))
    n = len(u)
    sxx = float(((u - u.mean()) ** 2).sum()) if n else 0.0
    if n < 3 or sxx <= 0 or not math.isfinite(cell_sd_oct):
        return math.inf
    lever = 1.0 / n + (math.log(target_tokens) - u.mean()) ** 2 / sxx
    return cell_sd_oct * math.sqrt(lever)


@dataclass(frozen=True)
class CellNoise:
    """One cell's loss noise and bowl curvature along LR, at its best run's batch."""

    N: float
    D: float
    runs: int              # runs in the fitter's window
    sigma: float           # residual sd of the window's quadratic (nats), n - 3 dof
    curvature: float       # its x^2 coefficient k (nats per octave^2)

    @property
    def ratio(self) -> float:
        """sigma / k in octaves^2."""
        return self.sigma / self.curvature


def cell_noise(table) -> list[CellNoise]:
    """:class:`CellNoise` of every cell of a RunTable whose window holds a bowl with residual
    degrees of freedom (at least 4 runs, k > 0); other cells are left out."""
    out = []
    idx = table.cell_index
    for c, (N, D) in enumerate(table.cells):
        m = (idx == c) & table.finished
        if not m.any():
            continue
        best_b = table.batch_tokens[m][np.argmin(table.loss[m])]
        line = m & np.isclose(table.batch_tokens, best_b)
        x = np.log2(table.lr[line])
        y = table.loss[line]
        if len(np.unique(np.round(x, 9))) < MIN_DISTINCT:
            continue
        sel, _, _ = fit_window(x[:, None], y)
        xs, ys = x[sel], y[sel]
        if len(xs) < 4 or len(np.unique(np.round(xs, 9))) < MIN_DISTINCT:
            continue
        coef = np.polyfit(xs, ys, 2)
        if coef[0] <= 0:
            continue
        rss = float(((np.polyval(coef, xs) - ys) ** 2).sum())
        out.append(CellNoise(float(N), float(D), int(len(xs)),
                             math.sqrt(rss / (len(xs) - 3)), float(coef[0])))
    return out
