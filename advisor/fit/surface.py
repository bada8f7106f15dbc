"""A joint loss surface over log hyperparameters whose minimum moves as a power law in N and D.

For run r in cell c = (N, D), with log hyperparameters x_r = (ln lr, ln B_tokens, ...):

    ln L_r = m_c + S(x_r - mu(N, D); N, D)
    mu_k(N, D) = a_k0 + a_k1 (ln N - n0) + a_k2 (ln D - d0)        (one row per axis k)
    S(u; N, D) = sum_t (c_t + g_t (ln N - n0) + h_t (ln D - d0)) prod_k u_k^{p_tk}

where t runs over the monomials of total degree 2..``degree`` (no constant or linear terms).
Because S has no linear terms, u = 0 is a stationary point of S for every (N, D): where the
quadratic part is positive definite, the optimum of each hyperparameter is exactly
exp(mu_k(N, D)), a power law in N and D. The shape (curvature, asymmetry between too-low and
too-high LR, LR-batch coupling) is shared across cells and varies smoothly with (N, D); m_c is
a free level per cell. Only finished runs within ``window`` (relative) of their cell's best
loss enter the fit; the fit is robust (soft-L1 on log loss, scale ``f_scale``).

By default the law is the average of fits over a fixed small set of windows and robust
scales (:func:`ensemble_options`), which removes the need to pick one of them on the same
cells that judge the result (see README: picking one by cross-validation is itself noisy).

Units: N as the grid counts it (non-embedding for Step Law), D and B in tokens, lr peak LR.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import least_squares

from advisor.errors import AdvisorError
from advisor.fit.powerlaw import PowerLaw
from advisor.fit.status import FitStatus, flat_parameters, from_least_squares

AXIS_NAMES = ("learning_rate", "batch_size", "weight_decay")


@dataclass(frozen=True)
class SurfaceOptions:
    """How the surface is specified (bench/bench_fit.py measures the alternatives)."""

    degree: int = 4                  # highest total degree of the shape polynomial
    window: float = 0.015            # runs within this relative excess of the cell best
    f_scale: float = 0.001           # soft-L1 scale on log loss (0.1%)
    shape_varies: bool = True        # shape coefficients linear in (ln N, ln D)
    # variables of the batch optimum: (N, D), (D,) or (N,); B*(D) by default because it
    # extrapolates to larger N best (docs/fitting.md, bench/bench_fit.py --extrapolation)
    batch_vars: tuple = ("D",)
    lr_vars: tuple = ("N", "D")      # variables of the LR optimum (advisor.fit.identify)
    min_cells: int = 4
    ensemble: bool = True            # average over ENSEMBLE_WINDOWS x ENSEMBLE_SCALES
    max_nfev: int = 500              # least_squares budget per fit (status read after)


ENSEMBLE_WINDOWS = (0.015, 0.02, 0.025)
ENSEMBLE_SCALES = (0.001, 0.002)


def ensemble_options(base: SurfaceOptions) -> list:
    """The settings an ensemble fit averages: each window x each robust scale."""
    return [replace(base, window=w, f_scale=f, ensemble=False)
            for w in ENSEMBLE_WINDOWS for f in ENSEMBLE_SCALES]


def average_power_law(fits, axis) -> PowerLaw:
    """The mean (in ln coefficient and exponents) of the fits' power laws for ``axis``.

    The covariance is the mean of the members' covariances plus the spread between members.
    """
    laws = [f.power_law(axis) for f in fits]
    names = list(laws[0].exponents)
    P = np.array([[np.log(law.coefficient)] + [law.exponents[k] for k in names]
                  for law in laws])
    mean = P.mean(axis=0)
    covs = [np.asarray(law.log_covariance) for law in laws if law.log_covariance is not None]
    cov = None
    if len(covs) == len(fits):
        spread = np.cov(P.T, bias=True) if len(fits) > 1 else 0.0
        cov = (np.mean(covs, axis=0) + spread).tolist()
    return PowerLaw(coefficient=float(np.exp(mean[0])),
                    exponents={k: float(v) for k, v in zip(names, mean[1:])},
                    log_covariance=cov)


@dataclass
class SurfaceFit:
    axes: tuple                      # names of the axes (subset of AXIS_NAMES), in order
    features: list                   # per axis: which of ("1", "N", "D") its location uses
    location: dict                   # axis -> {"1": a0, "N": a1, "D": a2} (ln-space, centred)
    centre: tuple                    # (n0, d0) = mean ln N, mean ln D over cells
    terms: np.ndarray                # (T, k) exponents
    shape: np.ndarray                # (3, T): c, g, h
    levels: dict                     # cell index -> m_c
    options: SurfaceOptions
    n_runs: int
    n_cells: int
    rms: float                       # rms of log-loss residuals (fit runs)
    covariance: dict = field(default_factory=dict)  # axis -> cov of (ln coef, eN, eD)
    status: FitStatus | None = None  # what least_squares said

    def optimum(self, N, D) -> dict:
        """Predicted optimum {axis: value} at N, D (natural units: lr, tokens, lambda)."""
        n, d = np.log(N) - self.centre[0], np.log(D) - self.centre[1]
        out = {}
        for ax in self.axes:
            loc = self.location[ax]
            out[ax] = float(np.exp(loc.get("1", 0.0) + loc.get("N", 0.0) * n
                                   + loc.get("D", 0.0) * d))
        return out

    def power_law(self, axis) -> PowerLaw:
        """The optimum of ``axis`` as a power law in N and D, with its covariance."""
        loc = self.location[axis]
        n0, d0 = self.centre
        eN, eD = loc.get("N", 0.0), loc.get("D", 0.0)
        ln_coef = loc.get("1", 0.0) - eN * n0 - eD * d0
        exps = {}
        if "N" in loc:
            exps["N"] = eN
        if "D" in loc:
            exps["D"] = eD
        return PowerLaw(coefficient=float(np.exp(ln_coef)), exponents=exps,
                        log_covariance=self.covariance.get(axis),
                        rms_log_residual=self.rms, n_points=self.n_runs)

    def shape_value(self, u, N, D):
        """S(u; N, D): log-loss excess at offsets u (array (..., k)) from the optimum."""
        n, d = np.log(N) - self.centre[0], np.log(D) - self.centre[1]
        coef = self.shape[0] + self.shape[1] * n + self.shape[2] * d
        u = np.asarray(u, float)
        mono = np.prod(u[..., None, :] ** self.terms, axis=-1)
        return mono @ coef

    def hessian(self, N, D):
        n, d = np.log(N) - self.centre[0], np.log(D) - self.centre[1]
        coef = self.shape[0] + self.shape[1] * n + self.shape[2] * d
        k = len(self.axes)
        H = np.zeros((k, k))
        for t, p in enumerate(self.terms):
            if p.sum() != 2:
                continue
            idx = np.nonzero(p)[0]
            if len(idx) == 1:
                H[idx[0], idx[0]] += 2 * coef[t]
            else:
                H[idx[0], idx[1]] += coef[t]
                H[idx[1], idx[0]] += coef[t]
        return H


def monomials(k: int, degree: int) -> np.ndarray:
    return np.array([p for p in itertools.product(range(degree + 1), repeat=k)
                     if 2 <= sum(p) <= degree], dtype=int)


def fit_surface(X, cell, cell_logN, cell_logD, loss, axes, *, options=SurfaceOptions(),
                cells=None) -> SurfaceFit:
    """Fit the joint surface.

    X: (R, k) log hyperparameters of finished runs (columns in ``axes`` order: ln lr,
    ln B_tokens, ln lambda); cell: (R,) cell index of each run; cell_logN, cell_logD: ln N and
    ln D per cell index; loss: (R,) final loss (finished runs only, finite). ``cells`` restricts
    the fit to those cell indices (cross-validation).
    """
    X = np.asarray(X, float).reshape(len(loss), -1)
    loss = np.asarray(loss, float)
    cell = np.asarray(cell, int)
    k = X.shape[1]
    all_cells = np.unique(cell) if cells is None else np.asarray(sorted(cells), int)
    if len(all_cells) < options.min_cells:
        raise AdvisorError(f"the surface fit needs at least {options.min_cells} (N, D) cells, "
                           f"got {len(all_cells)}")
    cell_logN = np.asarray(cell_logN, float)
    cell_logD = np.asarray(cell_logD, float)
    n0, d0 = float(cell_logN[all_cells].mean()), float(cell_logD[all_cells].mean())

    keep = np.isin(cell, all_cells)
    best = {c: loss[keep & (cell == c)].min() for c in all_cells}
    thr = np.array([best.get(c, -np.inf) for c in cell]) * (1 + options.window)
    sel = keep & (loss <= thr)
    Xs, cs, z = X[sel], cell[sel], np.log(loss[sel])
    n = cell_logN[cs] - n0
    d = cell_logD[cs] - d0
    ci = np.searchsorted(all_cells, cs)
    K = len(all_cells)

    # which location features each axis gets: LR and batch depend on N and D unless told
    distinct_N = len(np.unique(cell_logN[all_cells])) > 1
    distinct_D = len(np.unique(cell_logD[all_cells])) > 1
    features = []
    for ax in axes:
        f = ["1"]
        use = (options.batch_vars if ax == "batch_size"
               else options.lr_vars if ax == "learning_rate" else ("N", "D"))
        if distinct_N and "N" in use:
            f.append("N")
        if distinct_D and "D" in use:
            f.append("D")
        features.append(f)
    F = {"1": np.ones_like(n), "N": n, "D": d}

    terms = monomials(k, options.degree)
    T = len(terms)
    n_shape = 3 * T if options.shape_varies else T
    loc_sizes = [len(f) for f in features]
    n_loc = sum(loc_sizes)
    n_par = n_loc + n_shape + K
    if sel.sum() < n_par + K:
        raise AdvisorError(f"too few runs near the optimum for the surface fit: {sel.sum()} "
                           f"runs within {options.window:.1%} of their cell's best, need more "
                           f"than {n_par + K} (lower --degree or widen the window)")

    def unpack(p):
        locs, i = [], 0
        for s in loc_sizes:
            locs.append(p[i:i + s])
            i += s
        sh = p[n_loc:n_loc + n_shape]
        if options.shape_varies:
            sh = sh.reshape(3, T)
        else:
            sh = np.vstack([sh, np.zeros(T), np.zeros(T)])
        return locs, sh, p[n_loc + n_shape:]

    def parts(p):
        locs, sh, m = unpack(p)
        U = np.empty_like(Xs)
        for j, (f, a) in enumerate(zip(features, locs)):
            U[:, j] = Xs[:, j] - sum(a[q] * F[name] for q, name in enumerate(f))
        coef = sh[0][None, :] + sh[1][None, :] * n[:, None] + sh[2][None, :] * d[:, None]
        mono = np.prod(U[:, None, :] ** terms[None, :, :], axis=2)       # (R, T)
        return locs, sh, m, U, coef, mono

    def resid(p):
        _, _, m, _, coef, mono = parts(p)
        return m[ci] + np.sum(coef * mono, axis=1) - z

    def jac(p):
        locs, sh, m, U, coef, mono = parts(p)
        R = len(z)
        J = np.zeros((R, n_par))
        col = 0
        for j, f in enumerate(features):
            # d mono / d u_j = p_j u^(p - e_j)
            pj = terms[:, j]
            reduced = terms.copy()
            reduced[:, j] = np.maximum(pj - 1, 0)
            dmono = pj[None, :] * np.prod(U[:, None, :] ** reduced[None, :, :], axis=2)
            dS_du = np.sum(coef * dmono, axis=1)
            for name in f:
                J[:, col] = -dS_du * F[name]
                col += 1
        J[:, col:col + T] = mono
        if options.shape_varies:
            J[:, col + T:col + 2 * T] = mono * n[:, None]
            J[:, col + 2 * T:col + 3 * T] = mono * d[:, None]
        col += n_shape
        J[np.arange(R), col + ci] = 1.0
        return J

    # start: locations from each cell's best run, a mild bowl, levels at each cell's best
    p0 = np.zeros(n_par)
    bestX = np.array([X[keep & (cell == c)][np.argmin(loss[keep & (cell == c)])]
                      for c in all_cells])
    Fc = {"1": np.ones(K), "N": cell_logN[all_cells] - n0, "D": cell_logD[all_cells] - d0}
    i = 0
    for j, f in enumerate(features):
        A = np.column_stack([Fc[name] for name in f])
        p0[i:i + len(f)] = np.linalg.lstsq(A, bestX[:, j], rcond=None)[0]
        i += len(f)
    for t, pw in enumerate(terms):
        if pw.sum() == 2 and pw.max() == 2:
            p0[n_loc + t] = 0.01
    p0[n_loc + n_shape:] = np.log([best[c] for c in all_cells])

    res = least_squares(resid, p0, jac=jac, loss="soft_l1", f_scale=options.f_scale,
                        x_scale="jac", max_nfev=options.max_nfev)
    locs, sh, m = unpack(res.x)
    location = {ax: {name: float(a[q]) for q, name in enumerate(f)}
                for ax, f, a in zip(axes, features, locs)}
    r = resid(res.x)
    status = from_least_squares(res, f"surface fit (window {options.window:.1%}, f_scale "
                                     f"{options.f_scale:.1%}, {K} cells)")
    status.unidentified = flat_parameters(jac(res.x), _location_names(axes, features)
                                          + [None] * (n_shape + K))
    fit = SurfaceFit(axes=tuple(axes), features=features, location=location, centre=(n0, d0),
                     terms=terms, shape=sh, levels={int(c): float(m[i])
                                                     for i, c in enumerate(all_cells)},
                     options=options, n_runs=int(sel.sum()), n_cells=K,
                     rms=float(np.sqrt(np.mean(r ** 2))), status=status)
    fit.covariance = _cluster_covariance(jac(res.x), r, ci, features, n_loc, n0, d0, axes)
    return fit


def _location_names(axes, features) -> list:
    """Readable names of the location parameters, e.g. "the learning_rate law's D exponent"."""
    return [f"the {ax} law's " + ("coefficient" if name == "1" else f"{name} exponent")
            for ax, f in zip(axes, features) for name in f]


def _cluster_covariance(J, r, ci, features, n_loc, n0, d0, axes):
    """Cell-clustered sandwich covariance of (ln coefficient, exponents) per axis.

    Runs in a cell share that cell's deviation from the law, so the covariance is
    clustered by cell (a run-level covariance would be far too optimistic).
    """
    try:
        bread = np.linalg.pinv(J.T @ J)
    except np.linalg.LinAlgError:
        return {}
    meat = np.zeros_like(bread)
    for c in np.unique(ci):
        s = J[ci == c].T @ r[ci == c]
        meat += np.outer(s, s)
    K = len(np.unique(ci))
    cov = bread @ meat @ bread * K / max(K - 1, 1)
    out, i = {}, 0
    for ax, f in zip(axes, features):
        idx = list(range(i, i + len(f)))
        i += len(f)
        # map centred (a0, aN, aD) to (ln coef, eN, eD): ln coef = a0 - aN n0 - aD d0
        M = np.zeros((len(f), len(f)))
        for q, name in enumerate(f):
            M[q, q] = 1.0
            if name == "N":
                M[0, q] = -n0
            if name == "D":
                M[0, q] = -d0
        out[ax] = (M @ cov[np.ix_(idx, idx)] @ M.T).tolist()
    return out
