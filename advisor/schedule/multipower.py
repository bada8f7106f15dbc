"""The multi-power law of Luo et al. 2025 (arXiv 2503.12811), evaluated fast.

    L(t) = L0 + A * S1(t)^-alpha - B * LD(t)
    LD(t) = sum_{k=1..t} (eta_{k-1} - eta_k) * G(eta_k^-gamma * S_k(t)),
    G(x)  = 1 - (C x + 1)^-beta,   S_k(t) = sum_{tau=k..t} eta_tau,   S1(t) = sum_{tau<=t} eta_tau

(the paper writes S1 + S_W with S_W the warmup area; summing from step 0 over the warmup is
the same thing, and is what the authors' code does). LRs here are divided by the law's
``lr_scale`` (the peak LR of the fit), so the constants are of order one; see
:func:`params_from_raw` to convert the authors' constants, which use absolute LRs.

Speed: the naive sum costs O(T) per point. We evaluate it on a *block plan*: the LR drops
are summed in blocks of steps that never straddle an evaluation step, finest next to each
evaluation step (sizes 1, 1, 2, 4, ... going back) where G changes fastest; each block
enters with its total drop, its drop-weighted mean LR and its drop-weighted mean S_k offset
(exact to first order). Blocks with no LR change drop out entirely, so a WSD schedule costs
only its warmup and cooldown. Cost: n_points x n_blocks, about n^2 log(T/n).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NAME = "multipower"
PARAMS = ("L0", "A", "alpha", "B", "C", "beta", "gamma")
LOG_PARAMS = ("A", "B", "C")          # fitted on a log scale (positive, scale-free)
BOUNDS = {"L0": (0.0, None), "alpha": (0.01, 3.0), "beta": (0.01, 5.0), "gamma": (-1.0, 3.0)}


@dataclass
class Plan:
    """Everything about one curve's schedule that the law needs, at given eval steps."""

    steps: np.ndarray      # (n,) evaluation steps
    S1: np.ndarray         # (n,) forward area up to each step (normalised LR x steps)
    Pt: np.ndarray         # (n,) cumulative LR at each eval step
    D: np.ndarray          # (M,) total LR drop of each block (eta_{k-1} - eta_k summed)
    logu: np.ndarray       # (M,) log of the drop-weighted mean LR of each block
    Pprev: np.ndarray      # (M,) drop-weighted mean of P[k-1] over the block
    rows: np.ndarray       # (E,) eval index of each (step, block) pair with S_k(t) > 0
    cols: np.ndarray       # (E,) block index of that pair
    S: np.ndarray          # (E,) S_k(t) of that pair (pairs with k > t are left out)


def _blocks(steps: np.ndarray, ratio: float = 2.0) -> list[tuple[int, int]]:
    """Blocks [a, b] of k covering 1..steps[-1]; none straddles an eval step; going back
    from each eval step the sizes are 1, 1, ratio, ratio^2, ... (finest where G is steepest)."""
    out = []
    prev = 0
    for s in np.asarray(steps, dtype=np.int64):
        b, i = int(s), 0
        while b > prev:
            size = 1 if i == 0 else max(1, int(ratio ** (i - 1)))
            a = max(prev + 1, b - size + 1)
            out.append((a, b))
            b, i = a - 1, i + 1
        prev = int(s)
    return out


def make_plan(u: np.ndarray, steps: np.ndarray, ratio: float = 2.0,
              warmup_in_ld: bool = False, rho: float = 1.0) -> Plan:
    """Block plan for normalised per-step LRs ``u`` (index = step) at eval ``steps``.

    ``warmup_in_ld=False`` (our default) leaves the warmup's LR *rises* out of the loss-drop
    sum, so warmup enters only as forward area: with the rises in (as in the authors' code),
    the fitted L0 silently absorbs the warmup of the fitted curves and a schedule with a
    different warmup is mispredicted by up to B * eta_max. ``True`` reproduces the authors.

    ``rho`` (our variant, a fixed hyperparameter chosen by cross-validation): the forward
    area is S1(t) = sum eta^rho, so with rho < 1 a step at a low LR earns relatively more
    progress than its LR; rho = 1 is the published law.
    """
    u = np.asarray(u, dtype=np.float64)
    steps = np.asarray(steps, dtype=np.int64)
    P = np.cumsum(u)
    d = np.zeros_like(u)
    d[1:] = u[:-1] - u[1:]                     # drop at step k (negative in warmup)
    if not warmup_in_ld:
        ipk = int(np.argmax(u >= u.max() * (1 - 1e-9)))
        d[: ipk + 1] = 0.0
    tmax = int(steps[-1])
    # Only k with a nonzero drop matter; build geometric blocks, then keep nonzero ones.
    nz = np.flatnonzero(d[1: tmax + 1]) + 1
    D, U, Pp, ends = [], [], [], []
    if len(nz):
        bl = np.array(_blocks(steps, ratio), dtype=np.int64)
        bl = bl[np.argsort(bl[:, 0])]
        cd = np.concatenate([[0.0], np.cumsum(d)])           # cd[k] = sum d[0..k-1]
        w = np.abs(d)
        cw = np.concatenate([[0.0], np.cumsum(w)])
        cwu = np.concatenate([[0.0], np.cumsum(w * u)])
        Pm1 = np.concatenate([[0.0], P[:-1]])                 # P[k-1]
        cwp = np.concatenate([[0.0], np.cumsum(w * Pm1)])
        a, b = bl[:, 0], bl[:, 1] + 1
        Wsum = cw[b] - cw[a]
        keep = Wsum > 0
        a, b, Wsum = a[keep], b[keep], Wsum[keep]
        D = cd[b] - cd[a]
        U = (cwu[b] - cwu[a]) / Wsum
        Pp = (cwp[b] - cwp[a]) / Wsum
        ends = b - 1
    D, U, Pp = np.asarray(D, float), np.asarray(U, float), np.asarray(Pp, float)
    Pt = P[steps]
    tiny = 1e-12
    if len(D):
        Sd = Pt[:, None] - Pp[None, :]
        ok = (Sd > 0) & (steps[:, None] >= np.asarray(ends)[None, :])
        rows, cols = np.nonzero(ok)
        S = Sd[rows, cols]
    else:
        rows = cols = np.zeros(0, dtype=np.int64)
        S = np.zeros(0)
    S1 = Pt if rho == 1.0 else np.cumsum(np.where(u > 0, np.abs(u) ** rho, 0.0))[steps]
    return Plan(steps=steps, S1=np.maximum(S1, tiny), Pt=Pt, D=D,
                logu=np.log(np.maximum(U, tiny)), Pprev=Pp, rows=rows, cols=cols, S=S)


