"""The "valley" schedule law (ours): loss = progress by LR area + an excess set by a lagged LR.

    L(t) = L0 + A * S(t)^-alpha + K * m(t)^p
    S(t) = sum_{s<=t} u_s^rho                       (forward area, u = LR / lr_scale)
    m(t) = m(t-1) + (1 - exp(-c u_t)) (u_t - m(t-1)),  m(-1) = 0

Reading: the first two terms are the progress along the bottom of the loss "river valley"
(Wen et al. 2024, arXiv 2410.05192), a power law in LR area as in Tissue et al. 2024 and
Luo et al. 2025; the last is the height above that bottom, which with SGD noise grows with
the LR. ``m`` is the LR the iterate has *relaxed to*: it follows the LR with a relaxation of
about 1 / (c u_t) steps, i.e. a fixed amount of LR area, so a drop to a tiny LR takes
effect slowly -- the last few hundred steps of a decay to zero, at a few percent of the
peak, can gain little (the multi-power fits with gamma at its bound put up to 0.01 nats
there; the Schaipp et al. 2025 curves show about 0.001). ``p`` < 1 makes the excess concave
in the LR, so the last part of a decay to zero is worth more than its share of the LR.

Unlike the multi-power law this form has one relaxation time, not a power-law spectrum of
them. On the Schaipp et al. 2025 curves (bench/bench_schedule_schaipp.py), fitted on
constant + cosine-to-10%, it predicts the other final losses at peak LR 2e-3 to 0.19-0.28%
(multi-power: 1.07%), but at 5e-4 to 0.54-0.60% (multi-power: 0.12-0.31%); on the
multi-power curves it is about as good as the multi-power fit. It is not in any paper: a
form chosen here, offered to cross-validation next to the published ones, with the
evidence in docs/schedules.md.

Evaluation is exact and O(T) per curve: m(t) = sum_s r_s u_s exp(-c (P_t - P_s)) with
P the cumulative LR, computed as rescaled cumulative sums in chunks of bounded c * area.

Fitting (:func:`fit_grid`): rho held fixed; for each (c, p, alpha) on a grid, (L0, A, K) by weighted
linear least squares (A, K > 0); the winner is the grid point of least weighted squared
relative residual. A winner on the edge of the grid in c or p means the data do not
identify that constant; it is reported (``at_bounds``) and the fit says so.
"""
from __future__ import annotations

import numpy as np

NAME = "valley"
PARAMS = ("L0", "A", "alpha", "K", "p", "c", "rho")
LOG_PARAMS = ("A", "K", "c")
#: Fitting grids. c is per unit of LR area (LR / lr_scale x steps): 1/c steps at the peak LR.
C_GRID = tuple(float(x) for x in np.logspace(-4, -1, 25))
P_GRID = tuple(round(float(x), 2) for x in np.arange(0.2, 1.21, 0.1))
ALPHA_GRID = tuple(round(float(x), 3) for x in np.arange(0.1, 1.201, 0.05))
#: Interior of the grids: a winner outside it sits at an edge (not identified).
EDGES = {"c": (C_GRID[0], C_GRID[-1]), "p": (P_GRID[0], P_GRID[-1]),
         "alpha": (ALPHA_GRID[0], ALPHA_GRID[-1])}
_CHUNK = 500.0        # max c * area inside one rescaled chunk (exp(500) is finite)


def relaxed_lr(u: np.ndarray, c: float, clock: np.ndarray | None = None) -> np.ndarray:
    """m(t) for all steps t = 0..len(u)-1 (see module docstring), exactly, in O(T).

    ``clock``: the per-step increments of the relaxation clock, so that step s relaxes by
    1 - exp(-c clock_s); default ``u`` (the law's LR area). Other clocks are for
    measuring alternatives (bench/schedule_form_variants.py)."""
    u = np.asarray(u, dtype=np.float64)
    c = float(c)
    v = u if clock is None else np.asarray(clock, dtype=np.float64)
    P = np.cumsum(v)
    src = -np.expm1(-c * v) * u                      # r_s u_s
    out = np.empty_like(u)
    m, base, a, n = 0.0, 0.0, 0, len(u)
    while a < n:
        # chunk [a, b): c * (P - base) stays below _CHUNK (+ one step)
        b = int(np.searchsorted(P, base + _CHUNK / max(c, 1e-300), side="right"))
        b = min(n, max(b, a + 1))
        Q = c * (P[a:b] - base)
        out[a:b] = np.exp(-Q) * (m + np.cumsum(src[a:b] * np.exp(Q)))
        m, base, a = float(out[b - 1]), float(P[b - 1]), b
    return out


