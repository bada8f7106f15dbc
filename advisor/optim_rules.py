"""How AdamW's per-parameter-group hyperparameters scale with width and depth: one home.

Pure functions, no torch. The proxy family (``calibration/model.py``: residual multiplier,
initialisation and ``build_optimizer``) and the recommendation's depth view
(``advisor/depth_view.py``) both read these rules, so the model that is calibrated and the
multipliers the user is told to apply are the same numbers.

Notation: ``m_N = width / base_width`` (a hidden matrix's fan-in multiplier), ``m_L = depth /
base_depth`` (numbers of residual blocks), ``alpha`` the depth exponent. Every multiplier is
relative to the base model (width ``base_width``, depth ``base_depth``) trained with the base
hyperparameters: a group's value = base value x multiplier. Multipliers are dimensionless.

Width (muP for Adam; Tensor Programs V, Yang et al. 2022, Table 3; what ``mup.MuAdamW``
does once ``mup.set_base_shapes`` has marked which dimensions grow):

    hidden matrices   LR x 1/m_N, init std x 1/sqrt(m_N), torch weight_decay x m_N
    embedding, norms, readout   LR x 1; the readout's output x 1/m_N (``mup.MuReadout``)

Weight-decay convention: torch's AdamW multiplies weights by ``1 - lr_group * wd_group`` each
step. ``MuAdamW`` multiplies a hidden matrix's ``weight_decay`` by m_N, so that product (the
decay per step, reported as ``decay_per_step``) is the same at every width: "independent"
weight decay. The product reads the multipliers that way.

Depth (residual blocks ``x + r * F(x)``, ``r = m_L^-alpha``):

* ``alpha = 0``: no depth scaling (the standard and the width-only muP models, Dey et al. 2025,
  arXiv 2505.01618, Table 1's SP and muP columns): every depth multiplier is 1.
* ``alpha = 0.5``: Depth-muP (Yang et al. 2023, Tensor Programs VI, arXiv 2310.02244: block
  multiplier a/sqrt(L), and with Adam a learning rate ~ 1/sqrt(L); Bordelon et al. 2023,
  arXiv 2309.16620: 1/sqrt(L) branches with muP give depth-wise transfer in resnets and
  vision transformers).
* ``alpha = 1``: CompleteP (Dey et al. 2025, Table 1, column alpha in [0.5, 1], at alpha = 1).

For alpha in [0.5, 1] Dey et al.'s Table 1, as their reference implementation applies it
(EleutherAI/nanoGPT-mup, branch ``completep``, ``configure_optimizers``), gives: LR of the
parameters inside the residual blocks (hidden matrices, and the blocks' norm gains and biases)
x m_L^(alpha - 1); their Adam eps x m_L^-alpha (and x 1/m_N with width, their Eq. 40);
embedding, final norm and readout unchanged in depth; init variances unchanged in depth (the
branch multiplier does the depth scaling; no GPT-2-style 1/sqrt(2L) on output projections);
hidden ``weight_decay`` x m_N only, not rescaled in depth, so the decay per step of a hidden
matrix is lr*wd*m_L^(alpha-1): depth-independent at alpha = 1, shrinking as m_L^-1/2 at 0.5.
At alpha = 1 the LR multipliers are those of muP: only the residual multiplier (and eps) differ.

Adam eps: the ``mup`` package leaves eps alone with width, and so does the proxy (eps 1e-8 is
far below gradient RMS at the proxies' sizes); ``eps`` below carries the depth factor
m_L^-alpha only, and :func:`group_multipliers` reports CompleteP's width factor separately
(``eps_width``) for trainers that apply Eq. 40 in full.

Exponents between 0 and 0.5 or above 1 are refused: no source above gives their rules.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from advisor.errors import AdvisorError

# Parameter groups, by where the parameter sits and how many of its dimensions grow with width.
GROUPS = {
    "embedding": "token (and position) embedding",
    "hidden": "hidden matrices inside the residual blocks (attention q/k/v/o, MLP)",
    "block_vector": "norm gains and biases inside the residual blocks",
    "final_norm": "norm gain after the last block",
    "readout": "readout (unembedding) weight",
}
ALPHAS = {0.0: "none (standard depth: branches not scaled)",
          0.5: "Depth-muP (Yang et al. 2023; Bordelon et al. 2023)",
          1.0: "CompleteP (Dey et al. 2025)"}
_IN_BLOCKS = {"hidden", "block_vector"}


@dataclass(frozen=True)
class Multipliers:
    """One group's multipliers relative to the base model (all dimensionless).

    ``lr``: times the base peak LR. ``weight_decay``: times the base torch ``weight_decay``
    (decoupled AdamW, decay per step = lr_group * wd_group). ``init_std``: times the base init
    std. ``output``: times the group's forward output (the readout's 1/m_N). ``eps``: times the
    base Adam eps, depth part (the proxy's convention). ``eps_width``: CompleteP's further eps
    factor with width (1/m_N), not applied by the proxy. ``residual``: the multiplier on the
    residual branch the group's parameters sit in (1 outside the blocks).
    """

    group: str
    lr: float
    weight_decay: float
    init_std: float
    output: float
    eps: float
    eps_width: float
    residual: float

    @property
    def decay_per_step(self) -> float:
        """Multiplier of lr * weight_decay, the fraction of a weight decayed per step."""
        return self.lr * self.weight_decay

    def to_dict(self) -> dict:
        d = asdict(self)
        d["decay_per_step"] = self.decay_per_step
        return d


def check_alpha(alpha) -> float:
    """``alpha`` as a float if the rules define it (0, or 0.5 <= alpha <= 1), else AdvisorError."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise AdvisorError(f"depth exponent alpha must be a number, got {alpha!r}")
    a = float(alpha)
    if a != 0.0 and not 0.5 <= a <= 1.0:
        raise AdvisorError(f"depth exponent alpha must be 0 (off) or in [0.5, 1] "
                           f"(0.5 Depth-muP, 1 CompleteP), got {alpha}")
    return a


def _check_mult(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise AdvisorError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def residual_multiplier(depth_mult: float, alpha: float) -> float:
    """Multiplier on every residual branch: m_L^-alpha (1 at the base depth or alpha = 0)."""
    return _check_mult("depth multiplier", depth_mult) ** -check_alpha(alpha)


def depth_lr_multiplier(depth_mult: float, alpha: float) -> float:
    """LR multiplier of parameters inside the residual blocks: m_L^(alpha-1), 1 when alpha = 0."""
    a = check_alpha(alpha)
    m_l = _check_mult("depth multiplier", depth_mult)
    return 1.0 if a == 0.0 else m_l ** (a - 1.0)


def group_multipliers(group: str, width_mult: float = 1.0, depth_mult: float = 1.0,
                      alpha: float = 0.0, width_rule: str = "mup") -> Multipliers:
    """The multipliers of one parameter group (see the module docstring for the sources).

    Args:
        group: a key of :data:`GROUPS`.
        width_mult: m_N, the group's fan-in width multiplier (width / base width).
        depth_mult: m_L = depth / base depth.
        alpha: depth exponent, 0 (off), 0.5 (Depth-muP) or 1 (CompleteP); values in
            [0.5, 1] follow the same formulas.
        width_rule: ``"mup"`` (muP with width) or ``"sp"`` (standard parameterisation: no
            width multipliers; the depth rules still apply).
    """
    if group not in GROUPS:
        raise AdvisorError(f"unknown parameter group {group!r}; known: {', '.join(GROUPS)}")
    if width_rule not in ("mup", "sp"):
        raise AdvisorError(f"width rule must be mup or sp, got {width_rule!r}")
    m_n = _check_mult("width multiplier", width_mult)
    a = check_alpha(alpha)
    m_l = _check_mult("depth multiplier", depth_mult)
    mup = width_rule == "mup"
    in_blocks = group in _IN_BLOCKS
    lr = wd = init = out = 1.0
    if mup and group == "hidden":
        lr, wd, init = 1.0 / m_n, m_n, 1.0 / math.sqrt(m_n)
    if mup and group == "readout":
        out = 1.0 / m_n
    residual = residual_multiplier(m_l, a) if in_blocks else 1.0
    eps = residual
    if in_blocks:
        lr *= depth_lr_multiplier(m_l, a)
    eps_width = 1.0 / m_n if mup else 1.0
    return Multipliers(group=group, lr=lr, weight_decay=wd, init_std=init, output=out,
                       eps=eps, eps_width=eps_width, residual=residual)


def all_groups(width_mult: float = 1.0, depth_mult: float = 1.0, alpha: float = 0.0,
               width_rule: str = "mup") -> list[Multipliers]:
    """:func:`group_multipliers` for every group, in the order of :data:`GROUPS`."""
    return [group_multipliers(g, width_mult, depth_mult, alpha, width_rule) for g in GROUPS]
