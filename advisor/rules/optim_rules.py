"""How AdamW's per-parameter-group hyperparameters scale with width and depth: one home.

Pure functions, no torch. The proxy family (``calibration/model/proxy.py``: residual multiplier,
initialisation and ``build_optimizer``) and the recommendation's depth view
(``advisor/recommendation/depth_view.py``) both read these rules, so the model that is calibrated and the
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

Muon (hidden matrices on Muon, the rest on AdamW): its width conventions are in the Muon
section at the end of this module.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from advisor.common.numbers import positive_number
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

# Width scaling of a hidden matrix's torch ``weight_decay`` (coupled AdamW convention: decay per
# step = lr_group * wd_group), as the exponent e of wd x m_N^e. With muP's hidden LR x 1/m_N the
# decay per step then goes as m_N^(e-1).
#   "mup":  e = 1, what ``mup.MuAdamW`` does: lr * wd per step constant with width.
#   "sqrt": e = 1/2, Fan et al. 2025 (arXiv 2510.15262): lambda ~ sqrt(d) for hidden matrices, so
#           that the AdamW steady state sigma_max ~ sqrt(lr / lambda) * d^0.75 stays width-free.
#   "none": e = 0, the same torch weight_decay at every width (decay per step falls as 1/m_N).
WD_WIDTH_RULES = {"mup": 1.0, "sqrt": 0.5, "none": 0.0}


# How AdamW's decay per step relates to the LR: "lr" multiplies weights by 1 - lr_t * wd
# (torch's AdamW, the default), "independent" by 1 - s_t * wd with s_t the schedule multiplier
# (Loshchilov & Hutter 2019's schedule-only decay; Wortsman et al. 2023, arXiv 2309.14322,
# section 3.2.2, find it lowers LR sensitivity). The torch coefficient that gives it:
# wd / peak group LR (independent_torch_wd).
WD_COUPLINGS = ("lr", "independent")


def independent_torch_wd(weight_decay: float, peak_group_lr: float) -> float:
    """torch AdamW's ``weight_decay`` whose decay per step lr_t * wd equals
    schedule_t * ``weight_decay`` for a group of peak LR ``peak_group_lr`` (> 0)."""
    return float(weight_decay) / float(peak_group_lr)


def check_wd_rule(rule, where: str = "", name: str = "wd_rule") -> str:
    """``rule`` if it is a key of :data:`WD_WIDTH_RULES`, else AdvisorError: the one check of
    a weight-decay width rule and its one message (``where``: a prefix naming the input;
    ``name``: the field, e.g. a law set's ``mup.wd_rule``)."""
    if not isinstance(rule, str) or rule not in WD_WIDTH_RULES:
        raise AdvisorError(f"{where + ': ' if where else ''}{name} must be one of "
                           f"{', '.join(WD_WIDTH_RULES)} (the hidden matrices' weight-decay "
                           f"width rule), got {rule!r}")
    return rule


def hidden_wd_multiplier(width_mult: float, rule: str = "mup") -> float:
    """Multiplier of a hidden matrix's torch ``weight_decay`` at width multiplier m_N: m_N^e,
    e from :data:`WD_WIDTH_RULES` (dimensionless; 1 at the base width)."""
    return positive_number(width_mult, "width multiplier") ** WD_WIDTH_RULES[check_wd_rule(rule)]


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


def residual_multiplier(depth_mult: float, alpha: float) -> float:
    """Multiplier on every residual branch: m_L^-alpha (1 at the base depth or alpha = 0)."""
    return positive_number(depth_mult, "depth multiplier") ** -check_alpha(alpha)


def depth_lr_multiplier(depth_mult: float, alpha: float) -> float:
    """LR multiplier of parameters inside the residual blocks: m_L^(alpha-1), 1 when alpha = 0."""
    a = check_alpha(alpha)
    m_l = positive_number(depth_mult, "depth multiplier")
    return 1.0 if a == 0.0 else m_l ** (a - 1.0)


def group_multipliers(group: str, width_mult: float = 1.0, depth_mult: float = 1.0,
                      alpha: float = 0.0, width_rule: str = "mup",
                      wd_rule: str = "mup") -> Multipliers:
    """The multipliers of one parameter group (see the module docstring for the sources).

    Args:
        group: a key of :data:`GROUPS`.
        width_mult: m_N, the group's fan-in width multiplier (width / base width).
        depth_mult: m_L = depth / base depth.
        alpha: depth exponent, 0 (off), 0.5 (Depth-muP) or 1 (CompleteP); values in
            [0.5, 1] follow the same formulas.
        width_rule: ``"mup"`` (muP with width) or ``"sp"`` (standard parameterisation: no
            width multipliers; the depth rules still apply).
        wd_rule: width scaling of the hidden matrices' weight decay under muP, a key of
            :data:`WD_WIDTH_RULES` (``"mup"``, as MuAdamW; ignored under ``"sp"``).
    """
    if group not in GROUPS:
        raise AdvisorError(f"unknown parameter group {group!r}; known: {', '.join(GROUPS)}")
    if width_rule not in ("mup", "sp"):
        raise AdvisorError(f"width rule must be mup or sp, got {width_rule!r}")
    m_n = positive_number(width_mult, "width multiplier")
    a = check_alpha(alpha)
    m_l = positive_number(depth_mult, "depth multiplier")
    mup = width_rule == "mup"
    in_blocks = group in _IN_BLOCKS
    lr = wd = init = out = 1.0
    check_wd_rule(wd_rule)
    if mup and group == "hidden":
        lr, wd, init = 1.0 / m_n, hidden_wd_multiplier(m_n, wd_rule), 1.0 / math.sqrt(m_n)
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
               width_rule: str = "mup", wd_rule: str = "mup") -> list[Multipliers]:
    """:func:`group_multipliers` for every group, in the order of :data:`GROUPS`."""
    return [group_multipliers(g, width_mult, depth_mult, alpha, width_rule, wd_rule)
            for g in GROUPS]


