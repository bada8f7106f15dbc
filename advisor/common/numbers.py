"""Parsing human-written counts: 7e9, 7B, 7_000_000_000, 1.4T, 350M, 4k; and sequence lengths.

Counts of parameters and tokens are decimal (k = 1e3, M = 1e6, B = G = 1e9, T = 1e12).
Sequence lengths are powers of two by convention, so there ``k`` means 1024 (8k = 8192).
A comma is refused everywhere: ``1,5B`` is 1.5e9 in half the world and 15e9 in the other.
"""
from __future__ import annotations

import math
import re

from advisor.errors import AdvisorError

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
_PATTERN = re.compile(r"^([+-]?(?:\d[\d_]*\.?\d*|\.\d+)(?:e[+-]?\d+)?)\s*([kmbgt]?)$")
#: Shortest sequence length accepted (tokens): below this a "sequence" is not a context.
MIN_SEQ_LEN = 16
MAX_SEQ_LEN = 1 << 24
#: --help text shared by every --seq-len option.
SEQ_LEN_UNITS = "k = 1024 tokens here (8k = 8192); a whole number, at least 16"


def parse_count(text, what: str = "value", minimum: float = 1.0,
                maximum: float = 1e15, example: str = "7e9, 7B or 7000000000") -> float:
    """Parse a positive count such as ``7e9``, ``7B``, ``7000000000``, ``1.4T``.

    Suffixes k, M, B (or G), T are powers of 1000, case-insensitive. Raises AdvisorError
    with one line for anything that is not a finite number in [minimum, maximum];
    ``example`` is what the message offers as a well-formed value.
    """
    s = str(text).strip().lower()
    if "," in s:
        raise AdvisorError(f"{what} must not contain a comma (write 1.5B or 1_500_000_000), "
                           f"got {text!r}")
    m = _PATTERN.match(s)
    if not m:
        raise AdvisorError(f"{what} must be a number like {example}, got {text!r}")
    mantissa, suffix = m.groups()
    try:
        value = float(mantissa.replace("_", "")) * _SUFFIX[suffix]
    except ValueError:
        raise AdvisorError(f"{what} must be a number like {example}, got {text!r}") from None
    if not math.isfinite(value):
        raise AdvisorError(f"{what} must be finite, got {text!r}")
    if value <= 0:
        raise AdvisorError(f"{what} must be positive, got {text!r}")
    if value < minimum:
        raise AdvisorError(f"{what} {value:.3g} is too small (at least {minimum:.3g})")
    if value > maximum:
        raise AdvisorError(f"{what} {value:.3g} is absurdly large (at most {maximum:.3g})")
    return value


def positive_number(value, what: str) -> float:
    """``value`` (a number or a numeric string) as a positive finite float.

    The one positivity check for library arguments (law variables N and D, LRs, multipliers):
    a boolean, a non-number, zero, a negative, inf or NaN raises AdvisorError with one line
    naming ``what``.
    """
    try:
        if isinstance(value, bool):
            raise TypeError
        v = float(value)
    except (TypeError, ValueError):
        raise AdvisorError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise AdvisorError(f"{what} must be a positive finite number, got {value!r}")
    return v


def parse_seq_len(text, what: str = "seq-len") -> int:
    """Parse a sequence length in tokens: ``4096``, ``8k`` (= 8192: k is 1024 here), ``2**k``.

    Must be a whole number of tokens in [MIN_SEQ_LEN, MAX_SEQ_LEN]; ``4096.5``, ``1`` or
    ``8,192`` are refused with one line (AdvisorError).
    """
    s = str(text).strip().lower()
    binary = s.endswith("k")
    try:
        if s[-1:] in ("m", "b", "g", "t") or "," in s:
            raise AdvisorError("")
        value = parse_count(s[:-1] if binary else s, what, minimum=1e-300)
    except AdvisorError:
        raise AdvisorError(f"{what} must be a whole number of tokens such as 4096 or 8k "
                           f"(k = 1024), got {text!r}") from None
    if binary:
        value *= 1024
    if value != int(value):
        raise AdvisorError(f"{what} must be a whole number of tokens, got {text!r}")
    n = int(value)
    if n < MIN_SEQ_LEN:
        raise AdvisorError(f"{what} {n} is too short (at least {MIN_SEQ_LEN} tokens), "
                           f"got {text!r}")
    if n > MAX_SEQ_LEN:
        raise AdvisorError(f"{what} {n} is absurdly long (at most {MAX_SEQ_LEN} tokens)")
    return n
