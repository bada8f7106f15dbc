"""LR and batch laws by three methods, and leave-one-cell-out cross-validation of each.

Methods (each maps the runs of some cells to a predictor (N, D) -> (lr, B_tokens)):

- ``surface`` (default): the joint loss surface of :mod:`advisor.fit.surface`, whose minimum
  is a power law in N and D; every run near a cell's optimum informs the law.
- ``optima``: the smooth optimum of each cell (:mod:`advisor.fit.optima`), then power laws
  lr*(N, D) and B*(N, D) by least squares on logs.
- ``best-point``: the best grid run of each cell, then lr*(N, D) and B*(D) by least squares
  on logs -- the plain refit of Step Law's form, kept as the baseline.

Cross-validation holds each cell out in turn, fits on the others, and scores the held-out
cell by :func:`advisor.fit.gaps.cell_gap`. That is the figure to choose a method by; an
in-sample gap rewards overfitting.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from advisor.errors import AdvisorError
from advisor.fit.gaps import cell_gap, summarize
from advisor.fit.optima import all_optima
from advisor.fit.powerlaw import fit_power_law
from advisor.fit.surface import (SurfaceOptions, average_power_law, ensemble_options,
                                 fit_surface)
from advisor.runs import RunTable

METHODS = ("surface", "optima", "best-point")
MIN_CELLS = 4


@dataclass
class LRBatchLaws:
    """Fitted LR and batch laws as power laws, with what the method needs to explain them."""

    method: str
    lr: tuple                       # (coefficient, {VAR: exponent}, log_covariance or None)
    batch: tuple | None             # same, batch in tokens; None when the grid has one batch
    cells: list                     # (N, D) of the cells fitted
    detail: object = None           # SurfaceFit, or list of CellOptimum
    extra: dict = field(default_factory=dict)

    def predict(self, N, D):
        lr = _pl(self.lr, N, D)
        b = _pl(self.batch, N, D) if self.batch is not None else None
        return lr, b


def _pl(law, N, D):
    coef, exps, _ = law
    v = {"N": N, "D": D}
    out = coef
    for var, e in exps.items():
        out *= v[var] ** e
    return out


def check_grid(table: RunTable, cells=None) -> None:
    """Refuse grids the LR/batch laws cannot be fitted from, saying what is missing."""
    idx = table.cell_index
    use = range(len(table.cells)) if cells is None else cells
    if len(list(use)) < MIN_CELLS:
        raise AdvisorError(f"the LR law needs at least {MIN_CELLS} (N, D) cells (3 constants "
                           f"plus one to spare), got {len(list(use))}")
    for c in use:
        m = idx == c
        fin = m & table.finished
        N, D = table.cells[c]
        if not fin.any():
            raise AdvisorError(f"cell N={N:.3g}, D={D:.3g}: all {int(m.sum())} runs diverged; "
                               "no optimum to fit (lower its LRs)")
        n_lr = len(np.unique(table.lr[fin]))
        if n_lr < 3:
            raise AdvisorError(f"cell N={N:.3g}, D={D:.3g} has {n_lr} distinct LR(s) among "
                               "finished runs; an optimum needs at least 3 LRs per cell")
    Ns = {table.cells[c][0] for c in use}
    Ds = {table.cells[c][1] for c in use}
    if len(Ns) < 2 and len(Ds) < 2:
        raise AdvisorError(f"the LR law needs cells at 2 or more model sizes or token counts; "
                           f"all {len(list(use))} cells have N={min(Ns):.3g}, D={min(Ds):.3g}")


def batch_varies(table: RunTable) -> bool:
    idx = table.cell_index
    fin = table.finished
    return all(len(np.unique(table.batch_tokens[(idx == c) & fin])) >= 3
               for c in range(len(table.cells)))


def fit_lr_batch(table: RunTable, method: str = "surface", cells=None, *,
                 options: SurfaceOptions = SurfaceOptions(), optima=None,
                 batch_vars=None) -> LRBatchLaws:
    """Fit the LR and batch laws on ``cells`` (indices into table.cells; default all).

    ``batch_vars``: the variables of the batch law, ("N", "D") (default), ("D",) or ("N",);
    best-point defaults to ("D",), Step Law's form.
    """
    if method not in METHODS:
        raise AdvisorError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if batch_vars is not None:
        batch_vars = tuple(batch_vars)
        if batch_vars not in (("N", "D"), ("D",), ("N",)):
            raise AdvisorError(f"batch law variables must be N,D or D or N, got {batch_vars}")
    cells = list(range(len(table.cells))) if cells is None else list(cells)
    check_grid(table, cells)
    with_batch = batch_varies(table)
    keys = [table.cells[c] for c in cells]
    if method == "surface":
        if batch_vars is not None:
            options = replace(options, batch_vars=batch_vars)
        return _fit_surface(table, cells, keys, with_batch, options)
    if method == "optima":
        opts = optima if optima is not None else all_optima(table, n_bootstrap=0)
        pts = [opts[c] for c in cells]
        lr = np.array([o.optimum["learning_rate"] for o in pts])
        b = (np.array([o.optimum.get("batch_size", np.nan) for o in pts]) if with_batch
             else None)
        return _two_step(method, lr, b, keys, batch_vars or ("N", "D"), pts)
    # best-point
    idx = table.cell_index
    lr, b = [], []
    for c in cells:
        fin = (idx == c) & table.finished
        i = np.flatnonzero(fin)[np.argmin(table.loss[fin])]
        lr.append(table.lr[i])
        b.append(table.batch_tokens[i])
    return _two_step(method, np.array(lr), np.array(b) if with_batch else None, keys,
                     batch_vars or ("D",), None)


def _two_step(method, lr, b, keys, batch_vars, detail):
    N = np.array([k[0] for k in keys])
    D = np.array([k[1] for k in keys])
    # a variable the cells do not vary cannot be in a law (a width sweep at one D: lr*(N))
    v = {k: x for k, x in (("N", N), ("D", D)) if len(np.unique(x)) > 1}
    batch_vars = tuple(k for k in batch_vars if k in v) or tuple(v)
    law = fit_power_law(lr, v, what="learning-rate")
    out_lr = (law.coefficient, law.exponents, law.log_covariance)
    out_b = None
    if b is not None:
        bl = fit_power_law(b, {k: v[k] for k in batch_vars}, what="batch-size")
        out_b = (bl.coefficient, bl.exponents, bl.log_covariance)
    return LRBatchLaws(method=method, lr=out_lr, batch=out_b, cells=keys, detail=detail,
                       extra={"rms_log_residual_lr": law.rms_log_residual})


def _fit_surface(table, cells, keys, with_batch, options):
    idx = table.cell_index
    fin = table.finished
    axes = ("learning_rate", "batch_size") if with_batch else ("learning_rate",)
    X = np.column_stack([np.log(table.lr[fin])]
                        + ([np.log(table.batch_tokens[fin])] if with_batch else []))
    cN = np.log([c[0] for c in table.cells])
    cD = np.log([c[1] for c in table.cells])
    notes = []
    members = ensemble_options(options) if options.ensemble else [options]
    try:
        fits = [fit_surface(X, idx[fin], cN, cD, table.loss[fin], axes, options=o, cells=cells)
                for o in members]
    except AdvisorError as exc:
        if "too few runs" not in str(exc):
            raise
        # a small sweep: one shared quadratic bowl over a wider window
        small = replace(options, degree=2, shape_varies=False, ensemble=False,
                        window=max(max(o.window for o in members), 0.05))
        try:
            fits = [fit_surface(X, idx[fin], cN, cD, table.loss[fin], axes, options=small,
                                cells=cells)]
        except AdvisorError as exc2:
            raise AdvisorError(f"{exc2}; try --method optima") from None
        notes.append(f"few runs near the optima: the surface was a shared quadratic over a "
                     f"{small.window:.0%} window instead of degree {options.degree}")
    fit = fits[0]
    out_lr = average_power_law(fits, "learning_rate")
    out_b = average_power_law(fits, "batch_size") if with_batch else None
    not_bowl = [k for k in keys
                if any(np.any(np.linalg.eigvalsh(f.hessian(*k)) <= 0) for f in fits)]
    return LRBatchLaws(method="surface", lr=out_lr, batch=out_b, cells=keys, detail=fit,
                       extra={"rms_log_residual_runs": fit.rms, "runs_in_fit": fit.n_runs,
                              "cells_not_bowl": not_bowl, "notes": notes,
                              "members": [(f.options.window, f.options.f_scale)
                                          for f in fits]})


def cross_validate(table: RunTable, method: str = "surface", *,
                   options: SurfaceOptions = SurfaceOptions(), progress=None,
                   batch_vars=None) -> list[dict]:
    """Leave-one-cell-out gaps: each cell scored by a law fitted without it."""
    n = len(table.cells)
    check_grid(table)
    if n < MIN_CELLS + 1:
        raise AdvisorError(f"cross-validation needs at least {MIN_CELLS + 1} cells (a fit "
                           f"needs {MIN_CELLS} after holding one out), got {n}")
    idx = table.cell_index
    optima = all_optima(table, n_bootstrap=0) if method == "optima" else None
    out = []
    for c in range(n):
        laws = fit_lr_batch(table, method, [i for i in range(n) if i != c], options=options,
                            optima=optima, batch_vars=batch_vars)
        lr, b = laws.predict(*table.cells[c])
        out.append(cell_gap(table, idx == c, lr, b))
        if progress is not None:
            progress(c + 1, n)
    return out


def in_sample(table: RunTable, laws: LRBatchLaws) -> list[dict]:
    idx = table.cell_index
    return [cell_gap(table, idx == c, *laws.predict(*k)) for c, k in enumerate(table.cells)]


__all__ = ["METHODS", "LRBatchLaws", "fit_lr_batch", "cross_validate", "in_sample",
           "summarize", "check_grid"]
