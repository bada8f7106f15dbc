"""Fitting a schedule law to loss curves: Huber loss on log loss, from a grid of starts.

The objective is the weighted mean over logged points of ``huber(log y - log pred; delta)``
(delta = 1e-3 as in both papers), divided by delta^2 so that the optimisers see numbers of
order one. Positive scale constants (A, B, C) are optimised on a log scale; Jacobians are
analytic.

Procedure: (1) a first stage in which the law is linear in its amplitudes once alpha is
fixed (the multi-power loss drop replaced by its saturated value): a grid over alpha with
weighted least squares gives (L0, A, alpha, B or C); (2) a grid over the remaining
exponents, scored on a coarse subsample of each curve (``coarse_points``); (3) the best
``n_refine`` starts refined there by trust-region least squares with the Huber loss
(scipy ``least_squares``, Gauss-Newton steps: tens of iterations, where L-BFGS-B alone
needs hundreds); (4) the winner refined on up to ``max_points`` points per curve and
polished by L-BFGS-B on the exact objective.

Options that change *what* is fitted (chosen by cross-validation in :mod:`select`):

* ``weighting="points"``: every logged point counts once (the papers' choice, so long and
  densely logged curves dominate); ``"curve"``: each curve carries the same total weight.
* ``late``: extra weight growing linearly with the step, for extrapolating in length.
* ``tail``: extra weight on the points where the LR is annealed, ``w *= 1 + tail * (1 -
  eta_t / eta_max)``, so that the fit respects the end of each decay.
* ``skip``: leave out the first fraction of each curve (the post-warmup transient).
* ``fix``: hold constants fixed (e.g. the multi-power exponents beta, gamma).
* ``rho``: multi-power forward area sum eta^rho (see :func:`multipower.make_plan`).

On the authors' curves (bench/bench_schedule.py) tail and late weights did not lower the
held-out final-loss errors; they stay available, not among the default candidates.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from scipy.optimize import minimize

from advisor.errors import AdvisorError
from advisor.fit.status import FitStatus, flat_parameters, from_least_squares, from_minimize
from advisor.schedule.curves import Curve
from advisor.schedule.forms import FORMS


@dataclass(frozen=True)
class FitOptions:
    """How a law is fitted (not which law)."""

    delta: float = 1e-3          # Huber threshold on log-loss residuals
    weighting: str = "points"    # "points" | "curve"
    tail: float = 0.0            # extra weight where the LR is annealed (see module doc)
    late: float = 0.0            # extra weight late in each curve: w *= 1 + late * t / t_last
    max_points: int = 200        # per curve; longer curves are thinned evenly (last kept)
    lam: float | None = None     # tissue: annealing momentum; None tries tissue.LAMS
    n_refine: int = 3            # best grid starts refined (on the coarse plan)
    coarse_points: int = 60      # per curve, for screening starts before the full fit
    fix: tuple = ()              # ((param, value), ...) held fixed, e.g. the exponents
    skip: float = 0.0            # leave out points before this fraction of each curve
    rho: float = 1.0             # multi-power: forward area sum eta^rho (1 = published law)

    def label(self) -> str:
        parts = [self.weighting]
        if self.tail:
            parts.append(f"tail={self.tail:g}")
        if self.late:
            parts.append(f"late={self.late:g}")
        for k, v in self.fix:
            parts.append(f"{k}={v:g}")
        if self.skip:
            parts.append(f"skip={self.skip:g}")
        if self.rho != 1.0:
            parts.append(f"rho={self.rho:g}")
        return ",".join(parts)


@dataclass
class FitResult:
    law: str
    params: dict
    lr_scale: float
    lam: float | None
    objective: float
    options: FitOptions
    curves: list
    n_points: int
    seconds: float
    extra: dict = field(default_factory=dict)

    @property
    def theta(self) -> np.ndarray:
        return np.array([self.params[p] for p in FORMS[self.law].params])

    def to_dict(self) -> dict:
        d = asdict(self)
        d["options"] = asdict(self.options)
        return d


def thin(steps: np.ndarray, max_points: int, skip: float = 0.0) -> np.ndarray:
    """Indices of at most ``max_points`` evenly spread logged points, the last one kept;
    with ``skip``, only points at steps >= skip * last step."""
    first = int(np.searchsorted(steps, skip * steps[-1])) if skip else 0
    first = min(first, len(steps) - 3)
    n = len(steps) - first
    if n <= max_points:
        return np.arange(first, len(steps))
    return first + np.unique(np.round(np.linspace(0, n - 1, max_points)).astype(int))


def make_plan(law: str, curve: Curve, lr_scale: float, steps=None, lam=None, rho=1.0):
    """The form's plan of ``curve`` (LRs divided by ``lr_scale``) at ``steps``."""
    steps = curve.steps if steps is None else np.asarray(steps, dtype=np.int64)
    return FORMS[law].plan(curve.lrs / lr_scale, steps, rho, lam)


