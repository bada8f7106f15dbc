"""Which exponents a set of cells can identify: the one rule every LR/batch fitter uses.

An exponent of a power law in N (or D) is only estimated from how the optimum moves across
cells that differ in N (or D). With too narrow a range the slope is noise divided by a tiny
lever arm (a grid whose N spans 0.26% gives exponents of order 1e3 and predictions of 0 or
inf), so the rule is:

    an exponent in VAR needs at least MIN_DISTINCT distinct values of VAR among the cells,
    spanning a factor of at least MIN_FACTOR (ln span >= ln MIN_FACTOR ~ 0.405),

and a law needs at least ``MIN_CELLS`` cells in all. A variable that fails the rule is left
out of the law (the law falls back to the variables the data support, and says so); a law
with no variable left is refused. The factor 1.5 keeps every training set of the
extrapolation folds on Step Law's dense grid (the smallest: N from 215M to 429M, 2.0x)
while refusing spans where a 10% error in one cell's optimum moves the exponent by more
than 0.25 (0.1 / ln 1.5).
"""
from __future__ import annotations

import numpy as np

from advisor.errors import AdvisorError

MIN_FACTOR = 1.5       # max / min of the variable over the cells
MIN_DISTINCT = 2       # distinct values of the variable
MIN_CELLS = 4          # cells for any law (3 constants plus one to spare)


def span_reason(values, var: str) -> str | None:
    """Why an exponent in ``var`` cannot be identified from these cell values, or None."""
    v = np.unique(np.asarray(values, float))
    if len(v) < MIN_DISTINCT:
        return f"all cells have {var}={v[0]:.4g}" if len(v) else "no cells"
    factor = float(v.max() / v.min())
    if factor < MIN_FACTOR:
        return (f"{var} spans only {100 * (factor - 1):.2g}% ({v.min():.4g} to {v.max():.4g}); "
                f"an exponent in {var} needs a range of at least {MIN_FACTOR}x")
    return None


def identifiable(cell_values: dict, wanted, what: str):
    """The variables of ``wanted`` the cells identify, and notes on the ones left out.

    ``cell_values``: {"N": per-cell N, "D": per-cell D}. Raises AdvisorError when none of
    ``wanted`` is identifiable (a law of a constant is not a scaling law).
    """
    keep, notes = [], []
    reasons = {}
    for var in wanted:
        r = span_reason(cell_values[var], var)
        if r is None:
            keep.append(var)
        else:
            reasons[var] = r
    if not keep:
        raise AdvisorError(f"the {what} law cannot be fitted: "
                           + "; ".join(reasons.values()))
    for var, r in reasons.items():
        notes.append(f"the {what} law has no {var} exponent ({r}): fitted as a law in "
                     f"{', '.join(keep)} only")
    return tuple(keep), notes


def check_cells(n_cells: int, what: str = "LR") -> None:
    if n_cells < MIN_CELLS:
        raise AdvisorError(f"the {what} law needs at least {MIN_CELLS} (N, D) cells (3 "
                           f"constants plus one to spare), got {n_cells}")
