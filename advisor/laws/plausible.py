"""What a hyperparameter law may predict: one check of every law set on load (and before a
fit writes one), so an implausible law is refused with the reason instead of being used.

Two rules, both about the law as a law of training, not about any one target:

* an exponent on a size variable (N parameters, D tokens, C FLOPs, TPP tokens per parameter)
  is at most :data:`MAX_SIZE_EXPONENT` in magnitude: published laws have 0.1-0.7 (e.g. Step
  Law's LR N^-0.713 D^0.307, Porian et al.'s batch N^0.703); an LR that grows as N^3.7 is
  a fit to noise;
* an LR or batch law's exponents on N, D and C lie in :data:`HP_EXPONENT_RANGES` (published
  laws' extremes widened by half, see there): an LR that falls as D^-1.97 over a CPU sweep's
  4 cells is a fit to seed noise, not a law;
* inside its own fitted range (the corners and the middle of ``fitted_range``) each law's
  prediction lies in :data:`LAW_RANGES`, in the law's own units (batch sizes in tokens); for
  the LR and the batch that is the refuse range of :mod:`advisor.rules.plausibility`, the one
  home of what a written LR or batch may be;
* a loss law's exponents (``alpha``/``beta`` of E + A/N^alpha + B/D^beta, ``alpha_N``/
  ``alpha_D`` of Kaplan's form) lie in :data:`LOSS_EXPONENT_RANGE` and its coefficients are
  positive (:func:`loss_law_reason`): a loss that falls as D^-12.6, or not at all (D^-0.000),
  is a fit to two token budgets' noise, not a law.

Where a law's fitted range leaves N or D open, D = 20 N (the Chinchilla ratio) fills it in.
Pure functions; no I/O.
"""
from __future__ import annotations

import itertools
import math

from advisor.errors import AdvisorError
from advisor.rules.plausibility import RANGES as OUTPUT_RANGES
from advisor.specs.conventions import STEPLAW_SEQ_LEN

MAX_SIZE_EXPONENT = 2.0
SIZE_VARIABLES = ("N", "D", "C", "TPP")

# (lo, hi) exclusive of nothing: a prediction outside is refused. Units: learning_rate the
# peak LR (or muP base LR), batch sizes in tokens per step, weight_decay the AdamW lambda,
# loss in nats per token.
LAW_RANGES = {
    "learning_rate": OUTPUT_RANGES["learning_rate"].refuse,
    "batch_size": OUTPUT_RANGES["batch_size_tokens"].refuse,
    "critical_batch_size": (1.0, 1e12),
    "weight_decay": (0.0, 100.0),
    "loss": (1e-3, 30.0),
}
# Loss-law exponents. Published: Chinchilla's Approach 3 alpha 0.34, beta 0.28 (Hoffmann et
# al. 2022, Eq. 10); Epoch AI's refit of Chinchilla's data alpha 0.348, beta 0.366
# (Besiroglu et al. 2024, arXiv:2404.10102); Kaplan et al. 2020's power laws without an
# irreducible term alpha_N 0.076, alpha_D 0.095 (arXiv:2001.08361, Eq. 1.5). The range is
# about a quarter of the smallest to three times the largest: wide enough for small proxies
# on other data, narrow enough to refuse a fit that says nothing about the loss.
LOSS_EXPONENT_RANGE = (0.02, 1.0)
# Signed exponents of LR and batch laws on N, D and C. Published LR laws: Step Law N^-0.713
# D^+0.307 (Li et al. 2025, arXiv:2503.04715); Porian et al. 2024 N^-0.36 (arXiv:2406.19146);
# DeepSeek LLM C^-0.125 (Bi et al. 2024, arXiv:2401.02954, Sec. 3.1); Bjorck et al. 2024
# N^-0.23 D^-0.32 (arXiv:2409.19913). Batch: DeepSeek LLM C^0.327; Power Lines D^0.383
# (Bergsma et al. 2025, arXiv:2505.13738); Step Law D^0.571; Porian et al. N^0.703; critical
# batch D^0.462 (Power Lines). Each range is the published extremes widened by half their
# magnitude, rounded outward to 0.1: LR [-1.07, 0.46] -> [-1.1, 0.5]; batch [0, 1.05] ->
# [-0.3, 1.1], the negative side admitting a fitted N exponent that trades against D (this
# repository's optima-fit: N^-0.17 D^+0.38). Width exponents (W, under a muP or SP width
# rule) and the loss variable L (MiniCPM, Kaplan) are other laws and not judged here.
HP_EXPONENT_RANGES = {
    "learning_rate": (-1.1, 0.5),
    "batch_size": (-0.3, 1.1),
    "critical_batch_size": (-0.3, 1.1),
}
HP_EXPONENT_VARIABLES = ("N", "D", "C")
LOSS_EXPONENTS = {"chinchilla": ("alpha", "beta"), "kaplan": ("alpha_N", "alpha_D")}
LOSS_COEFFICIENTS = {"chinchilla": ("A", "B"), "kaplan": ("Nc", "Dc")}