def point_weights(curve: Curve, idx: np.ndarray, opts: FitOptions) -> np.ndarray:
    w = np.ones(len(idx))
    if opts.tail:
        u = curve.lrs[curve.steps[idx]] / curve.peak_lr
        w *= 1.0 + opts.tail * np.clip(1.0 - u, 0.0, 1.0)
    if opts.late:
        st = curve.steps[idx].astype(np.float64)
        w *= 1.0 + opts.late * st / st[-1]
    if opts.weighting == "curve":
        w /= w.sum()
    elif opts.weighting != "points":
        raise AdvisorError(f"unknown weighting {opts.weighting!r}")
    return w


class _Problem:
    """Stacked plans, targets and weights of several curves for one law."""

    def __init__(self, law, plans, ys, ws, delta, fix=()):
        self.form = FORMS[law]
        self.mod = self.form.module          # predict / value_and_jac on a plan
        self.plans, self.ys, self.delta = plans, ys, delta
        wall = np.concatenate(ws)
        self.ws = [w / wall.sum() for w in ws]
        self.logy = [np.log(y) for y in ys]
        names = self.form.params
        self.logmask = np.array([p in self.form.log_params for p in names])
        self.bounds = []
        for p in names:
            if p in self.form.log_params:
                self.bounds.append((-30.0, 30.0))
            else:
                self.bounds.append(self.form.bounds.get(p, (None, None)))
        self.free = np.ones(len(names), dtype=bool)
        for k, _ in fix:
            self.free[names.index(k)] = False

    def to_z(self, theta):
        z = np.array(theta, dtype=np.float64)
        z[self.logmask] = np.log(np.maximum(z[self.logmask], 1e-300))
        return z

    def to_theta(self, z):
        th = np.array(z, dtype=np.float64)
        th[self.logmask] = np.exp(th[self.logmask])
        return th

    def objective(self, z, grad=True):
        th = self.to_theta(z)
        d = self.delta
        f, g = 0.0, np.zeros(len(th))
        for plan, logy, w in zip(self.plans, self.logy, self.ws):
            if grad:
                pred, J = self.mod.value_and_jac(th, plan)
            else:
                pred, J = self.mod.predict(th, plan), None
            if np.any(~np.isfinite(pred)) or np.any(pred <= 0):
                return (1e10, np.zeros(len(th))) if grad else 1e10
            r = logy - np.log(pred)
            a = np.abs(r)
            h = np.where(a <= d, 0.5 * r * r, d * (a - 0.5 * d))
            f += np.dot(w, h)
            if grad:
                psi = np.clip(r, -d, d)
                g += -(w * psi / pred) @ J
        f /= d * d
        if not grad:
            return f
        g /= d * d
        g = np.where(self.logmask, g * th, g)           # chain rule for log parameters
        if not np.all(np.isfinite(g)):
            return 1e10, np.zeros(len(th))
        return f, g

    def _clip(self, z):
        lo = np.array([-np.inf if b[0] is None else b[0] for b in self.bounds])
        hi = np.array([np.inf if b[1] is None else b[1] for b in self.bounds])
        return np.clip(z, lo, hi), lo, hi

    def residuals(self, z):
        """Weighted log residuals sqrt(w_i N) (log y_i - log pred_i) and their Jacobian."""
        th = self.to_theta(z)
        rs, Js = [], []
        N = sum(len(w) for w in self.ws)
        for plan, logy, w in zip(self.plans, self.logy, self.ws):
            pred, J = self.mod.value_and_jac(th, plan)
            sw = np.sqrt(w * N)
            with np.errstate(invalid="ignore", divide="ignore"):
                rs.append(sw * (logy - np.log(np.maximum(pred, 1e-12))))
                Js.append(-(sw / np.maximum(pred, 1e-12))[:, None] * J)
        r, J = np.concatenate(rs), np.concatenate(Js)
        J = np.where(self.logmask[None, :], J * th[None, :], J)
        return r, J

    def refine(self, theta0, maxiter=200):
        """Trust-region least squares with the Huber loss on the log residuals (Gauss-Newton
        steps converge in tens of iterations), then L-BFGS-B on the exact weighted Huber
        objective to polish. Fixed parameters stay at their values in ``theta0``."""
        from scipy.optimize import least_squares
        zfull, lo, hi = self._clip(self.to_z(theta0))
        free = self.free
        cache = {}

        def full(zf):
            z = zfull.copy()
            z[free] = zf
            return z

        def fun(zf):
            key = zf.tobytes()
            if key not in cache:
                cache.clear()
                cache[key] = self.residuals(full(zf))
            r = cache[key][0]
            return np.where(np.isfinite(r), r, 1e3)

        def jac(zf):
            fun(zf)
            J = cache[zf.tobytes()][1][:, free]
            return np.where(np.isfinite(J), J, 0.0)

        lo_, hi_ = lo[free], hi[free]
        eps = 1e-9 * np.maximum(1.0, np.abs(zfull[free]))
        z0 = np.clip(zfull[free], lo_ + eps * np.isfinite(lo_), hi_ - eps * np.isfinite(hi_))
        res = least_squares(fun, z0, jac=jac, bounds=(lo_, hi_), method="trf", loss="huber",
                            f_scale=self.delta, x_scale="jac", max_nfev=maxiter,
                            ftol=1e-12, xtol=1e-12, gtol=1e-12)
        z = full(res.x)
        # status > 0: a tolerance was met; 0: the evaluation budget ran out
        self.last_status = {"least_squares_status": int(res.status),
                            "least_squares_converged": bool(res.status > 0)}
        what = f"{self.form.name} fit, {len(self.plans)} curves"
        free_names = [n for n, m in zip(self.form.params, free) if m]
        calls = [from_least_squares(res, f"{what}: trust-region least squares", free_names,
                                    (lo_, hi_))]

        def obj(zf):
            f, g = self.objective(full(zf))
            return f, g[free]

        bounds = [b for b, m in zip(self.bounds, free) if m]
        res2 = minimize(obj, res.x, jac=True, method="L-BFGS-B", bounds=bounds,
                        options={"maxiter": 50, "ftol": 1e-13, "gtol": 1e-10})
        if res2.fun <= self.objective(z, grad=False):
            z = full(res2.x)
        self.last_status.update(lbfgs_converged=bool(res2.success),
                                lbfgs_message=str(res2.message))
        calls.append(from_minimize(res2, f"{what}: L-BFGS-B polish", free_names, bounds))
        self.last_status["calls"] = [c.as_dict() for c in calls]
        self.last_status["converged"] = bool(self.last_status["least_squares_converged"]
                                             or res2.success)
        self.last_status["at_bounds"] = self.at_bounds(z)
        _, J = self.residuals(z)
        J = np.where(np.isfinite(J), J, 0.0)[:, free]
        self.last_status["unidentified"] = flat_parameters(J, free_names)
        return self.to_theta(z), float(self.objective(z, grad=False))

    def at_bounds(self, z, rel: float = 1e-4) -> list:
        """Names of free parameters that end on a bound (within ``rel`` of its span, or of
        1 for a one-sided bound). Log-scale constants at +-30 mean 0 or infinity."""
        out = []
        for name, zi, (lo, hi), free in zip(self.form.params, z, self.bounds, self.free):
            if not free:
                continue
            span = (hi - lo) if lo is not None and hi is not None else 1.0
            tol = rel * max(span, 1e-12)
            if (lo is not None and zi <= lo + tol) or (hi is not None and zi >= hi - tol):
                out.append(name)
        return out


