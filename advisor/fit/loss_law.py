"""The loss law L(N, D) = E + A / N^alpha + B / D^beta, fitted as Chinchilla and Epoch AI did.

Method (Hoffmann et al. 2022, Sec. 3.3 and App. D.2; Besiroglu et al. 2024, "Chinchilla
Scaling: A replication attempt", arXiv:2404.10102): write the law as

    log L_hat = LSE(a - alpha log N, b - beta log D, e),   A = e^a, B = e^b, E = e^e,

minimise the Huber loss (delta = 1e-3) of log L_hat - log L over the points with L-BFGS,
starting from a grid of initial values, and keep the best. Confidence intervals come from
refitting bootstrap resamples of the points.

Units: N as the caller counts it (Chinchilla: total parameters; Step Law grids: non-embedding),
D training tokens, L in nats per token. Pure numpy/scipy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax

from advisor.errors import AdvisorError
from advisor.fit.status import FitStatus, from_minimize

PARAMS = ("E", "A", "B", "alpha", "beta")
HUBER_DELTA = 1e-3

# Chinchilla's grid of initial values (Hoffmann et al. 2022, App. D.2), as Epoch used it.
GRID = {
    "alpha": np.arange(0.0, 2.5, 0.5),
    "beta": np.arange(0.0, 2.5, 0.5),
    "e": np.arange(-1.0, 1.5, 0.5),
    "a": np.arange(0.0, 30.0, 5.0),
    "b": np.arange(0.0, 30.0, 5.0),
}
MIN_POINTS = 6


@dataclass
class LossLawFit:
    """A fitted loss law, its bootstrap intervals (95%) and its fit quality."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    n_points: int
    huber: float                      # objective at the optimum (sum over points)
    rms_log_residual: float           # root mean square of log L_hat - log L
    intervals: dict = field(default_factory=dict)   # name -> (lo, hi), 95%
    n_bootstrap: int = 0
    status: FitStatus | None = None   # L-BFGS's status for the kept (best) start
    n_bootstrap_unconverged: int = 0  # bootstrap refits L-BFGS did not finish (300 iterations)

    def params(self) -> dict:
        return {k: getattr(self, k) for k in PARAMS}

    def predict(self, N, D):
        N = np.asarray(N, float)
        D = np.asarray(D, float)
        return self.E + self.A / N ** self.alpha + self.B / D ** self.beta


def _huber(r, delta):
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _huber_grad(r, delta):
    return np.clip(r, -delta, delta)


def _objective(theta, logN, logD, logL, w, delta):
    """Weighted Huber objective and gradient in theta = (a, b, e, alpha, beta)."""
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * logN, b - beta * logD, np.full_like(logN, e)])
    pred = logsumexp(terms, axis=0)
    r = pred - logL
    f = np.sum(w * _huber(r, delta))
    g_r = w * _huber_grad(r, delta)
    s = softmax(terms, axis=0)            # d pred / d term
    grad = np.array([
        np.sum(g_r * s[0]),
        np.sum(g_r * s[1]),
        np.sum(g_r * s[2]),
        np.sum(g_r * s[0] * -logN),
        np.sum(g_r * s[1] * -logD),
    ])
    return f, grad


def _grid_values(logN, logD, logL, delta, chunk=2048):
    """Objective at every point of the initial-value grid (vectorised)."""
    g = np.array(np.meshgrid(GRID["a"], GRID["b"], GRID["e"], GRID["alpha"], GRID["beta"],
                             indexing="ij")).reshape(5, -1).T
    out = np.empty(len(g))
    for i in range(0, len(g), chunk):
        a, b, e, al, be = (g[i:i + chunk, j][:, None] for j in range(5))
        terms = np.stack([a - al * logN, b - be * logD, np.broadcast_to(e, (len(a), len(logN)))])
        r = logsumexp(terms, axis=0) - logL
        out[i:i + chunk] = _huber(r, delta).sum(axis=1)
    return g, out