def _points(rng: dict) -> list[tuple[float, float]]:
    """(N, D) at the corners and the geometric middle of a fitted range."""
    def span(var):
        lo, hi = (float(x) for x in rng[var])
        return [lo, hi, math.sqrt(lo * hi)] if lo > 0 else [hi]
    if "N" in rng and "D" in rng:
        return list(itertools.product(span("N"), span("D")))
    if "N" in rng:
        return [(n, 20 * n) for n in span("N")]
    if "D" in rng:
        return [(d / 20, d) for d in span("D")]
    if "C" in rng:
        return [(math.sqrt(c / 120), 20 * math.sqrt(c / 120)) for c in span("C")]
    return []


def loss_law_reason(law: dict) -> str | None:
    """Why a loss law (a law set's ``loss`` entry) is implausible, or None: an exponent outside
    :data:`LOSS_EXPONENT_RANGE` or a coefficient that is not a positive finite number (see
    the module doc). Forms other than chinchilla and kaplan are not judged here."""
    form = law.get("form")
    lo, hi = LOSS_EXPONENT_RANGE
    for name in LOSS_COEFFICIENTS.get(form, ()):
        v = float(law.get(name, float("nan")))
        if not (math.isfinite(v) and v > 0):
            return f"coefficient {name} = {v:.3g} is not a positive number"
    for name in LOSS_EXPONENTS.get(form, ()):
        v = float(law.get(name, float("nan")))
        if not (math.isfinite(v) and lo <= v <= hi):
            return (f"exponent {name} = {v:.3g} is outside [{lo:g}, {hi:g}] (published: "
                    "0.28-0.37 with an irreducible term, Chinchilla and Epoch AI's refit; "
                    "0.076-0.095 without, Kaplan et al.): the sweep's losses do not identify "
                    "it (too few token budgets or widths, or seed noise larger than the "
                    "differences)")
    return None


def hp_exponent_reason(quantity: str, law: dict) -> str | None:
    """Why an LR or batch law's exponents are implausible (outside
    :data:`HP_EXPONENT_RANGES`, see there), or None; None for other quantities."""
    if quantity not in HP_EXPONENT_RANGES:
        return None
    lo, hi = HP_EXPONENT_RANGES[quantity]
    for var, e in (law.get("exponents") or {}).items():
        if var in HP_EXPONENT_VARIABLES and not lo <= float(e) <= hi:
            return (f"exponent {float(e):+.3g} on {var} is outside [{lo:+g}, {hi:+g}] "
                    "(published laws' extremes widened by half: Step Law, Porian et al., "
                    "DeepSeek LLM, Bjorck et al., Power Lines): the sweep does not identify "
                    "it (too few cells, too narrow a range of N or D, or seed noise larger "
                    "than the differences)")
    return None


def law_reason(ls, quantity: str) -> str | None:
    """Why the law for ``quantity`` of the :class:`LawSet` ``ls`` is implausible, as a phrase
    that starts with the law ("the learning_rate law has ..."), or None (see module doc)."""
    law = ls.laws[quantity]
    for var, e in (law.get("exponents") or {}).items():
        if var in SIZE_VARIABLES and abs(float(e)) > MAX_SIZE_EXPONENT:
            return (f"the {quantity} law has exponent {float(e):+.3g} on {var}, beyond "
                    f"+-{MAX_SIZE_EXPONENT:g} (published laws: 0.1-0.7): it is a fit to data "
                    "without that information, not a law")
    why = hp_exponent_reason(quantity, law)
    if why:
        return f"the {quantity} law's {why}"
    if quantity == "loss":
        why = loss_law_reason(law)
        if why:
            return f"the loss law's {why}"
    lo, hi = LAW_RANGES[quantity]
    for N, D in _points(law.get("fitted_range") or {}):
        try:
            v = ls.predict(quantity, N, D)
        except (AdvisorError, ValueError, ZeroDivisionError, OverflowError):
            continue                  # needs a variable the range does not give (M, L)
        if quantity == "batch_size" and ls.batch_unit == "sequences":
            # no seq_len stated: a batch in sequences is Step Law's layout
            v *= float(ls.conventions.get("seq_len") or STEPLAW_SEQ_LEN)
        if not (math.isfinite(v) and lo <= v <= hi):
            unit = " tokens" if "batch" in quantity else ""
            return (f"the {quantity} law predicts {v:.3g}{unit} at N = {N:.3g}, D = {D:.3g}, "
                    f"inside its own fitted range, outside [{lo:g}, {hi:g}]: its constants "
                    "do not describe training")
    return None


def check_lawset(ls) -> None:
    """AdvisorError naming the first implausible law of a :class:`LawSet` (:func:`law_reason`)."""
    where = f"law set {ls.name!r}" + (f" ({ls.path})" if ls.path else "")
    for quantity in ls.laws:
        why = law_reason(ls, quantity)
        if why:
            advice = ("refit it on a sweep with more token budgets, or drop the loss law"
                      if quantity == "loss" else "refit it on a wider sweep, or fix the file")
            raise AdvisorError(f"{where}: {why}; refusing it ({advice})")