def _first_stage(law, curves, lr_scale, idxs, ws, lam, opts):
    """(L0, A, alpha, B-or-C) by weighted least squares on a grid of alpha.

    For the multi-power law, the loss drop is replaced by its saturated value
    eta_peak - eta_t (G = 1), which makes the law linear in (L0, A, B).
    """
    X1, X2, Y, W = [], [], [], []
    for c, idx, w in zip(curves, idxs, ws):
        S1, x2 = FORMS[law].first_stage(c.lrs / lr_scale, c.steps[idx], opts.rho, lam)
        X2.append(x2)
        X1.append(np.maximum(S1, 1e-12))
        Y.append(c.loss[idx])
        W.append(w)
    S1, x2, y, w = map(np.concatenate, (X1, X2, Y, W))
    sw = np.sqrt(w / w.sum())
    best = None
    for alpha in np.linspace(0.05, 1.5, 59):
        X = np.stack([np.ones_like(S1), S1 ** -alpha, x2], axis=1)   # L0, A, B or C
        coef, *_ = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)
        L0, A, k = coef
        if A <= 0:
            continue
        resid = np.sum((sw * (X @ coef - y)) ** 2)
        if best is None or resid < best[0]:
            best = (resid, L0, A, alpha, max(k, 1e-6))   # k < 0: annealing did not help
    if best is None:
        raise AdvisorError("cannot fit: the loss does not fall as the LR area grows")
    _, L0, A, alpha, k = best
    return np.array([max(L0, 1e-3), A, alpha, k])