def forward_area(u: np.ndarray, rho: float) -> np.ndarray:
    """S(t) = sum_{s<=t} u_s^rho for all t (u >= 0)."""
    u = np.asarray(u, dtype=np.float64)
    return np.cumsum(np.where(u > 0, u, 0.0) ** rho)


def predict(theta, u: np.ndarray, steps) -> np.ndarray:
    """Loss (nats) at ``steps`` for normalised per-step LRs ``u`` (index = step)."""
    L0, A, alpha, K, p, c, rho = (float(x) for x in theta)
    steps = np.asarray(steps, dtype=np.int64)
    S = np.maximum(forward_area(u, rho)[steps], 1e-12)
    m = np.maximum(relaxed_lr(u, c)[steps], 0.0)
    return L0 + A * S ** -alpha + K * m ** p


def fit_grid(us, steps, ys, ws, rho: float = 1.0, fixed: dict | None = None):
    """Fit on curves given as normalised LRs ``us``, eval ``steps``, losses ``ys``, weights;
    ``rho`` is held fixed (a fitting option chosen by cross-validation, as for multipower).
    ``fixed``: {"c" | "p" | "alpha": value} held at that value instead of its grid (the
    shape constants of another fit; then only the free ones and (L0, A, K) are fitted).

    Returns (params dict, objective, at_bounds list of parameter names at a grid edge).
    Raises ValueError if no grid point gives positive A and K.
    """
    fixed = dict(fixed or {})
    bad = set(fixed) - set(EDGES)
    if bad:
        raise ValueError(f"only c, p and alpha can be held fixed, not {', '.join(sorted(bad))}")
    c_grid = (float(fixed["c"]),) if "c" in fixed else C_GRID
    p_grid = (float(fixed["p"]),) if "p" in fixed else P_GRID
    a_grid = (float(fixed["alpha"]),) if "alpha" in fixed else ALPHA_GRID
    ys = [np.asarray(y, dtype=np.float64) for y in ys]
    sw = np.concatenate([np.sqrt(np.asarray(w, float)) / y for w, y in zip(ws, ys)])
    Y = np.concatenate(ys)
    ones = np.ones_like(Y)
    Ms = [np.concatenate([np.maximum(relaxed_lr(u, c)[st], 0.0) for u, st in zip(us, steps)])
          for c in c_grid]
    best = None
    for rho in (float(rho),):
        S = np.maximum(np.concatenate([forward_area(u, rho)[st] for u, st in zip(us, steps)]),
                       1e-12)
        logS = np.log(S)
        Sa = [np.exp(-a * logS) for a in a_grid]
        for ci, M in enumerate(Ms):
            logM = np.log(np.maximum(M, 1e-300))
            for p in p_grid:
                Mp = np.where(M > 0, np.exp(p * logM), 0.0)
                for ai, a in enumerate(a_grid):
                    X = np.stack([ones, Sa[ai], Mp], axis=1) * sw[:, None]
                    coef, *_ = np.linalg.lstsq(X, Y * sw, rcond=None)
                    if coef[1] <= 0 or coef[2] <= 0:
                        continue
                    r = X @ coef - Y * sw
                    f = float(r @ r)
                    if best is None or f < best[0]:
                        best = (f, rho, c_grid[ci], p, a, coef)
    if best is None:
        raise ValueError("no grid point has a positive progress and valley term")
    f, rho, c, p, a, coef = best
    params = {"L0": float(coef[0]), "A": float(coef[1]), "alpha": float(a),
              "K": float(coef[2]), "p": float(p), "c": float(c), "rho": float(rho)}
    at = [k for k, (lo, hi) in EDGES.items() if k not in fixed and (
          params[k] <= lo * (1 + 1e-9) or params[k] >= hi * (1 - 1e-9))]
    return params, f, at
