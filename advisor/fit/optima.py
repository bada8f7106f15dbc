"""The optimum of each (N, D) cell of a sweep, from a smooth fit near its minimum.

Within a cell the loss is close to a convex bowl in log hyperparameters near its minimum, so
the optimum is taken from a full quadratic in (ln lr, ln B_tokens, ln lambda) -- whichever of
them vary in the cell -- fitted to the finished runs within a window of the cell's best loss,
not from the best grid point. Its 95% interval comes from refitting bootstrap resamples of
those runs (repeats with different seeds are separate runs and are resampled as such).

Diverged runs are what they are, evidence that the LR is too high: the optimum LR of a cell
is capped below the smallest LR that diverged at the optimum's batch size, and the cap is
reported. Optima that fall outside the sampled range are clamped to it and flagged.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from advisor.errors import AdvisorError
from advisor.runs.table import RunTable

AXES = ("learning_rate", "batch_size", "weight_decay")
MIN_DISTINCT = 3


@dataclass
class CellOptimum:
    """Optimum of one cell. Values in natural units: peak LR, batch in tokens, AdamW lambda."""

    N: float
    D: float
    axes: tuple
    optimum: dict                     # axis -> value
    interval: dict                    # axis -> (lo, hi), 95% bootstrap
    loss_at_optimum: float            # the quadratic's minimum (nats/token)
    best_run: dict                    # every known axis -> value of the best finished run
    best_loss: float
    n_runs: int
    n_diverged: int
    n_fit: int                        # runs in the window the quadratic was fitted to
    method: str                       # "quadratic" or "best-point" (fallback, see flags)
    flags: list = field(default_factory=list)
    log_sd: dict = field(default_factory=dict)   # axis -> bootstrap sd of ln(optimum)


def axis_columns(table: RunTable):
    """The log-hyperparameter columns of a table: {axis: ln values}."""
    cols = {"learning_rate": np.log(table.lr), "batch_size": np.log(table.batch_tokens)}
    if np.isfinite(table.weight_decay).all() and (table.weight_decay > 0).all():
        cols["weight_decay"] = np.log(table.weight_decay)
    return cols


def varying_axes(table: RunTable, mask) -> tuple:
    cols = axis_columns(table)
    fin = mask & table.finished
    return tuple(a for a in AXES if a in cols
                 and len(np.unique(np.round(cols[a][fin], 9))) >= MIN_DISTINCT)


def _design(X):
    """Full quadratic design matrix in the columns of X (n, k)."""
    n, k = X.shape
    cols = [np.ones(n)] + [X[:, j] for j in range(k)]
    cols += [X[:, i] * X[:, j] for i, j in itertools.combinations_with_replacement(range(k), 2)]
    return np.column_stack(cols)


def _stationary(coef, k):
    """Stationary point and Hessian of a quadratic with coefficients in _design order."""
    g = coef[1:1 + k]
    H = np.zeros((k, k))
    for c, (i, j) in zip(coef[1 + k:],
                         itertools.combinations_with_replacement(range(k), 2)):
        if i == j:
            H[i, i] += 2 * c
        else:
            H[i, j] += c
            H[j, i] += c
    try:
        x = np.linalg.solve(H, -g)
    except np.linalg.LinAlgError:
        return None, H
    return x, H


def fit_window(X, y, window: float = 0.005, max_window: float = 0.15):
    """The runs a cell's quadratic is fitted to: those within ``w`` (relative) of the best
    loss, ``w`` widened from ``window`` by 1.5x until there are at least twice as many runs
    as coefficients and MIN_DISTINCT values on every axis, or ``max_window`` is reached.
    ``X``: (n, k) log hyperparameters; ``y``: losses. Returns (mask, w, enough)."""
    k = X.shape[1]
    best = float(np.min(y))
    w = window
    while True:
        sel = y <= best * (1 + w)
        enough = bool(sel.sum() >= window_runs_needed(k) and all(
            len(np.unique(np.round(X[sel, j], 9))) >= MIN_DISTINCT for j in range(k)))
        if enough or w >= max_window:
            return sel, w, enough
        w = min(w * 1.5, max_window)


def window_runs_needed(k: int = 1) -> int:
    """Runs :func:`fit_window` asks for in a cell with ``k`` varying axes (2 x coefficients)."""
    return 2 * (1 + k + k * (k + 1) // 2)


def cell_optimum(table: RunTable, mask, *, window: float = 0.005, max_window: float = 0.15,
                 n_bootstrap: int = 200, seed: int = 0, axes=None) -> CellOptimum:
    """Optimum of the cell whose runs are ``mask`` (all with the same N and D)."""
    N, D = float(table.N[mask][0]), float(table.D[mask][0])
    where = f"cell N={N:.3g}, D={D:.3g}"
    fin = mask & table.finished
    n_div = int((mask & table.diverged).sum())
    if not fin.any():
        raise AdvisorError(f"{where}: all {int(mask.sum())} runs diverged; its LRs are all too "
                           "high, so it has no optimum")
    cols = axis_columns(table)
    axes = tuple(axes) if axes is not None else varying_axes(table, mask)
    if "learning_rate" not in axes:
        n_lr = len(np.unique(table.lr[fin]))
        raise AdvisorError(f"{where}: {n_lr} distinct LR(s) among finished runs; an optimum "
                           f"needs at least {MIN_DISTINCT} LRs around the minimum")
    X = np.column_stack([cols[a][fin] for a in axes])
    y = table.loss[fin]
    k = len(axes)
    ib = int(np.argmin(y))
    best_run = {a: float(np.exp(cols[a][fin][ib])) for a in cols}
    flags = []

    sel, w, enough = fit_window(X, y, window, max_window)
    Xs, ys = X[sel], y[sel]
    opt = None
    if enough:
        coef = np.linalg.lstsq(_design(Xs), ys, rcond=None)[0]
        x, H = _stationary(coef, k)
        if x is not None and np.all(np.linalg.eigvalsh(H) > 0):
            opt = x
            loss_opt = float((_design(x[None, :]) @ coef)[0])
        else:
            flags.append("the fitted quadratic is not a bowl here; best run used")
    else:
        flags.append(f"too few distinct values within {w:.0%} of the best run; best run used")
    method = "quadratic" if opt is not None else "best-point"
    if opt is None:
        opt = X[ib].copy()
        loss_opt = float(y[ib])

    lo_x, hi_x = Xs.min(axis=0), Xs.max(axis=0)
    clamped = np.clip(opt, lo_x, hi_x)
    for j, a in enumerate(axes):
        if clamped[j] != opt[j]:
            flags.append(f"{a} optimum outside the sampled range; clamped to its edge")
    opt = clamped
    opt, cap_flag = _cap_by_divergence(table, mask, axes, cols, opt)
    if cap_flag:
        flags.append(cap_flag)

    interval, log_sd = {}, {}
    if method == "quadratic" and n_bootstrap > 0:
        boots = _bootstrap(Xs, ys, k, n_bootstrap, seed, lo_x, hi_x)
        if len(boots) >= max(10, n_bootstrap // 4):
            for j, a in enumerate(axes):
                lo, hi = np.percentile(boots[:, j], [2.5, 97.5])
                interval[a] = (float(np.exp(min(lo, opt[j]))), float(np.exp(max(hi, opt[j]))))
                log_sd[a] = float(np.std(boots[:, j]))
        else:
            flags.append("bootstrap refits were mostly not bowls; no interval")
    return CellOptimum(N=N, D=D, axes=axes,
                       optimum={a: float(np.exp(opt[j])) for j, a in enumerate(axes)},
                       interval=interval, loss_at_optimum=float(loss_opt), best_run=best_run,
                       best_loss=float(y[ib]), n_runs=int(mask.sum()), n_diverged=n_div,
                       n_fit=int(sel.sum()), method=method, flags=flags, log_sd=log_sd)


def _bootstrap(Xs, ys, k, n_bootstrap, seed, lo_x, hi_x):
    rng = np.random.default_rng(seed)
    A = _design(Xs)
    out = []
    for _ in range(n_bootstrap):
        idx = rng.integers(0, len(ys), len(ys))
        coef = np.linalg.lstsq(A[idx], ys[idx], rcond=None)[0]
        x, H = _stationary(coef, k)
        if x is None or not np.all(np.linalg.eigvalsh(H) > 0):
            continue
        out.append(np.clip(x, lo_x, hi_x))
    return np.array(out)


def _cap_by_divergence(table, mask, axes, cols, opt):
    """Keep the LR optimum below the smallest LR that diverged at the optimum's batch size."""
    div = mask & table.diverged
    if not div.any():
        return opt, None
    j_lr = axes.index("learning_rate")
    near = div.copy()
    for j, a in enumerate(axes):
        if a == "learning_rate":
            continue
        vals = np.unique(cols[a][mask])
        nearest = vals[np.argmin(np.abs(vals - opt[j]))]
        near &= np.isclose(cols[a], nearest)
    if not near.any():
        return opt, None
    lr_div = cols["learning_rate"][near].min()
    if opt[j_lr] < lr_div:
        return opt, None
    stable = mask & table.finished & (cols["learning_rate"] < lr_div)
    cap = cols["learning_rate"][stable].max() if stable.any() else opt[j_lr]
    opt = opt.copy()
    opt[j_lr] = cap
    return opt, (f"LR optimum capped at {np.exp(cap):.3g}: runs diverged from "
                 f"{np.exp(lr_div):.3g} at this batch")


def all_optima(table: RunTable, *, window: float = 0.005, n_bootstrap: int = 200,
               seed: int = 0) -> list[CellOptimum]:
    """Optimum of every cell, in ``table.cells`` order."""
    idx = table.cell_index
    return [cell_optimum(table, idx == c, window=window, n_bootstrap=n_bootstrap,
                         seed=seed + c) for c in range(len(table.cells))]
