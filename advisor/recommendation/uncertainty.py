"""How far to trust an LR or batch: a 95% interval and the expected loss cost of its error.

Construction (all spreads in natural-log units of the quantity; docs/trust.md has the
evidence behind each constant):

    sd^2 = sd_fit^2 + max(sd_setup, sd_laws)^2 + (kappa * x)^2

* ``sd_fit``: the law's own fit uncertainty at the target (its ``log_covariance``, if any);
* ``sd_setup``: how far tuned optima and published choices of setups the law never saw lie
  from it (its ``uncertainty.setup_sd_ln``, measured by bench/trust_evidence.py);
* ``sd_laws``: the spread (sd of ln values) of the applicable shipped laws at the target, the
  model uncertainty; the larger of the two is used, since both measure setup-to-setup
  variation and adding them would count it twice;
* ``kappa * x``: extrapolation: ``x`` is how far (in ln units, summed over N and D) the target
  lies outside the law's fitted range, ``kappa`` the sd of the published laws' exponents
  (``uncertainty.extrapolation_sd``): an exponent wrong by kappa moves the value by kappa * x.

The interval is value * exp(+-1.96 sd). The expected excess loss of using the point value is
curvature * E[err^2] with err in octaves (a quadratic bowl in log2 LR and log2 batch, with the
curvature in nats per octave^2 measured on the Step Law grid). Pure functions.
"""
from __future__ import annotations

import math

Z95 = 1.959964
LN2 = math.log(2.0)


def extrapolation_ln(fitted_range, variables) -> float:
    """Sum over variables of the ln-distance beyond the fitted [lo, hi] (0 inside)."""
    x = 0.0
    for var, (lo, hi) in (fitted_range or {}).items():
        v = variables.get(var)
        if v is None or v <= 0:
            continue
        if v > hi:
            x += math.log(v / hi)
        elif v < lo:
            x += math.log(lo / v)
    return x


def spread_ln(values) -> float:
    """Population sd of ln(values) over the positive values (0 for fewer than two)."""
    logs = [math.log(v) for v in values if v and v > 0]
    if len(logs) < 2:
        return 0.0
    m = sum(logs) / len(logs)
    return math.sqrt(sum((x - m) ** 2 for x in logs) / len(logs))


def combine(sd_fit: float, sd_setup: float, sd_laws: float, kappa: float, x: float) -> float:
    """Total sd in ln units: sqrt(fit^2 + max(setup, laws)^2 + (kappa x)^2)."""
    return math.sqrt(sd_fit ** 2 + max(sd_setup, sd_laws) ** 2 + (kappa * x) ** 2)


def interval(value: float, sd_ln: float, z: float = Z95) -> tuple[float, float]:
    return value * math.exp(-z * sd_ln), value * math.exp(z * sd_ln)


def _q(r: float) -> float:
    """Upper tail of the standard normal."""
    return 0.5 * math.erfc(r / math.sqrt(2.0))


def _phi(r: float) -> float:
    return math.exp(-0.5 * r * r) / math.sqrt(2.0 * math.pi)


def mean_sq_error_after_sweep(sd_oct: float, n_points: int, spacing_oct: float) -> float:
    """E[err^2] (octaves^2) of the best of ``n_points`` values ``spacing_oct`` apart, centred
    on the estimate, when the optimum is N(estimate, sd_oct^2) and the sweep finds the grid
    point nearest the optimum (no evaluation noise, no proxy-to-target transfer error).

    Inside the swept range R = (n-1)/2 * spacing the error is uniform within +-spacing/2
    (E = spacing^2 / 12); beyond it, the error is the distance past the edge:
    E[(|e| - R)^2; |e| > R] = 2 sd^2 ((1 + r^2) Q(r) - r phi(r)), r = R / sd.
    """
    if sd_oct <= 0:
        return 0.0
    R = 0.5 * (n_points - 1) * spacing_oct
    r = R / sd_oct
    inside = (1.0 - 2.0 * _q(r)) * spacing_oct ** 2 / 12.0
    outside = 2.0 * sd_oct ** 2 * ((1.0 + r * r) * _q(r) - r * _phi(r))
    return inside + outside


def expected_excess_loss(curv_lr: float, sd_lr_oct: float, curv_b: float = 0.0,
                         sd_b_oct: float = 0.0) -> float:
    """Nats: curvature_lr * E[err_lr^2] + curvature_batch * E[err_b^2], err ~ N(0, sd^2)."""
    return curv_lr * sd_lr_oct ** 2 + curv_b * sd_b_oct ** 2
