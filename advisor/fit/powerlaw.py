"""Power laws y = k * N^a * D^b: the one type every fitter returns, and the log-space fit.

:class:`PowerLaw` is how every fitter of this package hands over a power law (the two-step
LR and batch laws, the surface fit's optimum, the ensemble average, the critical batch, the
AdamW timescale) and how the law-set file's ``power_law`` entries are read back
(:meth:`PowerLaw.from_law`) and written (:meth:`PowerLaw.to_law`).

``fit_power_law`` is weighted least squares of ln y on (1, ln N, ln D); its covariance of
(ln k, a, b) is the usual OLS one scaled by the residual variance (what the law-set schema
calls ``log_covariance``). Used for the two-step LR and batch laws (per-cell optima, then a
law), the critical batch size B_crit(D) and the AdamW timescale tau(TPP).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from advisor.errors import AdvisorError
from advisor.runs.table import RunTable

VAR_NAMES = ("N", "D", "TPP")
MAX_LN = 700.0            # |ln y| beyond this over- or underflows a float64


def rounded(x, digits: int = 6) -> float:
    """x to ``digits`` significant digits: how a law file writes its numbers."""
    return float(f"{float(x):.{digits}g}")


@dataclass(frozen=True)
class PowerLaw:
    """y = coefficient * prod VAR^exponent, in the units of the quantity it predicts.

    ``exponents``: {VAR: exponent}, in the order of the covariance; ``log_covariance``:
    (1 + k) x (1 + k) covariance of (ln coefficient, exponents...), or None where the fit
    gives none; ``rms_log_residual`` and ``n_points``: the fit's residual and size, None
    where not a direct fit (an average of fits, a law read from a file).
    """

    coefficient: float
    exponents: dict
    log_covariance: list | None = None
    rms_log_residual: float | None = None
    n_points: int | None = None

    def log_value(self, **v) -> float:
        """ln y at the variables ``v`` (each positive, in the law's units)."""
        return float(np.log(self.coefficient)) + sum(
            e * float(np.log(v[var])) for var, e in self.exponents.items())

    def predict(self, **v) -> float:
        """y at ``v``, computed in logs; a value that is 0, inf or NaN is refused.

        A law whose exponents the data did not pin down can predict 1e-300 or 1e300 one
        size beyond its cells: that is one clear error, never a number in the output.
        """
        ln = self.log_value(**v)
        if not np.isfinite(ln) or abs(ln) > MAX_LN:
            value = "NaN" if np.isnan(ln) else "0" if ln < 0 else "inf"
            at = ", ".join(f"{k}={float(x):.3g}" for k, x in v.items())
            raise AdvisorError(f"predicts {value} at {at} (exponents "
                               + ", ".join(f"{k} {e:.3g}" for k, e in self.exponents.items())
                               + "): the cells do not identify it")
        return float(np.exp(ln))

    def is_finite(self) -> bool:
        return bool(np.isfinite(self.coefficient) and self.coefficient > 0
                    and all(np.isfinite(list(self.exponents.values()))))

    def describe(self) -> str:
        """E.g. "1.911 N^-0.621 D^+0.230"."""
        return " ".join([f"{self.coefficient:.4g}"]
                        + [f"{k}^{v:+.3f}" for k, v in self.exponents.items()])

    def to_law(self, *, unit: str, fitted_range: Mapping, note: str,
               form: str = "power_law", uncertainty: bool = True) -> dict:
        """The law-set file entry (recipes/laws/SCHEMA.md), numbers to 6 significant digits.

        ``form``: ``power_law``, or ``adamw_timescale`` (whose tau has the same constants);
        ``uncertainty``: write ``log_covariance`` where it is known and finite. A law with a
        non-finite constant is refused: nothing is written.
        """
        if not self.is_finite():
            raise AdvisorError(f"a fitted law ({unit}) has a non-finite constant (coefficient "
                               f"{self.coefficient!r}, exponents {self.exponents}); nothing "
                               "is written")
        entry = {"form": form, "coefficient": rounded(self.coefficient),
                 "exponents": {k: rounded(v) for k, v in self.exponents.items()},
                 "unit": unit, "fitted_range": dict(fitted_range), "note": note}
        cov = self.log_covariance
        if uncertainty and cov is not None and np.all(np.isfinite(cov)):
            entry["uncertainty"] = {"log_covariance": [[rounded(x, 5) for x in row]
                                                       for row in cov]}
        return entry

    @classmethod
    def from_law(cls, law: Mapping) -> "PowerLaw":
        """A law-set file's ``power_law`` (or ``adamw_timescale``) entry as a PowerLaw."""
        if law.get("form") not in ("power_law", "adamw_timescale"):
            raise AdvisorError(f"not a power law: form {law.get('form')!r}")
        cov = (law.get("uncertainty") or {}).get("log_covariance")
        return cls(coefficient=float(law["coefficient"]),
                   exponents={str(k): float(e) for k, e in law["exponents"].items()},
                   log_covariance=None if cov is None else [[float(x) for x in row]
                                                            for row in cov])


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