# --------------------------------------------------------------------------------------
# Muon: orthogonalised momentum for the hidden matrices, AdamW for everything else
# --------------------------------------------------------------------------------------
#
# Muon (Jordan et al. 2024, https://kellerjordan.github.io/posts/muon/; torch.optim.Muon since
# torch 2.9) replaces a matrix's momentum M by an approximate orthogonalisation O = NS(M) (a
# quintic Newton-Schulz iteration): all singular values of O lie near 1, so ||O||_2 ~ 1
# whatever the width, and the only width rule left is the factor s(shape) the LR is multiplied
# by, i.e. the update is lr * s * O. Two conventions for s are in use:
#
# * ``spectral``: s = sqrt(fan_out / fan_in), so the update's spectral norm is
#   lr * sqrt(fan_out / fan_in): the spectral condition for feature learning (Yang, Simon and
#   Bernstein 2023, arXiv 2310.17813, "A Spectral Condition for Feature Learning"). s does not
#   change with width when fan_out / fan_in is fixed (every matrix of our proxy family), so the
#   base LR should transfer as it is.
# * ``match_rms_adamw``: s = 0.2 * sqrt(max(fan_in, fan_out)). An orthogonal fan_out x fan_in
#   matrix has entry RMS 1/sqrt(max(fan_in, fan_out)), so the update's entry RMS is 0.2 * lr,
#   about that of an AdamW update; Moonlight (Liu et al. 2025, arXiv 2502.16982, "Muon is
#   Scalable for LLM Training", Sec. 2) uses it so that Muon reuses AdamW's LR and weight
#   decay, and adds weight decay, which they find needed at scale. s grows as sqrt(width): the
#   base LR does not transfer in theory (its optimum should drift as width^-1/2, like standard
#   AdamW's drifts as width^-1).
#
# Embedding, norm gains and the readout are not hidden matrices: they stay on AdamW with
# the AdamW rules above (Muon's authors and Moonlight alike). Muon's depth rules have no source
# here: a depth exponent other than 0 is refused for Muon.
#
# torch.optim.Muon applies its own factor (``adjust_lr_fn``): "original" sqrt(max(1, A/B)) and
# "match_rms_adamw" 0.2 sqrt(max(A, B)), A x B the weight's shape (out x in for nn.Linear);
# its decoupled decay multiplies weights by 1 - lr_group * wd_group (the unadjusted group LR).
# :func:`muon_torch_group` gives the group LR and weight decay that make torch's update
# lr * s(shape) * O under either convention while the decay per step stays lr * wd.

