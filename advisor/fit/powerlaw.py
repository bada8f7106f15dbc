"""Power laws y = k * N^a * D^b fitted in log space, and the critical batch size per cell.

``fit_power_law`` is weighted least squares of ln y on (1, ln N, ln D); its covariance of
(ln k, a, b) is the usual OLS one scaled by the residual variance (what the law-set schema
calls ``log_covariance``). Used for the two-step LR and batch laws (per-cell optima, then a
law), the critical batch size B_crit(D) and the AdamW timescale tau(TPP).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from advisor.errors import AdvisorError
from advisor.runs import RunTable

VAR_NAMES = ("N", "D", "TPP")


@dataclass
class PowerLaw:
    coefficient: float
    exponents: dict               # VAR -> exponent, in the order of the covariance
    log_covariance: list          # (1 + k) x (1 + k): ln coefficient, exponents
    rms_log_residual: float
    n_points: int

    def predict(self, **v) -> float:
        out = self.coefficient
        for var, e in self.exponents.items():
            out *= float(v[var]) ** e
        return out


def fit_power_law(y, variables: dict, *, weights=None, what: str = "quantity") -> PowerLaw:
    """Fit y = k * prod VAR^e by (weighted) least squares on logs.

    ``variables``: {name: array}, e.g. {"N": N, "D": D}. Needs more points than constants.
    """
    y = np.asarray(y, float)
    names = list(variables)
    n_const = 1 + len(names)
    if len(y) <= n_const:
        raise AdvisorError(f"the {what} law needs at least {n_const + 1} cells to fit "
                           f"{n_const} constants, got {len(y)}")
    cols = [np.ones(len(y))]
    for name in names:
        x = np.asarray(variables[name], float)
        if len(np.unique(x)) < 2:
            raise AdvisorError(f"the {what} law needs at least 2 distinct values of {name}, "
                               f"got {len(np.unique(x))}")
        cols.append(np.log(x))
    A = np.column_stack(cols)
    if np.linalg.matrix_rank(A) < n_const:
        raise AdvisorError(f"the {what} law cannot separate "
                           f"{' and '.join(names)}: the cells vary them together")
    w = np.ones(len(y)) if weights is None else np.asarray(weights, float)
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(A * sw[:, None], np.log(y) * sw, rcond=None)
    r = np.log(y) - A @ coef
    dof = max(len(y) - n_const, 1)
    s2 = float(np.sum(w * r ** 2) / dof)
    cov = np.linalg.pinv((A * w[:, None]).T @ A) * s2
    return PowerLaw(coefficient=float(np.exp(coef[0])),
                    exponents={n: float(c) for n, c in zip(names, coef[1:])},
                    log_covariance=cov.tolist(),
                    rms_log_residual=float(np.sqrt(np.mean(r ** 2))), n_points=len(y))


def critical_batch(table: RunTable, mask, *, tolerance: float = 0.01):
    """Critical batch size (tokens) of one cell, or None where the grid does not bracket it.

    Operational definition at a fixed token budget: for each batch size take the best loss
    over LR; B_crit is the batch, interpolated in ln B, above which that loss first exceeds
    the cell's best by more than ``tolerance`` (relative). It is only reported when the grid
    has batch sizes on both sides of it (some above, within tolerance at or below).
    """
    fin = mask & table.finished
    b = table.batch_tokens[fin]
    L = table.loss[fin]
    sizes = np.unique(b)
    if len(sizes) < 3:
        return None
    best = np.array([L[b == s].min() for s in sizes])
    excess = best / best.min() - 1
    i_opt = int(np.argmin(best))
    above = np.nonzero((np.arange(len(sizes)) > i_opt) & (excess > tolerance))[0]
    if len(above) == 0:
        return None
    j = above[0]
    lo, hi = np.log(sizes[j - 1]), np.log(sizes[j])
    e_lo, e_hi = excess[j - 1], excess[j]
    t = (tolerance - e_lo) / (e_hi - e_lo) if e_hi > e_lo else 0.0
    return float(np.exp(lo + t * (hi - lo)))
