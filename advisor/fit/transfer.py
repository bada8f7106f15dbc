"""The muP transfer check: the N exponent of a muP base LR, measured, not fitted into the law.

Under muP the optimal *base-width* LR should not depend on width (Tensor Programs V, Yang et
al. 2022): the width dependence of every group's LR is given by muP's rules
(``advisor.optim_rules``). So a law set fitted from a muP sweep (LR convention ``mup_base``)
has an LR law in D (and batch) only, and the N exponent is estimated separately, with the
same fitter and options, as a check: an interval that holds 0, or an exponent whose size is
below :data:`TOLERANCE`, says transfer held over the calibrated widths; otherwise the base LR
drifts with width and the note says by how much per doubling.

Units: the exponent is dimensionless (d ln lr / d ln N).
"""
from __future__ import annotations

import math
from dataclasses import replace

from advisor.errors import AdvisorError

Z95 = 1.959964
TOLERANCE = 0.1     # |exponent| below this: LR changes by < 7% per doubling of N


def n_exponent_check(table, method: str, options) -> dict:
    """{"exponent", "interval_95", "holds", "note"} of the base LR's N exponent, or
    {"refused": reason} when the cells do not identify it."""
    from advisor.fit.identify import span_reason
    from advisor.fit.lr_batch import fit_lr_batch

    why = span_reason([c[0] for c in table.cells], "N")
    if why:
        return {"refused": f"the N exponent is not measured: {why}"}
    try:
        laws = fit_lr_batch(table, method, options=replace(options, lr_vars=("N", "D")))
    except AdvisorError as exc:
        return {"refused": f"the N exponent is not measured: {exc}"}
    law = laws.lr
    if "N" not in law.exponents:
        return {"refused": "the N exponent is not measured: the cells do not identify it"}
    e = float(law.exponents["N"])
    names = list(law.exponents)
    cov = law.log_covariance
    sd = math.nan
    if cov is not None:
        var = cov[1 + names.index("N")][1 + names.index("N")]
        sd = math.sqrt(var) if var is not None and var >= 0 else math.nan
    if not math.isfinite(e) or not math.isfinite(sd):
        return {"refused": "the N exponent's fit gave no finite value or interval"}
    lo, hi = e - Z95 * sd, e + Z95 * sd
    holds = (lo <= 0 <= hi) or abs(e) < TOLERANCE
    per_doubling = 2.0 ** e
    note = (f"muP base LR ~ N^{e:+.3f} (95% {lo:+.3f} .. {hi:+.3f}) over the calibrated widths: "
            + ("consistent with width transfer" if holds else
               f"the base LR moves x{per_doubling:.3g} per doubling of N; transfer to larger "
               "widths is less certain than the interval of the LR law says"))
    return {"exponent": round(e, 4), "interval_95": [round(lo, 4), round(hi, 4)],
            "holds": bool(holds), "tolerance": TOLERANCE, "note": note}
