"""The outcome of one optimizer call, read rather than ignored (scipy.optimize style).

Every fitter that calls ``scipy.optimize.least_squares`` or L-BFGS keeps a
:class:`FitStatus`: whether the optimizer says it converged, which parameters ended at (or
within ``BOUND_TOL`` of, relative to the allowed range) a bound, which parameters lie along a
flat direction of the fit (not identified by the data, :func:`flat_parameters`), its message
and the number of function evaluations. ``advisor fit`` prints a warning for each status that
is not clean and writes them all into the law file's provenance.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BOUND_TOL = 1e-6


@dataclass
class FitStatus:
    what: str                       # which fit, e.g. "surface (window 1.5%, f_scale 0.1%)"
    converged: bool
    message: str
    nfev: int
    at_bounds: list = field(default_factory=list)   # names of parameters at a bound
    unidentified: list = field(default_factory=list)  # names along a flat direction

    @property
    def clean(self) -> bool:
        return self.converged and not self.at_bounds and not self.unidentified

    def warning(self) -> str | None:
        """One line for the user, or None when the fit ended cleanly."""
        if self.clean:
            return None
        parts = []
        if not self.converged:
            parts.append(f"did not converge ({self.message.strip()}, {self.nfev} evaluations)")
        if self.at_bounds:
            parts.append(f"parameter(s) {', '.join(self.at_bounds)} ended at a bound of their "
                         "allowed range")
        if self.unidentified:
            parts.append(f"the runs do not identify {', '.join(self.unidentified)} (a flat "
                         "direction of the fit: the value found is one of many that fit "
                         "equally well, and its interval does not show it)")
        return f"{self.what}: " + "; ".join(parts)

    def as_dict(self) -> dict:
        return {"what": self.what, "converged": bool(self.converged),
                "at_bounds": list(self.at_bounds),
                "unidentified": list(self.unidentified),
                "message": str(self.message).strip(), "nfev": int(self.nfev)}


def at_bounds(x, lower, upper, names) -> list:
    """Names of the entries of x within BOUND_TOL (relative to the range) of a finite bound."""
    x, lo, hi = (np.broadcast_to(np.asarray(a, float), np.shape(x)) for a in (x, lower, upper))
    width = np.where(np.isfinite(hi - lo), hi - lo, 1.0)
    tol = BOUND_TOL * np.maximum(width, 1e-12)
    hit = (np.isfinite(lo) & (x <= lo + tol)) | (np.isfinite(hi) & (x >= hi - tol))
    return [n for n, h in zip(names, hit) if h]


FLAT_TOL = 1e-10     # singular value / largest, of the column-normalised Jacobian
LOADING_TOL = 1e-3   # component of a (unit) flat direction above which a parameter is named


def flat_parameters(jac, names, *, tol: float = FLAT_TOL) -> list:
    """Names of parameters that move along a flat direction of a least-squares fit.

    ``jac``: (residuals, parameters) Jacobian at the solution. Its columns are normalised
    (so units do not matter); a singular value below ``tol`` times the largest is a
    direction the residuals do not see, and every parameter carrying more than
    ``LOADING_TOL`` of it is named. ``names`` may hold None for parameters not worth naming
    (nuisance ones), which are left out of the answer. Order: that of ``names``.
    """
    J = np.asarray(jac, float)
    norms = np.linalg.norm(J, axis=0)
    J = J / np.where(norms > 0, norms, 1.0)
    _, sv, vt = np.linalg.svd(J, full_matrices=True)
    sv = np.concatenate([sv, np.zeros(J.shape[1] - len(sv))])
    flat = vt[sv <= tol * max(sv[0], 1e-300)]
    if not len(flat):
        return []
    load = np.max(np.abs(flat), axis=0)
    return [n for n, w in zip(names, load) if n is not None and w > LOADING_TOL]


def from_least_squares(res, what: str, names=None, bounds=None) -> FitStatus:
    """Status of a ``least_squares`` result: status 0 (max_nfev reached) or -1 is failure."""
    names = names or [f"p{i}" for i in range(len(res.x))]
    ab = at_bounds(res.x, *bounds, names) if bounds is not None else []
    ok = bool(res.success) and res.status > 0 and bool(np.all(np.isfinite(res.x)))
    return FitStatus(what=what, converged=ok, message=str(res.message), nfev=int(res.nfev),
                     at_bounds=ab)


def from_minimize(res, what: str, names=None, bounds=None) -> FitStatus:
    """Status of a ``scipy.optimize.minimize`` (L-BFGS-B) result."""
    names = names or [f"p{i}" for i in range(len(res.x))]
    ab = []
    if bounds is not None:
        lo = [b[0] if b[0] is not None else -np.inf for b in bounds]
        hi = [b[1] if b[1] is not None else np.inf for b in bounds]
        ab = at_bounds(res.x, lo, hi, names)
    ok = bool(res.success) and bool(np.all(np.isfinite(res.x)))
    return FitStatus(what=what, converged=ok, message=str(res.message),
                     nfev=int(getattr(res, "nfev", 0)), at_bounds=ab)


def warnings_of(statuses) -> list:
    return [w for w in (s.warning() for s in statuses) if w]