MUON_CONVENTIONS = {
    "spectral": "update spectral norm lr*sqrt(fan_out/fan_in) (Yang, Simon, Bernstein 2023, "
                "arXiv 2310.17813)",
    "match_rms_adamw": "update entry RMS 0.2*lr, s = 0.2*sqrt(max(fan_in, fan_out)) "
                       "(Moonlight, Liu et al. 2025, arXiv 2502.16982)",
}
# torch.optim.Muon's defaults (torch 2.9-2.13), from Keller Jordan's reference implementation.
MUON_DEFAULTS = {"momentum": 0.95, "nesterov": True, "ns_steps": 5,
                 "ns_coefficients": (3.4445, -4.7750, 2.0315), "eps": 1e-7}
MUON_GROUPS = ("hidden",)              # optimised by Muon; every other group stays on AdamW


def check_muon_convention(convention) -> str:
    if convention not in MUON_CONVENTIONS:
        raise AdvisorError(f"Muon width convention must be one of {', '.join(MUON_CONVENTIONS)}, "
                           f"got {convention!r}")
    return convention


def _check_dims(fan_out, fan_in) -> tuple[int, int]:
    for name, v in (("fan_out", fan_out), ("fan_in", fan_in)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise AdvisorError(f"matrix {name} must be a positive integer, got {v!r}")
    return fan_out, fan_in


def muon_update_scale(fan_out: int, fan_in: int, convention: str) -> float:
    """s: the factor (dimensionless) between the base LR and the orthogonalised update.

    ``fan_out`` and ``fan_in`` in channels (an nn.Linear weight is fan_out x fan_in).
    """
    fo, fi = _check_dims(fan_out, fan_in)
    if check_muon_convention(convention) == "spectral":
        return math.sqrt(fo / fi)
    return 0.2 * math.sqrt(max(fo, fi))


def torch_muon_adjust(fan_out: int, fan_in: int, adjust_lr_fn: str = "original") -> float:
    """The factor torch.optim.Muon itself multiplies a group's LR by for this shape."""
    fo, fi = _check_dims(fan_out, fan_in)
    if adjust_lr_fn == "original":
        return math.sqrt(max(1.0, fo / fi))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(fo, fi))
    raise AdvisorError(f"torch.optim.Muon adjust_lr_fn must be original or match_rms_adamw, "
                       f"got {adjust_lr_fn!r}")


@dataclass(frozen=True)
class MuonGroupRule:
    """How torch.optim.Muon must be set for one matrix shape under a convention.

    ``lr_factor`` and ``wd_factor``: the group's ``lr`` and ``weight_decay`` as multiples of
    the base LR and base weight decay; ``adjust_lr_fn``: the value to pass to torch. With
    them torch's update is base_lr * ``update_scale`` * O and the decay per step is
    base_lr * base_wd (``lr_factor * wd_factor == 1``).
    """

    fan_out: int
    fan_in: int
    convention: str
    update_scale: float
    lr_factor: float
    wd_factor: float
    adjust_lr_fn: str

    def to_dict(self) -> dict:
        return asdict(self)


def muon_torch_group(fan_out: int, fan_in: int, convention: str,
                     match_rms_builtin: bool = True) -> MuonGroupRule:
    """Group settings for torch.optim.Muon (see :class:`MuonGroupRule`).

    ``match_rms_builtin``: torch offers ``adjust_lr_fn="match_rms_adamw"`` (torch >= 2.9);
    when False the Moonlight factor is folded into the group LR over "original".
    """
    s = muon_update_scale(fan_out, fan_in, convention)
    if convention == "match_rms_adamw" and match_rms_builtin:
        return MuonGroupRule(fan_out, fan_in, convention, s, 1.0, 1.0, "match_rms_adamw")
    ratio = s / torch_muon_adjust(fan_out, fan_in, "original")
    return MuonGroupRule(fan_out, fan_in, convention, s, ratio, 1.0 / ratio, "original")


def muon_width_multiplier(fan_out: int, fan_in: int, base_fan_out: int, base_fan_in: int,
                          convention: str) -> float:
    """The muP view: s at the target shape over s at the base shape (1 = the LR transfers
    unchanged in this convention's own terms)."""
    return (muon_update_scale(fan_out, fan_in, convention)
            / muon_update_scale(base_fan_out, base_fan_in, convention))


def check_muon_alpha(alpha) -> float:
    """Muon has no depth rules here: only alpha = 0 (off) is accepted."""
    a = check_alpha(alpha)
    if a != 0.0:
        raise AdvisorError(f"no source gives Muon's depth rules: depth exponent alpha must be "
                           f"0 (off) with optimizer muon, got {alpha}")
    return a
