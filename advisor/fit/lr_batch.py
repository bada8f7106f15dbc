"""LR and batch laws by three methods, and leave-one-cell-out cross-validation of each.

Methods (each maps the runs of some cells to a predictor (N, D) -> (lr, B_tokens)):

- ``surface`` (default): the joint loss surface of :mod:`advisor.fit.surface`, whose minimum
  is a power law (LR in N and D, batch in D by default); every run near a cell's optimum
  informs the law.
- ``optima``: the smooth optimum of each cell (:mod:`advisor.fit.optima`), then power laws
  lr*(N, D) and B*(N, D) by least squares on logs.
- ``best-point``: the best grid run of each cell, then lr*(N, D) and B*(D) by least squares
  on logs -- the plain refit of Step Law's form, kept as the baseline.

Two kinds of cross-validation score a law on cells it never saw, by
:func:`advisor.fit.gaps.cell_gap`:

- leave-one-cell-out (:func:`cross_validate`): each cell held out in turn, fitted on the
  others -- the interpolation figure;
- extrapolation (:func:`extrapolation_cv`): the cells at the largest N held out together,
  then the largest D, the smallest N and the smallest D (see :func:`holdout_folds`), fitted
  on the rest -- how the law does beyond its fitted range, which is how users apply it.

An in-sample gap rewards overfitting. Which exponents a set of cells can identify is decided
in one place, :mod:`advisor.fit.identify`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from advisor.errors import AdvisorError
from advisor.fit.gaps import cell_gap, summarize
from advisor.fit.identify import MIN_CELLS, check_cells, identifiable
from advisor.fit.optima import all_optima
from advisor.fit.powerlaw import PowerLaw, fit_power_law
from advisor.fit.surface import (SurfaceOptions, average_power_law, ensemble_options,
                                 fit_surface)
from advisor.runs.table import RunTable

METHODS = ("surface", "optima", "best-point")
HOLDOUT_FRACTION = 0.25      # an extrapolation fold holds out at least this share of cells
MIN_HOLDOUT = 2
FOLDS = ("largest-N", "largest-D", "smallest-N", "smallest-D")
UPWARD = ("largest-N", "largest-D")


@dataclass
class LRBatchLaws:
    """Fitted LR and batch laws as power laws, with what the method needs to explain them."""

    method: str
    lr: PowerLaw                    # peak LR
    batch: PowerLaw | None          # batch in tokens; None when the grid has one batch
    cells: list                     # (N, D) of the cells fitted
    detail: object = None           # SurfaceFit, or list of CellOptimum
    extra: dict = field(default_factory=dict)
    status: list = field(default_factory=list)   # FitStatus of each optimizer call
    notes: list = field(default_factory=list)    # variables left out, fallbacks

    def predict(self, N, D):
        """(peak LR, batch in tokens or None) at N, D; refuses a non-finite prediction."""
        lr = _predict(self.lr, N, D, "learning rate")
        b = _predict(self.batch, N, D, "batch size") if self.batch is not None else None
        return lr, b


def _predict(law: PowerLaw, N, D, what):
    """The law at (N, D), in logs: a huge exponent gives a clear refusal, not overflow."""
    try:
        return law.predict(N=N, D=D)
    except AdvisorError as exc:
        raise AdvisorError(f"the fitted {what} law {exc}") from None


def check_grid(table: RunTable, cells=None) -> None:
    """Refuse grids the LR/batch laws cannot be fitted from, saying what is missing."""
    idx = table.cell_index
    use = list(range(len(table.cells)) if cells is None else cells)
    check_cells(len(use))
    for c in use:
        m = idx == c
        fin = m & table.finished
        where = f"cell {table.cell_label(c)}"
        if not fin.any():
            raise AdvisorError(f"{where}: all {int(m.sum())} runs diverged; "
                               "no optimum to fit (lower its LRs)")
        n_lr = len(np.unique(table.lr[fin]))
        if n_lr < 3:
            raise AdvisorError(f"{where} has {n_lr} distinct LR(s) among "
                               "finished runs; an optimum needs at least 3 LRs per cell")
    identifiable(_cell_values(table, use), ("N", "D"), "LR")


def _cell_values(table, cells):
    return {"N": np.array([table.cells[c][0] for c in cells]),
            "D": np.array([table.cells[c][1] for c in cells])}


def batch_varies(table: RunTable) -> bool:
    idx = table.cell_index
    fin = table.finished
    return all(len(np.unique(table.batch_tokens[(idx == c) & fin])) >= 3
               for c in range(len(table.cells)))


def fit_lr_batch(table: RunTable, method: str = "surface", cells=None, *,
                 options: SurfaceOptions = SurfaceOptions(), optima=None,
                 batch_vars=None) -> LRBatchLaws:
    """Fit the LR and batch laws on ``cells`` (indices into table.cells; default all).

    ``options.lr_vars``: the variables of the LR law, ("N", "D") by default; ("D",) for a muP
    base LR, whose width dependence muP's rules give (:mod:`advisor.fit.transfer` measures
    the N exponent as a check instead).
    ``batch_vars``: the variables of the batch law, ("N", "D"), ("D",) or ("N",). Defaults,
    chosen by extrapolation CV (docs/fitting.md): ("D",) for surface and best-point (Step
    Law's form), ("N", "D") for optima.
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
    values = _cell_values(table, cells)
    wanted_b = batch_vars or (options.batch_vars if method == "surface"
                              else ("N", "D") if method == "optima" else ("D",))
    lr_vars, notes = identifiable(values, tuple(options.lr_vars), "learning-rate")
    b_vars = None
    if with_batch:
        try:
            b_vars, bnotes = identifiable(values, wanted_b, "batch-size")
        except AdvisorError:
            # none of the asked-for variables is identified: fall back to those that are
            b_vars, bnotes = identifiable(values, ("N", "D"), "batch-size")
            bnotes = [f"the batch-size law cannot use {', '.join(wanted_b)} here; fitted in "
                      f"{', '.join(b_vars)} instead"] + bnotes
        notes = notes + bnotes
    if method == "surface":
        options = replace(options, batch_vars=b_vars or options.batch_vars, lr_vars=lr_vars)
        laws = _fit_surface(table, cells, keys, with_batch, options)
    elif method == "optima":
        opts = optima if optima is not None else all_optima(table, n_bootstrap=0)
        pts = [opts[c] for c in cells]
        lr = np.array([o.optimum["learning_rate"] for o in pts])
        b = (np.array([o.optimum.get("batch_size", np.nan) for o in pts]) if with_batch
             else None)
        laws = _two_step(method, lr, b, keys, lr_vars, b_vars, pts)
    else:
        laws = _best_point(table, cells, keys, with_batch, lr_vars, b_vars)
    laws.notes = notes + laws.notes
    return laws


def _best_point(table, cells, keys, with_batch, lr_vars, b_vars):
    # best-point
    idx = table.cell_index
    lr, b = [], []
    for c in cells:
        fin = (idx == c) & table.finished
        i = np.flatnonzero(fin)[np.argmin(table.loss[fin])]
        lr.append(table.lr[i])
        b.append(table.batch_tokens[i])
    return _two_step("best-point", np.array(lr), np.array(b) if with_batch else None, keys,
                     lr_vars, b_vars, None)


def _two_step(method, lr, b, keys, lr_vars, b_vars, detail):
    """Least squares on logs through per-cell points, in the identified variables only."""
    v = {"N": np.array([k[0] for k in keys]), "D": np.array([k[1] for k in keys])}
    law = fit_power_law(lr, {k: v[k] for k in lr_vars}, what="learning-rate")
    out_b = None
    if b is not None:
        out_b = fit_power_law(b, {k: v[k] for k in b_vars}, what="batch-size")
    return LRBatchLaws(method=method, lr=law, batch=out_b, cells=keys, detail=detail,
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
    status = [f.status for f in fits if f.status is not None]
    out_lr = average_power_law(fits, "learning_rate")
    out_b = average_power_law(fits, "batch_size") if with_batch else None
    not_bowl = [k for k in keys
                if any(np.any(np.linalg.eigvalsh(f.hessian(*k)) <= 0) for f in fits)]
    return LRBatchLaws(method="surface", lr=out_lr, batch=out_b, cells=keys, detail=fit,
                       extra={"rms_log_residual_runs": fit.rms, "runs_in_fit": fit.n_runs,
                              "cells_not_bowl": not_bowl, "notes": notes,
                              "members": [(f.options.window, f.options.f_scale)
                                          for f in fits]},
                       status=status)


def cross_validate(table: RunTable, method: str = "surface", *,
                   options: SurfaceOptions = SurfaceOptions(), progress=None,
                   batch_vars=None) -> list[dict]:
    """Leave-one-cell-out gaps: each cell scored by a law fitted without it."""
    n = len(table.cells)
    check_grid(table)
    if n < MIN_CELLS + 1:
        raise AdvisorError(f"cross-validation needs at least {MIN_CELLS + 1} cells (a fit "
                           f"needs {MIN_CELLS} after holding one out), got {n}")
    optima = all_optima(table, n_bootstrap=0) if method == "optima" else None
    out = []
    for c in range(n):
        out += _score_holdout(table, method, [c], options, optima, batch_vars)
        if progress is not None:
            progress(c + 1, n)
    return out


def _score_holdout(table, method, held, options, optima, batch_vars):
    """Fit on every cell but ``held``; the gap of each held-out cell (with the law's notes)."""
    idx = table.cell_index
    train = [i for i in range(len(table.cells)) if i not in set(held)]
    laws = fit_lr_batch(table, method, train, options=options, optima=optima,
                        batch_vars=batch_vars)
    out = []
    for c in held:
        g = cell_gap(table, idx == c, *laws.predict(*table.cells[c]))
        g["fit_notes"] = list(laws.notes)
        g["fit_warnings"] = [s.warning() for s in laws.status if s.warning()]
        out.append(g)
    return out


def holdout_folds(table: RunTable) -> dict:
    """Extrapolation folds: {name: cell indices held out}.

    ``largest-N`` holds out the cells at the largest N values, adding whole N values (ties
    stay together) until at least HOLDOUT_FRACTION of the cells (and MIN_HOLDOUT) are out;
    ``largest-D``, ``smallest-N`` and ``smallest-D`` likewise. The law is fitted on the
    other cells and scored on these: the upward folds are how users apply a law (to a larger
    model or a longer run), the downward ones how they apply it to a cheaper proxy.
    """
    n = len(table.cells)
    need = max(MIN_HOLDOUT, int(np.floor(HOLDOUT_FRACTION * n)))
    folds = {}
    for name in FOLDS:
        side, var = name.split("-")
        j = 0 if var == "N" else 1
        vals = np.array([c[j] for c in table.cells])
        order = sorted(np.unique(vals), reverse=(side == "largest"))
        held = []
        for v in order:
            if len(held) >= need:
                break
            held += [c for c in range(n) if vals[c] == v]
        folds[name] = held
    return folds


def extrapolation_cv(table: RunTable, method: str = "surface", *,
                     options: SurfaceOptions = SurfaceOptions(), batch_vars=None,
                     progress=None, folds=FOLDS) -> dict:
    """Gaps of each extrapolation fold: {fold: {"held_out": [...], "cells": [gap dicts]}}.

    A fold whose training cells cannot support the law (too few, or a range the
    identifiability rule refuses for every variable) gets ``"refused": reason`` instead of
    cells; it is reported, never silently dropped.
    """
    check_grid(table)
    optima = all_optima(table, n_bootstrap=0) if method == "optima" else None
    out = {}
    all_folds = holdout_folds(table)
    for i, name in enumerate(folds):
        held = all_folds[name]
        entry = {"held_out": [table.cell_label(c) for c in held]}
        try:
            entry["cells"] = _score_holdout(table, method, held, options, optima, batch_vars)
        except AdvisorError as exc:
            entry["refused"] = str(exc)
        out[name] = entry
        if progress is not None:
            progress(i + 1, len(folds))
    return out


def extrapolation_summary(folds: dict) -> dict:
    """Per fold: summary (or the refusal); plus the pooled upward and downward figures."""
    out = {}
    pooled = {"upward": [], "downward": []}
    for name, entry in folds.items():
        if "cells" not in entry:
            out[name] = {"refused": entry["refused"]}
            continue
        out[name] = summarize(entry["cells"])
        pooled["upward" if name in UPWARD else "downward"] += entry["cells"]
    for k, cells in pooled.items():
        if cells:
            out[k] = summarize(cells)
    return out


def in_sample(table: RunTable, laws: LRBatchLaws) -> list[dict]:
    idx = table.cell_index
    return [cell_gap(table, idx == c, *laws.predict(*k)) for c, k in enumerate(table.cells)]


__all__ = ["METHODS", "FOLDS", "LRBatchLaws", "fit_lr_batch", "cross_validate",
           "extrapolation_cv", "extrapolation_summary", "holdout_folds", "in_sample",
           "summarize", "check_grid"]
