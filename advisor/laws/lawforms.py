"""The formula families a law set may use, as small pure functions.

A law in a law-set file names one of these forms and gives its constants; nothing in a file is
ever evaluated as code. Each form is a :class:`Form`: which constants it takes, which
variables it reads, and how to compute its value. Variables (see recipes/laws/SCHEMA.md):

    N    parameters, counted as the law set's ``conventions.params`` says
    D    training tokens
    C    training compute in FLOPs (6ND, or DeepSeek's M*D, per ``conventions.compute``)
    TPP  tokens per parameter, D / N
    L    a loss in nats per token (the set's own loss law, or supplied)
    W    the model width d_model, channels (the laws of optima read it for the LR)
    lr, B_tokens   the peak LR and batch size in tokens (for ``adamw_timescale``)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

from advisor.errors import AdvisorError

VARIABLES = ("N", "D", "C", "TPP", "L", "W")


@dataclass(frozen=True)
class Form:
    name: str
    required: tuple[str, ...]           # constant keys that must be present
    evaluate: Callable[[Mapping, Mapping], float]   # (law, variables) -> value
    needs: Callable[[Mapping], set]     # law -> names of variables it reads
    description: str


def _num(law: Mapping, key: str) -> float:
    return float(law[key])


def _power_law(law, v):
    out = _num(law, "coefficient")
    for var, e in law["exponents"].items():
        out *= _var(v, var) ** float(e)
    return out


def _log_linear(law, v):
    out = _num(law, "intercept")
    for var, c in law["coefficients"].items():
        out += float(c) * math.log(_var(v, var))
    return out


def _chinchilla(law, v):
    return (_num(law, "E") + _num(law, "A") / _var(v, "N") ** _num(law, "alpha")
            + _num(law, "B") / _var(v, "D") ** _num(law, "beta"))


def _kaplan(law, v):
    ratio = _num(law, "alpha_N") / _num(law, "alpha_D")
    inner = (_num(law, "Nc") / _var(v, "N")) ** ratio + _num(law, "Dc") / _var(v, "D")
    return inner ** _num(law, "alpha_D")


def _adamw_timescale(law, v):
    tau = _num(law, "coefficient")
    for var, e in law["exponents"].items():
        tau *= _var(v, var) ** float(e)
    return _var(v, "B_tokens") / (_var(v, "lr") * tau * _var(v, "D"))


def _constant(law, v):
    return _num(law, "value")


def _var(v: Mapping, name: str) -> float:
    if name not in v or v[name] is None:
        raise AdvisorError(f"law needs variable {name}, which is not available here")
    return float(v[name])


FORMS: dict[str, Form] = {
    "power_law": Form("power_law", ("coefficient", "exponents"), _power_law,
                      lambda law: set(law["exponents"]),
                      "coefficient * prod VAR^exponent"),
    "log_linear": Form("log_linear", ("intercept", "coefficients"), _log_linear,
                       lambda law: set(law["coefficients"]),
                       "intercept + sum coefficient * ln VAR"),
    "chinchilla": Form("chinchilla", ("E", "A", "B", "alpha", "beta"), _chinchilla,
                       lambda law: {"N", "D"}, "E + A/N^alpha + B/D^beta"),
    "kaplan": Form("kaplan", ("Nc", "Dc", "alpha_N", "alpha_D"), _kaplan,
                   lambda law: {"N", "D"}, "((Nc/N)^(alpha_N/alpha_D) + Dc/D)^alpha_D"),
    "adamw_timescale": Form("adamw_timescale", ("coefficient", "exponents"), _adamw_timescale,
                            lambda law: set(law["exponents"]) | {"D", "lr", "B_tokens"},
                            "lambda = B/(lr * tau * D), tau = coefficient * prod VAR^exponent"),
    "constant": Form("constant", ("value",), _constant, lambda law: set(), "value"),
}

# variables each mapping-valued constant may name
_MAPPING_KEYS = {"exponents", "coefficients"}


def validate_law(quantity: str, law: Mapping) -> None:
    """Raise AdvisorError unless ``law`` is a well-formed law of a known form."""
    where = f"law {quantity!r}"
    if not isinstance(law, Mapping):
        raise AdvisorError(f"{where} must be a mapping, got {type(law).__name__}")
    form_name = law.get("form")
    if not isinstance(form_name, str) or form_name not in FORMS:
        raise AdvisorError(f"{where}: unknown form {form_name!r}; "
                           f"known forms: {', '.join(sorted(FORMS))}")
    form = FORMS[form_name]
    allowed = set(form.required) | {"form", "fitted_range", "unit", "note", "uncertainty",
                                    "source"}
    unknown = set(law) - allowed
    if unknown:
        raise AdvisorError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                           f"for form {form_name}")
    for key in form.required:
        if key not in law:
            raise AdvisorError(f"{where}: form {form_name} needs constant {key!r}")
        value = law[key]
        if key in _MAPPING_KEYS:
            if not isinstance(value, Mapping) or not value:
                raise AdvisorError(f"{where}: {key} must be a non-empty mapping VAR: number")
            allowed_vars = VARIABLES if form_name != "adamw_timescale" else ("TPP",)
            for var, num in value.items():
                if var not in allowed_vars:
                    raise AdvisorError(f"{where}: unknown variable {var!r} in {key} "
                                       f"(allowed: {', '.join(allowed_vars)})")
                _check_finite(f"{where}: {key}.{var}", num)
        else:
            _check_finite(f"{where}: {key}", value)
    if form_name == "power_law" and float(law["coefficient"]) <= 0:
        raise AdvisorError(f"{where}: coefficient must be positive")
    rng = law.get("fitted_range")
    if rng is not None:
        if not isinstance(rng, Mapping):
            raise AdvisorError(f"{where}: fitted_range must be a mapping VAR: [lo, hi]")
        for var, bounds in rng.items():
            if var not in VARIABLES:
                raise AdvisorError(f"{where}: unknown variable {var!r} in fitted_range")
            if (not isinstance(bounds, (list, tuple)) or len(bounds) != 2):
                raise AdvisorError(f"{where}: fitted_range.{var} must be [lo, hi]")
            lo, hi = (_check_finite(f"{where}: fitted_range.{var}", b) for b in bounds)
            if not lo <= hi:
                raise AdvisorError(f"{where}: fitted_range.{var} has lo > hi")
    unc = law.get("uncertainty")
    if unc is not None:
        _validate_uncertainty(where, law, unc)


def _validate_uncertainty(where, law, unc):
    if not isinstance(unc, Mapping):
        raise AdvisorError(f"{where}: uncertainty must be a mapping")
    cov = unc.get("log_covariance")
    if cov is None:
        return
    if law["form"] != "power_law":
        raise AdvisorError(f"{where}: log_covariance is only defined for power_law")
    k = 1 + len(law["exponents"])
    if (not isinstance(cov, (list, tuple)) or len(cov) != k
            or any(not isinstance(r, (list, tuple)) or len(r) != k for r in cov)):
        raise AdvisorError(f"{where}: log_covariance must be a {k}x{k} matrix "
                           f"(ln coefficient, then each exponent)")
    for r in cov:
        for x in r:
            _check_finite(f"{where}: log_covariance", x)


def _check_finite(where: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AdvisorError(f"{where} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise AdvisorError(f"{where} must be finite, got {value!r}")
    return float(value)


class NotApplicable(AdvisorError):
    """A law evaluated outside the region where its form is valid (e.g. a negative LR).

    Every quantity a law set predicts (LR, batch, weight decay, loss) is positive, so a value
    <= 0 means the target lies beyond where the formula means anything; callers report the law
    as not applicable, with this reason, and leave it out of spreads.
    """


def evaluate_law(law: Mapping, variables: Mapping) -> float:
    """Value of a validated law at the given variables (positive and finite, else an error)."""
    value = FORMS[law["form"]].evaluate(law, variables)
    if not math.isfinite(value):
        raise AdvisorError(f"law {law['form']} evaluates to {value} here")
    if value <= 0:
        raise NotApplicable(f"not applicable: the {law['form']} formula gives {value:.3g} "
                            f"here{_zero_crossing(law)}, and the quantity must be positive")
    return value


def _zero_crossing(law: Mapping) -> str:
    """Where a one-variable log-linear law crosses zero, as text ('' for other forms)."""
    if law["form"] != "log_linear" or len(law["coefficients"]) != 1:
        return ""
    (var, c), = law["coefficients"].items()
    c = float(c)
    if c == 0:
        return ""
    x0 = math.exp(-float(law["intercept"]) / c)
    side = "above" if c < 0 else "below"
    return f" (it is negative for {var} {side} {x0:.3g})"


def variables_needed(law: Mapping) -> set:
    return FORMS[law["form"]].needs(law)


def log_interval(law: Mapping, variables: Mapping, z: float = 1.96):
    """95% interval (lo, hi) of a power law from its log covariance, or None."""
    cov = (law.get("uncertainty") or {}).get("log_covariance")
    if cov is None or law["form"] != "power_law":
        return None
    grad = [1.0] + [math.log(_var(variables, var)) for var in law["exponents"]]
    var_ln = sum(grad[i] * float(cov[i][j]) * grad[j]
                 for i in range(len(grad)) for j in range(len(grad)))
    sd = math.sqrt(max(var_ln, 0.0))
    centre = evaluate_law(law, variables)
    return centre * math.exp(-z * sd), centre * math.exp(z * sd)
