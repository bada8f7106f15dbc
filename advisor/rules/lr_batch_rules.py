"""Which published rule the LR optimum follows as the batch moves, and the ridge it traces.

The ridge g(u) is the best LR at a batch B != B*, as an offset in octaves from the LR optimum
lr*, tabulated at batch offsets u = log2(B / B*) (knots); measured on a fitted loss surface by
advisor/fit/ridge.py and shipped in recipes/published/conditioning.yaml. Pure functions; units
octaves (log2) unless stated.
"""
from __future__ import annotations

import math

from advisor.errors import AdvisorError

LN2 = math.log(2.0)
Z80 = 1.281552          # standard-normal quantile of a central 80% interval
Z95 = 1.959964

# slope ranges (d ln lr* / d ln B) that name a published rule: the linear scaling rule
# (Goyal et al. 2017), the square-root rule (Hoffer et al. 2017; Malladi et al. 2022 for
# Adam), none (the LR optimum does not move with the batch)
RULES = (("linear", 0.75, 1.5), ("square root", 0.3, 0.75), ("none", -0.3, 0.3))


def rule_for_slope(slope: float) -> str:
    """The published scaling rule a local slope d ln lr*/d ln B is closest to."""
    for name, lo, hi in RULES:
        if lo <= slope < hi:
            return name
    return "lr falls as batch grows" if slope < -0.3 else "faster than linear"


def ridge_offset_oct(u_oct: float, knots_oct, values_oct) -> float:
    """g(u): LR offset (octaves) at batch offset ``u_oct`` (octaves of B / B*).

    Linear between the tabulated knots; beyond them the edge segment's slope continues
    (the caller warns: that is outside the grid).
    """
    k, g = list(knots_oct), list(values_oct)
    if len(k) < 2 or len(k) != len(g):
        raise AdvisorError("conditioning ridge needs at least two knots")
    if u_oct <= k[0]:
        i = 0
    elif u_oct >= k[-1]:
        i = len(k) - 2
    else:
        i = max(j for j in range(len(k) - 1) if k[j] <= u_oct)
    t = (u_oct - k[i]) / (k[i + 1] - k[i])
    return g[i] + t * (g[i + 1] - g[i])


def local_slope(u_oct: float, knots_oct, values_oct, half_width: float = 0.5) -> float:
    """d ln lr* / d ln B of the ridge around ``u_oct`` (a central difference over +-0.5 octave)."""
    a = ridge_offset_oct(u_oct - half_width, knots_oct, values_oct)
    b = ridge_offset_oct(u_oct + half_width, knots_oct, values_oct)
    return (b - a) / (2 * half_width)


