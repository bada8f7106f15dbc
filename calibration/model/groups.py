"""Which ``advisor.rules.optim_rules`` group a parameter belongs to: the one classifier.

Two ways, one function (:func:`param_group`), chosen by whether a name is given. Our proxy
family's parameters are known by name (``embed.weight``, ``readout.weight``, ``norm.weight``,
and ``blocks.*``: 2-D hidden matrices, 1-D norm gains and biases): its initialisation, its
optimizer (``calibration.model.proxy``) and the stability probes pass the name. Any other
model that ``mup.set_base_shapes`` has marked (a user's muP model, the spectral checks' zoo)
is classified without a name, by which of a parameter's dimensions grow with width (mup's
``infshape``): two -> a hidden matrix, a vector -> a norm gain or bias, one growing dimension
of a matrix -> embedding-like (LR and weight decay x 1 with width, as the embedding and the
readout; MuReadout applies its own output multiplier): ``calibration.spectral.wd_rules`` and
the zoo's Muon split. Torch-free itself: it reads ``ndim`` and ``infshape`` only.
"""
from __future__ import annotations

from advisor.errors import AdvisorError

_BY_NAME = {"embed.weight": "embedding", "readout.weight": "readout", "norm.weight": "final_norm"}


_RAISE = object()


def param_group(p, name: str | None = None, default=_RAISE) -> str:
    """The optim_rules group (a key of ``advisor.rules.optim_rules.GROUPS``) of parameter
    ``p``: by ``name`` when given and a proxy-family name, else by mup's ``infshape`` (see the
    module docstring); when neither says, ``default`` if given, else AdvisorError."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    if name is not None and name.startswith("blocks."):
        return "hidden" if p.ndim == 2 else "block_vector"
    inf = getattr(p, "infshape", None)
    if inf is not None:
        if inf.ninf() == 2:
            return "hidden"
        return "block_vector" if p.ndim < 2 else "embedding"
    if default is not _RAISE:
        return default
    raise AdvisorError(f"parameter {name or tuple(p.shape)!r} belongs to no optimizer-rules "
                       "group (neither a proxy-family name nor a mup infshape)")


def fan_in_multiplier(p) -> float:
    """m_N of a hidden matrix: its fan-in width multiplier from mup's ``infshape`` (1 for a
    parameter without one or without two growing dimensions)."""
    inf = getattr(p, "infshape", None)
    return float(inf.width_mult()) if inf is not None and inf.ninf() == 2 else 1.0
