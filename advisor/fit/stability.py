"""The stability math: LR sensitivity, the largest stable LR of a loss-vs-LR curve, and the
log-log line (with its prediction interval) that carries it to another width or size.

Pure functions on plain numbers (no torch, no numpy), shared by the calibration summary
(``calibration.analyze.stability_summary``, ``advisor results --by stability``), the published
evidence (``advisor.fit.stability_evidence``) and the recommendation's ``stability`` block
(``advisor.recommendation.stability``), which evaluates a fitted :class:`Line` without importing numpy.

Definitions (Wortsman et al. 2023, "Small-scale proxies for large-scale Transformer training
instabilities", arXiv 2309.14322, section 2.2; what of it could be re-read, and from where:
docs/stability.md section 4):

* **LR sensitivity** of a loss-vs-LR curve over an LR range [a, b]:

      S = E_{eta in [a, b]} [ min(l(eta), l0) - l* ],      l* = min_{eta in [a, b]} l(eta)

  with l(eta) the final loss at LR eta (+inf when the run diverged), l0 the loss at
  initialisation, and the expectation over the grid points, evenly spaced in log LR. The paper
  uses [3e-4, 3e-1] (three decades); a sweep here uses its own grid, the same for every arm.
  Lower is more robust; 0 means the loss does not depend on the LR in the range.

* **Unstable** (here, for small proxies that plateau instead of blowing up): a run that
  diverged (a non-finite or runaway loss, calibration.train.runtime.RunTracker), or whose final
  loss lost more than half of what context buys: l(eta) > l* + 1/2 (l_cf - l*), with l_cf the
  context-free (unigram) loss of the data. The **largest stable LR** of a curve is the LR
  where the loss crosses that level above the optimum, interpolated linearly in log2 LR between
  the last stable and the first unstable grid point (their geometric mean when the unstable
  point diverged); a curve with no unstable point above its optimum gives only a lower bound.

* **Late trend** of a probe over training (:func:`late_trend`): the least-squares slope of
  its value on the step over the late part of the run, pooled over seeds, with a 95%
  interval; used for the log-partition log Z with and without z-loss (W23 section 3.1.2).

Units: LRs are peak LRs (of whatever convention the curve has); losses in nats per token;
widths in channels; a :class:`Line` is in log2 units on both axes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

UNSTABLE_FRACTION = 0.5     # of the context gain (l_cf - l*) lost: the instability level


def lr_sensitivity(curve, loss_init: float) -> float:
    """S = mean over the curve's points of min(l, l0) - l* (see the module docstring).

    ``curve``: ((lr, final loss or inf), ...) on a grid evenly spaced in log LR;
    ``loss_init``: l0 in nats. NaN when no point is finite."""
    finite = [y for _, y in curve if math.isfinite(y)]
    if not finite:
        return math.nan
    best = min(finite)
    return sum(min(y, loss_init) - best for _, y in curve) / len(curve)


def instability_level(best_loss: float, context_free_loss: float,
                      fraction: float = UNSTABLE_FRACTION) -> float:
    """The loss above which a run counts as unstable: l* + fraction (l_cf - l*)."""
    return best_loss + fraction * (context_free_loss - best_loss)


@dataclass(frozen=True)
class Edge:
    """Where a loss-vs-LR curve stops being stable (LRs; NaN where not defined).

    ``crossing``: the interpolated largest stable LR; ``censored``: no unstable point above
    the optimum (``crossing`` is then NaN and ``last_stable`` a lower bound)."""

    last_stable: float
    first_unstable: float
    crossing: float
    censored: bool


def stability_edge(curve, level: float, interpolate: bool = True) -> Edge:
    """The :class:`Edge` of ``curve`` ((lr, loss or inf), sorted by lr) at the loss ``level``,
    searched upwards from the curve's best point. ``interpolate=False``: the crossing is the
    geometric mean of the last stable and first unstable LR (for a cliff, where the loss
    jumps by nats between two grid points and interpolating its value means nothing)."""
    pts = sorted(curve)
    finite = [(x, y) for x, y in pts if math.isfinite(y)]
    if not finite:
        return Edge(math.nan, pts[0][0] if pts else math.nan, math.nan, False)
    i = pts.index(min(finite, key=lambda p: p[1]))
    for j in range(i + 1, len(pts)):
        x, y = pts[j]
        if not math.isfinite(y) or y > level:
            xs, ys = pts[j - 1]
            lx0, lx1 = math.log2(xs), math.log2(x)
            if interpolate and math.isfinite(y) and y > ys:
                t = (level - ys) / (y - ys)
                cross = 2 ** (lx0 + min(max(t, 0.0), 1.0) * (lx1 - lx0))
            else:
                cross = 2 ** ((lx0 + lx1) / 2)
            return Edge(xs, x, cross, False)
    return Edge(pts[-1][0], math.nan, math.nan, True)


# Student-t 0.975 quantiles by degrees of freedom (beyond the table: 1.96).
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t975(dof: int) -> float:
    """The 97.5% Student-t quantile at ``dof`` degrees of freedom (conservative between the
    tabulated values: the next smaller tabulated dof)."""
    if dof < 1:
        return math.inf
    keys = [k for k in sorted(_T975) if k <= dof]
    return _T975[keys[-1]] if dof <= 30 else 1.96


@dataclass(frozen=True)
class Line:
    """y = coef[0] + coef[1] x1 + ... fitted by least squares on ``n`` points (every variable
    in log2 units), with what a 95% prediction interval needs: the residual sd ``s`` and
    ``xtx_inv`` = (X'X)^-1 of the design (a column of ones first). Plain numbers, so it
    travels in JSON/YAML and is evaluated without numpy."""

    coef: tuple
    xtx_inv: tuple
    s: float
    n: int

    @property
    def a(self) -> float:
        return self.coef[0]

    @property
    def b(self) -> float:
        return self.coef[1]

    def predict(self, *x: float) -> tuple[float, float]:
        """(y at x, half-width of its 95% prediction interval) in log2 units; the half-width
        is inf when the fit has no residual degrees of freedom."""
        row = (1.0,) + tuple(float(v) for v in x)
        if len(row) != len(self.coef):
            raise ValueError(f"{len(self.coef) - 1} variables expected, got {len(x)}")
        y = sum(c * v for c, v in zip(self.coef, row))
        dof = self.n - len(self.coef)
        if dof < 1 or not math.isfinite(self.s):
            return y, math.inf
        q = sum(row[i] * self.xtx_inv[i][j] * row[j]
                for i in range(len(row)) for j in range(len(row)))
        return y, t975(dof) * self.s * math.sqrt(1 + max(q, 0.0))

    def coef_half_width(self, i: int) -> float:
        """Half-width of the 95% confidence interval of coefficient ``i`` (inf without
        residual degrees of freedom)."""
        dof = self.n - len(self.coef)
        if dof < 1 or not math.isfinite(self.s):
            return math.inf
        return t975(dof) * self.s * math.sqrt(max(self.xtx_inv[i][i], 0.0))

    def to_dict(self) -> dict:
        return {"coef": list(self.coef), "xtx_inv": [list(r) for r in self.xtx_inv],
                "s": self.s, "n": self.n}

    @classmethod
    def from_dict(cls, d: dict) -> "Line":
        return cls(tuple(float(c) for c in d["coef"]),
                   tuple(tuple(float(v) for v in r) for r in d["xtx_inv"]),
                   float(d["s"]) if d["s"] is not None else math.nan, int(d["n"]))


def _invert(m: list) -> list:
    """Inverse of a small square matrix by Gauss-Jordan with partial pivoting."""
    from advisor.errors import AdvisorError

    k = len(m)
    a = [list(map(float, row)) + [1.0 if i == j else 0.0 for j in range(k)]
         for i, row in enumerate(m)]
    for c in range(k):
        p = max(range(c, k), key=lambda r: abs(a[r][c]))
        if abs(a[p][c]) < 1e-12:
            raise AdvisorError("the fit's variables are collinear (too few distinct values)")
        a[c], a[p] = a[p], a[c]
        piv = a[c][c]
        a[c] = [v / piv for v in a[c]]
        for r in range(k):
            if r != c and a[r][c] != 0.0:
                f = a[r][c]
                a[r] = [v - f * w for v, w in zip(a[r], a[c])]
    return [row[k:] for row in a]


def fit_line(xs, ys) -> Line:
    """Least-squares line y = a + b x (at least 2 points at 2 or more distinct x)."""
    return fit_linear([(x,) for x in xs], ys)


def fit_linear(rows, ys) -> Line:
    """Least squares y = c0 + c1 x1 + ... over ``rows`` (tuples of x values) and ``ys``;
    non-finite points are dropped; at least one more point than coefficients."""
    from advisor.errors import AdvisorError

    pts = [((1.0,) + tuple(float(v) for v in r), float(y)) for r, y in zip(rows, ys)
           if all(math.isfinite(v) for v in r) and math.isfinite(y)]
    k = len(pts[0][0]) if pts else 0
    if len(pts) < max(k, 2) or k == 0:
        raise AdvisorError(f"a fit of {max(k, 2)} coefficients needs more points; got {len(pts)}")
    xtx = [[sum(r[i] * r[j] for r, _ in pts) for j in range(k)] for i in range(k)]
    xty = [sum(r[i] * y for r, y in pts) for i in range(k)]
    inv = _invert(xtx)
    coef = [sum(inv[i][j] * xty[j] for j in range(k)) for i in range(k)]
    rss = sum((y - sum(c * v for c, v in zip(coef, r))) ** 2 for r, y in pts)
    dof = len(pts) - k
    s = math.sqrt(rss / dof) if dof > 0 else math.nan
    return Line(tuple(coef), tuple(tuple(r) for r in inv), s, len(pts))


@dataclass(frozen=True)
class Trend:
    """The late-run trend of a quantity recorded over steps (here the mean log-partition
    log Z, nats): least squares of value on step over the points at or after ``from_step``,
    pooled over seeds. ``rate`` and ``rate_half_width`` in units per 1000 steps (95%
    confidence interval of the slope); ``start`` and ``end`` the fitted values at the first and
    last step of the window. A window with fewer than 3 points or one distinct step has no
    trend (``None`` from :func:`late_trend`)."""

    rate: float
    rate_half_width: float
    from_step: int
    to_step: int
    start: float
    end: float
    n: int

    def direction(self) -> str:
        """'falls' / 'rises' when the 95% interval excludes 0, else 'flat'."""
        if self.rate + self.rate_half_width < 0:
            return "falls"
        if self.rate - self.rate_half_width > 0:
            return "rises"
        return "flat"


def late_trend(points, from_step: int) -> "Trend | None":
    """The :class:`Trend` of ``points`` [(step, value), ...] (any seeds) over steps >=
    ``from_step``; non-finite values dropped; None without enough points to fit a slope with
    an interval (3 points at 2 or more steps)."""
    pts = [(int(s), float(v)) for s, v in points if s >= from_step and math.isfinite(v)]
    if len(pts) < 3 or len({s for s, _ in pts}) < 2:
        return None
    line = fit_line([s / 1000.0 for s, _ in pts], [v for _, v in pts])
    lo, hi = min(s for s, _ in pts), max(s for s, _ in pts)
    return Trend(line.b, line.coef_half_width(1), lo, hi, line.predict(lo / 1000.0)[0],
                 line.predict(hi / 1000.0)[0], line.n)