def _fit_once(logN, logD, logL, w, delta, starts, maxiter=2000):
    best = None
    if not starts:
        raise AdvisorError("loss law: no starting point")
    for x0 in starts:
        res = minimize(_objective, x0, args=(logN, logD, logL, w, delta), jac=True,
                       method="L-BFGS-B", options={"maxiter": maxiter, "gtol": 1e-12,
                                                   "ftol": 1e-15})
        if np.all(np.isfinite(res.x)) and (best is None or res.fun < best.fun):
            best = res
    return best


def check_points(N, D, L):
    N, D, L = (np.asarray(x, float).ravel() for x in (N, D, L))
    if not (len(N) == len(D) == len(L)):
        raise AdvisorError("loss law: N, D and L must have the same length")
    if len(N) < MIN_POINTS:
        raise AdvisorError(f"loss law needs at least {MIN_POINTS} (N, D, loss) points to fit "
                           f"5 constants, got {len(N)}")
    for name, x in (("N", N), ("D", D), ("loss", L)):
        if not np.all(np.isfinite(x)) or np.any(x <= 0):
            raise AdvisorError(f"loss law: every {name} must be positive and finite")
    if len(np.unique(N)) < 2 or len(np.unique(D)) < 2:
        raise AdvisorError("loss law needs at least 2 distinct model sizes and 2 distinct "
                           "token counts (got "
                           f"{len(np.unique(N))} and {len(np.unique(D))})")
    return N, D, L


def fit_loss_law(N, D, L, *, delta: float = HUBER_DELTA, n_starts: int = 8,
                 n_bootstrap: int = 0, seed: int = 0) -> LossLawFit:
    """Fit E + A/N^alpha + B/D^beta by Huber loss on log loss (Chinchilla/Epoch method).

    The full Chinchilla grid of initial values is evaluated (4,500 points, vectorised) and
    L-BFGS is run from the ``n_starts`` best of them; the best optimum is kept. With
    ``n_bootstrap`` > 0 the points are resampled with replacement that many times and refitted
    (started from the full-data optimum, at most 300 L-BFGS iterations each) for 95%
    percentile intervals.
    """
    N, D, L = check_points(N, D, L)
    logN, logD, logL = np.log(N), np.log(D), np.log(L)
    grid, vals = _grid_values(logN, logD, logL, delta)
    order = np.argsort(vals)[:n_starts]
    starts = [grid[i] for i in order]
    w = np.ones_like(logN)
    best = _fit_once(logN, logD, logL, w, delta, starts)
    if best is None:
        raise AdvisorError("loss law: L-BFGS ended with non-finite parameters from every start")
    theta = best.x
    fit = _to_fit(theta, logN, logD, logL, delta)
    fit.status = from_minimize(best, f"loss-law fit (L-BFGS, {len(N)} points)",
                               names=["a", "b", "e", "alpha", "beta"])

    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        samples = []
        for _ in range(n_bootstrap):
            counts = np.bincount(rng.integers(0, len(N), len(N)), minlength=len(N)).astype(float)
            res = _fit_once(logN, logD, logL, counts, delta, [theta], maxiter=300)
            if res is None:
                fit.n_bootstrap_unconverged += 1
                continue
            if not res.success:
                fit.n_bootstrap_unconverged += 1
            samples.append(_natural(res.x))
        samples = np.array(samples)
        if len(samples):
            fit.intervals = {k: (float(np.percentile(samples[:, i], 2.5)),
                                 float(np.percentile(samples[:, i], 97.5)))
                             for i, k in enumerate(PARAMS)}
        fit.n_bootstrap = n_bootstrap
    return fit


def _natural(theta):
    a, b, e, alpha, beta = theta
    return np.array([np.exp(e), np.exp(a), np.exp(b), alpha, beta])


def _to_fit(theta, logN, logD, logL, delta) -> LossLawFit:
    E, A, B, alpha, beta = _natural(theta)
    f, _ = _objective(theta, logN, logD, logL, np.ones_like(logN), delta)
    pred = np.log(E + A * np.exp(-alpha * logN) + B * np.exp(-beta * logD))
    rms = float(np.sqrt(np.mean((pred - logL) ** 2)))
    return LossLawFit(E=float(E), A=float(A), B=float(B), alpha=float(alpha), beta=float(beta),
                      n_points=len(logN), huber=float(f), rms_log_residual=rms)