# Curves whose losses span less than this fraction of their mean are flat: no law can be
# fitted to them (a training curve drops by tens of percent).
FLAT_REL = 1e-4


def _falls(loss: np.ndarray) -> bool:
    """Does the loss fall from its first 10% of points to its last 10% by more than three
    standard errors of the point-to-point noise (the median absolute difference of
    neighbours, / 0.6745 / sqrt 2, a robust sigma)?"""
    loss = loss[np.isfinite(loss)]
    k = max(1, len(loss) // 10)
    if len(loss) < 4:
        return bool(len(loss) >= 2 and loss[0] > loss[-1])
    sigma = float(np.median(np.abs(np.diff(loss)))) / 0.6745 / math.sqrt(2)
    drop = float(loss[:k].mean() - loss[-k:].mean())
    return drop > 3 * sigma * math.sqrt(2 / k)


def check_identifiable(curves: list[Curve]) -> None:
    """AdvisorError when the curves cannot pin a schedule law down: none, flat losses, or no
    curve whose LR decays."""
    if not curves:
        raise AdvisorError("no curves to fit")
    loss = np.concatenate([np.asarray(c.loss, dtype=np.float64) for c in curves])
    loss = loss[np.isfinite(loss)]
    if loss.size == 0 or np.ptp(loss) <= FLAT_REL * np.abs(loss).mean():
        spread = float(np.ptp(loss)) if loss.size else float("nan")
        raise AdvisorError(f"the curves' losses do not change (spread {spread:.3g} nats over "
                           f"{loss.size} points): they carry no information about how the "
                           "loss follows the LR; fit curves of a model that trains")
    if not any(_falls(np.asarray(c.loss, dtype=np.float64)) for c in curves):
        raise AdvisorError("no curve's loss falls by more than its own noise (the mean of its "
                           "last 10% of points against its first 10%): the curves carry no "
                           "information about how the loss follows the LR; fit curves of a "
                           "model that trains")
    if not any(c.has_annealing() for c in curves):
        raise AdvisorError("every curve has a constant LR after warmup: the annealing term "
                           "is not identifiable; add a curve whose LR decays (cosine, or a "
                           "WSD cooldown)")


#: A quick cooldown: the LR falls from QUICK_FROM to QUICK_TO of its peak within QUICK_WITHIN
#: of the run's steps (a WSD cooldown over up to ~40% of the run does; a cosine over the whole
#: run takes ~47% and does not).
QUICK_FROM, QUICK_TO, QUICK_WITHIN = 0.8, 0.2, 0.25


def cools_down_quickly(lrs) -> bool:
    """Whether a per-step LR schedule (index = step) has a quick cooldown (see QUICK_*)."""
    lr = np.asarray(lrs, dtype=np.float64)
    peak = float(lr.max()) if lr.size else 0.0
    if peak <= 0:
        return False
    after = lr[int(np.argmax(lr)):]
    low = np.flatnonzero(after <= QUICK_TO * peak)
    if low.size == 0:
        return False
    high = np.flatnonzero(after[: low[0]] >= QUICK_FROM * peak)
    return bool(high.size and low[0] - high[-1] <= QUICK_WITHIN * len(lr))


def fit_set_notes(curves: list[Curve]) -> list[str]:
    """Advice on the curves given to a fit (not errors: the fit goes ahead)."""
    if any(cools_down_quickly(c.lrs[: int(c.steps[-1]) + 1]) for c in curves):
        return []
    return ["no fitted curve cools down quickly (its LR falling from 80% to 20% of the peak "
            "within a quarter of its steps), so predictions for WSD cooldowns extrapolate how "
            "fast the loss follows an LR drop. One short cooldown branched from a constant run "
            "(over 10-20% of its steps) is a cheap pilot curve that measures it: on Schaipp et "
            "al. 2025's 124M runs at peak LR 5e-4, adding one to a constant + cosine fit set cut "
            "the largest error on the other schedules from 0.31% to 0.24-0.29%, and the pairs "
            "in the wrong order from 2 of 95 to 0-4 of 87-88; at 2e-3 it made no difference "
            "(docs/run.md, table F)"]


def fit_law(law: str, curves: list[Curve], opts: FitOptions = FitOptions()) -> FitResult:
    """Fit ``law`` ("multipower", "tissue" or "valley") to ``curves`` sharing one peak LR.

    The optimizers' status is read: ``extra["status"]`` holds ``converged`` (a tolerance of
    the trust-region or the L-BFGS-B polish was met), ``at_bounds`` (free constants that end
    on a bound, or on the edge of the valley law's grid), ``unidentified`` (constants along
    a flat direction of the final least-squares fit, :func:`advisor.fit.status.
    flat_parameters`), ``identified`` (False when anything is at a bound or unidentified:
    the data did not pin that constant down) and ``calls`` (each
    optimizer call of the final fit as :class:`advisor.fit.status.FitStatus` fields:
    converged, message, evaluations).
    """
    if law not in FORMS:
        raise AdvisorError(f"unknown schedule law {law!r}; choose from {', '.join(FORMS)}")
    form = FORMS[law]
    check_identifiable(curves)
    t0 = time.perf_counter()
    lr_scale = max(c.peak_lr for c in curves)
    idxs = [thin(c.steps, opts.max_points, opts.skip) for c in curves]
    ws = [point_weights(c, i, opts) for c, i in zip(curves, idxs)]
    if form.fitter == "grid":
        return _fit_grid(law, curves, opts, lr_scale, idxs, ws, t0)
    names = form.params
    best = None
    for lam in form.lams(opts.lam):
        def problem(max_pts):
            ids = [thin(c.steps, max_pts, opts.skip) for c in curves]
            plans = [make_plan(law, c, lr_scale, c.steps[i], lam, opts.rho)
                     for c, i in zip(curves, ids)]
            wts = [point_weights(c, i, opts) for c, i in zip(curves, ids)]
            return _Problem(law, plans, [c.loss[i] for c, i in zip(curves, ids)], wts,
                            opts.delta, opts.fix), plans
        base = _first_stage(law, curves, lr_scale, idxs, ws, lam if lam else 0.999, opts)
        coarse, cplans = problem(min(opts.coarse_points, opts.max_points))
        grid = form.starts(base, cplans)
        for g in grid:
            for k, v in opts.fix:
                g[names.index(k)] = v
        scored = sorted(((coarse.objective(coarse.to_z(s), grad=False), i)
                         for i, s in enumerate(grid)))
        # Screen on the coarse plan (cheap), then refine the winner on all points.
        cands = [coarse.refine(grid[i]) for _, i in scored[: opts.n_refine]]
        th0 = min(cands, key=lambda r: r[1])[0]
        full, _ = problem(opts.max_points)
        th, f = full.refine(th0, maxiter=60)
        if best is None or f < best[0]:
            best = (f, th, lam, dict(full.last_status))
    f, th, lam, status = best
    status["identified"] = not status["at_bounds"] and not status["unidentified"]
    return FitResult(law=law, params=dict(zip(names, map(float, th))), lr_scale=lr_scale,
                     lam=lam, objective=f, options=opts, curves=[c.name for c in curves],
                     n_points=int(sum(len(i) for i in idxs)),
                     seconds=time.perf_counter() - t0, extra={"status": status})


def _fit_grid(law, curves, opts, lr_scale, idxs, ws, t0) -> FitResult:
    """A form fitted by its own exact grid (the valley law: a grid over (c, p, alpha),
    linear least squares for (L0, A, K), see :mod:`valley`); exact, so ``converged`` is
    True; ``at_bounds`` names constants on the grid's edge."""
    try:
        params, f, at = FORMS[law].module.fit_grid(
            [c.lrs / lr_scale for c in curves], [c.steps[i] for c, i in zip(curves, idxs)],
            [c.loss[i] for c, i in zip(curves, idxs)], ws, rho=opts.rho, fixed=dict(opts.fix))
    except ValueError as exc:
        raise AdvisorError(f"cannot fit the {law} law: {exc}") from None
    method = "grid over (c, p, alpha), linear least squares for (L0, A, K)"
    grid = FORMS[law].module
    call = FitStatus(what=f"{law} fit, {len(curves)} curves: {method}", converged=True,
                     message="exact: every grid point scored",
                     nfev=len(grid.C_GRID) * len(grid.P_GRID) * len(grid.ALPHA_GRID),
                     at_bounds=list(at))
    status = {"converged": True, "at_bounds": at, "unidentified": [], "identified": not at,
              "method": method, "calls": [call.as_dict()]}
    return FitResult(law=law, params=params, lr_scale=lr_scale, lam=None, objective=f,
                     options=opts, curves=[c.name for c in curves],
                     n_points=int(sum(len(i) for i in idxs)),
                     seconds=time.perf_counter() - t0, extra={"status": status})


def shape_options(fit: FitResult) -> FitOptions:
    """``fit``'s options with its shape constants (``FORMS[law].shape``, and the tissue
    law's annealing momentum) held fixed: a fit with these options at another peak LR
    takes the shape from ``fit`` and fits only the level and amplitudes."""
    fix = tuple((k, float(fit.params[k])) for k in FORMS[fit.law].shape)
    return replace(fit.options, fix=fix, lam=fit.lam if fit.lam is not None else fit.options.lam)


def status_warnings(fit: FitResult) -> list[str]:
    """Plain-language warnings from a fit's optimizer status (empty when all is well)."""
    st = fit.extra.get("status", {})
    out = []
    if st and not st.get("converged", True):
        out.append(f"the {fit.law} fit did not converge (optimizer budget ran out); its "
                   f"constants may be far from the best fit")
    if st.get("at_bounds"):
        names = ", ".join(f"{k} = {fit.params[k]:.3g}" for k in st["at_bounds"])
        out.append(f"the {fit.law} fit ends with {names} on the bound of the allowed range: "
                   f"the curves do not identify {'it' if len(st['at_bounds']) == 1 else 'them'}"
                   f"; predictions for schedules unlike the fitted ones are not reliable")
    if st.get("unidentified"):
        out.append(f"the curves do not identify the {fit.law} law's "
                   f"{', '.join(st['unidentified'])} (a flat direction of the fit: other "
                   "values fit equally well); predictions for schedules unlike the fitted "
                   "ones are not reliable")
    return out


def predict_curve(fit: FitResult, curve_or_lrs, steps=None) -> np.ndarray:
    """Predicted loss of a fitted law for a curve (or per-step LRs) at ``steps``."""
    if isinstance(curve_or_lrs, Curve):
        lrs = curve_or_lrs.lrs
        steps = curve_or_lrs.steps if steps is None else steps
    else:
        lrs = np.asarray(curve_or_lrs, dtype=np.float64)
    return FORMS[fit.law].predict(fit.theta, lrs / fit.lr_scale, steps, rho=fit.options.rho,
                                  lam=fit.lam)


def curve_errors(fit: FitResult, curve: Curve) -> dict:
    """Relative errors of a fit on one curve: mean, max, and at the final logged step."""
    pred = predict_curve(fit, curve)
    rel = np.abs(pred - curve.loss) / curve.loss
    return {"mean_rel": float(rel.mean()), "max_rel": float(rel.max()),
            "final_rel": float((pred[-1] - curve.loss[-1]) / curve.loss[-1]),
            "final_pred": float(pred[-1]), "final_true": float(curve.loss[-1])}
