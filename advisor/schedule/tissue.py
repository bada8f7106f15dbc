"""The LR-annealing law of Tissue et al. 2024 (arXiv 2408.11029).

    L(s) = L0 + A * S1(s)^-alpha - C * S2(s)
    S1(s) = sum_{i<=s} eta_i                         (forward area)
    S2(s) = sum_{i<=s} m_i,  m_i = lam * m_{i-1} + (eta_{i-1} - eta_i)   (annealing area)

LRs are divided by the law's ``lr_scale`` (the peak LR of the fit). Following the public
fits, warmup steps count as the peak LR (``warmup_as_peak``): warmup adds forward area at
the peak rate and no negative annealing. ``lam`` (the momentum of the annealing area,
about 0.999 in the paper) is not a gradient parameter: the fitter tries a few values and
keeps the best (see :data:`LAMS`). S1 and S2 are O(T) cumulative sums.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

NAME = "tissue"
PARAMS = ("L0", "A", "alpha", "C")
LOG_PARAMS = ("A", "C")
BOUNDS = {"L0": (0.0, None), "alpha": (0.01, 3.0)}
LAMS = (0.99, 0.995, 0.999, 0.9995)


@dataclass
class Plan:
    steps: np.ndarray
    S1: np.ndarray
    S2: np.ndarray


def effective_lr(u: np.ndarray) -> np.ndarray:
    """LRs with warmup (every step before the LR first reaches its peak) set to the peak."""
    u = np.asarray(u, dtype=np.float64).copy()
    ipk = int(np.argmax(u >= u.max() * (1 - 1e-9)))
    u[:ipk] = u[ipk]
    return u


def make_plan(u: np.ndarray, steps: np.ndarray, lam: float = 0.999,
              warmup_as_peak: bool = True) -> Plan:
    u = effective_lr(u) if warmup_as_peak else np.asarray(u, dtype=np.float64)
    steps = np.asarray(steps, dtype=np.int64)
    drop = np.zeros_like(u)
    drop[1:] = u[:-1] - u[1:]
    m = lfilter([1.0], [1.0, -lam], drop)              # m_i = lam m_{i-1} + drop_i
    S2 = np.cumsum(m)
    S1 = np.cumsum(u)
    S1[0] = max(S1[0], 1e-12)
    return Plan(steps=steps, S1=np.maximum(S1[steps], 1e-12), S2=S2[steps])


def predict(theta, plan: Plan) -> np.ndarray:
    L0, A, alpha, C = theta
    return L0 + A * plan.S1 ** -alpha - C * plan.S2


def value_and_jac(theta, plan: Plan):
    L0, A, alpha, C = theta
    p = plan.S1 ** -alpha
    pred = L0 + A * p - C * plan.S2
    J = np.stack([np.ones_like(p), p, -A * p * np.log(plan.S1), -plan.S2], axis=1)
    return pred, J


def starts(base4, max_s2: float) -> list[np.ndarray]:
    """Grid of starts; C starts at (0.03..0.3)/max(S2) (see shared notes: a fixed C grid
    fails when lam or the LR scale change)."""
    L0, A, alpha, _ = base4
    s2 = max(max_s2, 1e-12)
    return [np.array([L0, A, alpha, c / s2]) for c in (0.03, 0.1, 0.3)]