def loss_drop(theta, plan: Plan, need_jac: bool = False):
    """LD(t) and, if asked, its derivatives wrt (C, beta, gamma); shapes (n,), (n, 3)."""
    _, _, _, _, C, beta, gamma = theta[:7]
    n = len(plan.steps)
    if plan.D.size == 0:
        return np.zeros(n), np.zeros((n, 3))
    D = plan.D
    v = C * np.exp(-gamma * plan.logu)                   # C u^-gamma per block
    x = v[plan.cols] * plan.S
    L = np.log1p(x)
    E = np.exp(-beta * L)                                # (1 + x)^-beta
    Dk = D[plan.cols]
    LD = np.bincount(plan.rows, weights=(1.0 - E) * Dk, minlength=n)
    if not need_jac:
        return LD, None
    Gx_x = beta * E * x / (1.0 + x) * Dk                 # x dG/dx, times the drop
    dC = np.bincount(plan.rows, weights=Gx_x, minlength=n) / C
    dgamma = np.bincount(plan.rows, weights=Gx_x * -plan.logu[plan.cols], minlength=n)
    dbeta = np.bincount(plan.rows, weights=E * L * Dk, minlength=n)
    return LD, np.stack([dC, dbeta, dgamma], axis=1)


def predict(theta, plan: Plan) -> np.ndarray:
    L0, A, alpha, B = theta[:4]
    LD, _ = loss_drop(theta, plan)
    return L0 + A * plan.S1 ** -alpha - B * LD


def value_and_jac(theta, plan: Plan):
    """Predicted loss (n,) and d pred / d theta (n, 7)."""
    L0, A, alpha, B = theta[:4]
    LD, dLD = loss_drop(theta, plan, need_jac=True)
    p = plan.S1 ** -alpha
    pred = L0 + A * p - B * LD
    J = np.empty((len(pred), 7))
    J[:, 0] = 1.0
    J[:, 1] = p
    J[:, 2] = -A * p * np.log(plan.S1)
    J[:, 3] = -LD
    J[:, 4:7] = -B * dLD
    return pred, J


def predict_exact(theta, u: np.ndarray, steps) -> np.ndarray:
    """The defining O(n T) sum, for checking the block plan (slow; small inputs only)."""
    L0, A, alpha, B, C, beta, gamma = theta
    u = np.asarray(u, dtype=np.float64)
    P = np.cumsum(u)
    out = []
    for t in np.asarray(steps, dtype=np.int64):
        k = np.arange(1, t + 1)
        S = P[t] - P[k - 1]
        drop = u[k - 1] - u[k]
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(S > 0, C * np.maximum(u[k], 1e-12) ** -gamma * S, 0.0)
        out.append(L0 + A * P[t] ** -alpha - B * np.sum(drop * (1 - (1 + x) ** -beta)))
    return np.asarray(out)


def params_from_raw(raw, lr_scale: float) -> np.ndarray:
    """Convert constants fitted on absolute LRs (as the authors report) to ``lr_scale`` units."""
    L0, A, alpha, B, C, beta, gamma = raw
    return np.array([L0, A * lr_scale ** -alpha, alpha, B * lr_scale,
                     C * lr_scale ** (1 - gamma), beta, gamma])


def starts(base4) -> list[np.ndarray]:
    """Starting points: (L0, A, alpha, B) from the first stage, a grid over (C, beta, gamma).

    With the LR divided by its peak, the authors' fits (C ~ 2 on absolute LRs ~3e-4, gamma
    ~0.64) correspond to C ~ 0.1; the grid spans two decades around that.
    """
    L0, A, alpha, B = base4
    out = []
    for C in (0.03, 0.1, 0.3, 1.0):
        for beta in (0.4, 0.8):
            for gamma in (0.3, 0.7):
                out.append(np.array([L0, A, alpha, B, C, beta, gamma]))
    return out
