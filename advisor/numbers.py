"""Parsing human-written counts: 7e9, 7B, 7_000_000_000, 1.4T, 350M, 4k."""
from __future__ import annotations

import math
import re

from advisor.errors import AdvisorError

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
_PATTERN = re.compile(r"^([+-]?(?:\d[\d_,]*\.?\d*|\.\d+)(?:e[+-]?\d+)?)\s*([kmbgt]?)$")


def parse_count(text, what: str = "value", minimum: float = 1.0,
                maximum: float = 1e15) -> float:
    """Parse a positive count such as ``7e9``, ``7B``, ``7000000000``, ``1.4T``.

    Suffixes k, M, B (or G), T are powers of 1000, case-insensitive. Raises AdvisorError
    with one line for anything that is not a finite number in [minimum, maximum].
    """
    s = str(text).strip().lower()
    m = _PATTERN.match(s)
    if not m:
        raise AdvisorError(f"{what} must be a number like 7e9, 7B or 7000000000, got {text!r}")
    mantissa, suffix = m.groups()
    try:
        value = float(mantissa.replace("_", "").replace(",", "")) * _SUFFIX[suffix]
    except ValueError:
        raise AdvisorError(f"{what} must be a number like 7e9, 7B or 7000000000, "
                           f"got {text!r}") from None
    if not math.isfinite(value):
        raise AdvisorError(f"{what} must be finite, got {text!r}")
    if value <= 0:
        raise AdvisorError(f"{what} must be positive, got {text!r}")
    if value < minimum:
        raise AdvisorError(f"{what} {value:.3g} is too small (at least {minimum:.3g})")
    if value > maximum:
        raise AdvisorError(f"{what} {value:.3g} is absurdly large (at most {maximum:.3g})")
    return value
