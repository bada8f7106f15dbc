"""How good a predicted (LR, batch) is on a grid: the loss of the nearest run vs the best.

Step Law's figure of merit (Li et al. 2025, arXiv:2503.04715, Sec. 3): in each (N, D) cell,
take the run nearest to the prediction in (ln lr, ln B) and report its loss relative to the
cell's best run. Grid axes the prediction does not give (a law set without a batch law, or a
weight-decay axis) are held at the best run's values. A nearest run that diverged counts as
an infinite gap. A prediction that is not a finite positive number is refused (AdvisorError),
never scored: with NaN distances every run would tie and the "nearest" would be the first.
"""
from __future__ import annotations

import numpy as np

from advisor.errors import AdvisorError
from advisor.runs.table import RunTable


def _check_prediction(value, what, where):
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        v = float("nan")
    if not (np.isfinite(v) and v > 0):
        raise AdvisorError(f"the law's {what} prediction at {where} is {value!r}, not a finite "
                           "positive number; it is not scored")
    return v


def cell_gap(table: RunTable, mask, lr: float, batch_tokens: float | None = None) -> dict:
    """Gap of the prediction in one cell (``mask`` selects its runs)."""
    fin = mask & table.finished
    best_i = np.flatnonzero(fin)[np.argmin(table.loss[fin])]
    where = f"N={table.N[best_i]:.3g}, D={table.D[best_i]:.3g}"
    lr = _check_prediction(lr, "learning-rate", where)
    if batch_tokens is not None:
        batch_tokens = _check_prediction(batch_tokens, "batch-size", where)
    cand = mask.copy()
    if batch_tokens is None:
        cand &= np.isclose(table.batch_tokens, table.batch_tokens[best_i])
    wd = table.weight_decay
    if np.isfinite(wd[best_i]):
        cand &= np.isclose(wd, wd[best_i])
    idx = np.flatnonzero(cand)
    dist = (np.log(table.lr[idx]) - np.log(lr)) ** 2
    if batch_tokens is not None:
        dist = dist + (np.log(table.batch_tokens[idx]) - np.log(batch_tokens)) ** 2
    if not np.all(np.isfinite(dist)):          # cannot happen after the checks; never guess
        raise AdvisorError(f"cell {where}: distances to the prediction are not finite")
    j = idx[np.argmin(dist)]
    best = float(table.loss[best_i])
    loss = float(table.loss[j]) if np.isfinite(table.loss[j]) else float("inf")
    return {
        "N": float(table.N[best_i]), "D": float(table.D[best_i]),
        "pred_lr": float(lr), "pred_batch_tokens": None if batch_tokens is None
        else float(batch_tokens),
        "nearest_lr": float(table.lr[j]), "nearest_batch_tokens": float(table.batch_tokens[j]),
        "nearest_loss": loss, "nearest_diverged": bool(table.diverged[j]),
        "best_lr": float(table.lr[best_i]), "best_batch_tokens": float(table.batch_tokens[best_i]),
        "best_loss": best, "gap": loss / best - 1.0,
    }


def summarize(gaps: list[dict]) -> dict:
    """Mean, median and max gap over cells (as fractions; x100 for percent)."""
    g = np.array([c["gap"] for c in gaps], float)
    return {"cells": len(g), "mean_gap": float(np.mean(g)), "median_gap": float(np.median(g)),
            "max_gap": float(np.max(g))}


def check_grid_variables(lawset, table: RunTable) -> None:
    """Refuse (AdvisorError, one line naming what is missing) a law set whose LR or batch law
    reads the width W (d_model) when the grid records no width: Step Law's ``h`` column,
    which a results store writes too."""
    from advisor.laws.lawforms import variables_needed

    needed = set().union(*(variables_needed(lawset.laws[q])
                           for q in ("learning_rate", "batch_size") if lawset.has(q)))
    if "W" in needed and table.width is None:
        raise AdvisorError(f"law set {lawset.name!r} predicts from the width W (d_model, "
                           f"channels), and {table.source} records none: it needs Step Law's "
                           "'h' column (a results store writes it)")


def lawset_gaps(table: RunTable, lawset) -> list[dict]:
    """Gap of a law set's (LR, batch) prediction in every cell of the table.

    N is passed as the grid counts it; the caller is told (``advisor evaluate`` prints it)
    when the set's ``conventions.params`` differs from the grid's (non-embedding). The other
    variables (DeepSeek's M, the width W) are the cell's (``RunTable.cell_variables``).
    """
    check_grid_variables(lawset, table)
    idx = table.cell_index
    has_batch = lawset.has("batch_size")
    out = []
    for c, (N, D) in enumerate(table.cells):
        extra = table.cell_variables(c)
        b = None
        try:
            lr = lawset.predict("learning_rate", N=N, D=D, **extra)
            if has_batch:
                b = lawset.batch_tokens(lawset.predict("batch_size", N=N, D=D, **extra))
        except (OverflowError, ZeroDivisionError):
            raise AdvisorError(f"law set {lawset.name}: its prediction at N={N:.3g}, "
                               f"D={D:.3g} overflows; it is not scored") from None
        out.append(cell_gap(table, idx == c, lr, b))
    return out
