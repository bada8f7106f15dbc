"""The typed, frozen blocks of a recommendation (what ``advisor recommend`` returns).

Each block is a frozen dataclass read by attribute (the exporters in ``advisor/export`` do);
``to_dict()`` gives the block's part of the JSON/YAML schema (docs/recommend.md, "Output
schema") with the keys in their documented order. ``block["key"]`` and ``block.get("key")``
read that dict form, for scripts written when the blocks were plain dicts. Units are stated on
each field; counts are numbers of scalars, steps are optimizer steps, LRs are peak LRs.
No I/O and no computation here beyond formatting.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from advisor.common.yamlio import plain
from advisor.specs.shapes import Shape

OMIT_NONE = {"omit_none": True}


def frozen_block(cls):
    """A frozen dataclass whose ``__eq__`` and ``__repr__`` come from :class:`Block` (one
    function each instead of one generated per class: importing this module stays cheap)."""
    return dataclass(frozen=True, eq=False, repr=False)(cls)


class Block:
    """Base of the blocks: ``to_dict`` over the fields in order (a field declared with
    ``metadata=OMIT_NONE`` is left out when None), and dict-style reads of that form. Blocks
    compare equal when of one type with equal fields."""

    __hash__ = None

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in fields(self))

    def __repr__(self) -> str:
        inner = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return f"{type(self).__name__}({inner})"

    def to_dict(self) -> dict:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None and f.metadata.get("omit_none"):
                continue
            out[f.name] = plain(v)
        return out

    def __getitem__(self, key):
        return self.to_dict()[key]

    def get(self, key, default=None):
        return self.to_dict().get(key, default)

    def __contains__(self, key) -> bool:
        return key in self.to_dict()


@dataclass(frozen=True)
class Value:
    """One recommended number with its unit and where it came from."""

    value: Any
    unit: str
    source: str
    note: str | None = None
    interval_95: tuple | None = None
    interval_80: tuple | None = None

    def to_dict(self) -> dict:
        d = {"value": self.value, "unit": self.unit, "source": self.source}
        if self.interval_80 is not None:
            d["interval_80"] = [float(x) for x in self.interval_80]
        if self.interval_95 is not None:
            d["interval_95"] = [float(x) for x in self.interval_95]
        if self.note:
            d["note"] = self.note
        return d


@frozen_block
class Target(Block):
    """What was asked for: total parameters, training tokens (a Value), tokens per parameter
    (of the shape's total count) and the sequence length in tokens."""

    params_total: float
    tokens: Value
    tokens_per_param: float
    seq_len: int


@frozen_block
class ParamsForLaws(Block):
    """N as the chosen law set counts it (``convention``: its ``conventions.params``)."""

    value: int
    convention: str


@frozen_block
class SizeError(Block):
    """How far the shape's total count is from the requested one (a fraction)."""

    value: float
    unit: str
    requested: float


@dataclass(frozen=True)
class ModelShape(Shape, Block):
    """The target's shape (an ``advisor.specs.shapes.Shape``: widths in channels, counts in scalars;
    its fields first) and N as the law set counts it, where the shape came from, and how far
    its total count is from the requested one."""

    params_for_laws: ParamsForLaws
    shape_source: str
    size_error: SizeError

    @classmethod
    def of(cls, shape: Shape, **extra) -> "ModelShape":
        return cls(**{f.name: getattr(shape, f.name) for f in fields(shape)}, **extra)

    to_dict = Block.to_dict


@frozen_block
class MuonGroup(Block):
    """torch.optim.Muon settings for one matrix shape ([fan_out, fan_in] in channels)."""

    matrices: str
    shape: tuple
    update_scale: float
    torch_group_lr: float
    torch_group_weight_decay: float
    adjust_lr_fn: str
    mup_update_multiplier_vs_base_width: float


@frozen_block
class AdamWGroup(Block):
    """An AdamW parameter group beside Muon: peak LR, torch weight_decay, its muP rule."""

    group: str
    lr: float
    weight_decay: float
    mup: str


@frozen_block
class MuonPart(Block):
    """The Muon optimizer of a Muon + AdamW config (``advisor.recommendation.muon_view``)."""

    params: str
    convention: str
    convention_rule: str
    lr: Value
    weight_decay: Value
    momentum: float
    nesterov: bool
    ns_steps: int
    ns_coefficients: tuple
    eps: float
    source_defaults: str
    groups: tuple


@frozen_block
class AdamWPart(Block):
    """The AdamW optimizer beside Muon (embedding, norm gains, readout)."""

    params: str
    beta1: float
    beta2: float
    eps: float
    groups: tuple


@frozen_block
class OptimizerBlock(Block):
    """The optimizer: AdamW's betas, eps and gradient-clip norm (dimensionless), or, with
    ``muon`` set, Muon on the hidden matrices and AdamW (``adamw``) on the rest."""

    name: str
    beta1: float
    beta2: float
    eps: float
    grad_clip_norm: float
    source: str
    muon: MuonPart | None = field(default=None, metadata=OMIT_NONE)
    adamw: AdamWPart | None = field(default=None, metadata=OMIT_NONE)
    conversion_warning: str | None = None

    def to_dict(self) -> dict:
        d = super().to_dict()
        if self.muon is None:
            d.pop("conversion_warning")
        return d


@frozen_block
class AlternativeSchedule(Block):
    """The alternative to the chosen schedule (cosine to 10% of the peak)."""

    family: str
    spec: str
    note: str
    final_lr: float | None = None       # peak LR units; None when not stated

    def to_dict(self) -> dict:
        d = {"family": self.family, "spec": self.spec}
        if self.final_lr is not None:
            d["final_lr"] = self.final_lr
        d["note"] = self.note
        return d


@frozen_block
class FittedSchedule(Block):
    """What a fitted schedule law adds (``advisor schedule``): predicted final loss, its
    interval [lo, hi] and the interval's reason, and gain over cosine in nats, the WSD
    cooldown band as fractions of the run, branch points, the law's own warmup (steps) and
    its notes."""

    predicted_final_loss: float
    predicted_final_loss_interval: Any
    interval_reason: str
    gain_over_cosine_nats: float
    cooldown_band: Any
    branch_points: Any
    law_warmup_steps: Any
    notes: Any


@frozen_block
class LawSchedule(Block):
    """The schedule the LR law was measured under, and the conversion applied (none)."""

    law: str
    measured_under: Any
    conversion: str


@frozen_block
class ScheduleBlock(Block):
    """The LR schedule, one shape for the default (WSD, cosine alternative) and the fitted
    schedule-law branch (``fitted`` set). Steps are optimizer steps; ``final_lr`` in peak-LR
    units; ``cooldown_fraction`` a fraction of the run; ``spec`` parses with
    ``advisor.rules.lr_schedule.parse_schedule``."""

    family: str
    spec: str
    warmup_steps: int
    decay_start_step: int
    cooldown_fraction: float | None
    cooldown_shape: str | None
    final_lr: float
    source: str
    alternative: AlternativeSchedule
    law_schedule: LawSchedule
    fitted: FittedSchedule | None = None

    def to_dict(self) -> dict:
        d = {k: plain(getattr(self, k)) for k in (
            "family", "spec", "warmup_steps", "decay_start_step", "cooldown_fraction",
            "cooldown_shape", "final_lr")}
        if self.fitted is not None:
            d.update(self.fitted.to_dict())
        d["source"] = self.source
        d["alternative"] = self.alternative.to_dict()
        d["law_schedule"] = self.law_schedule.to_dict()
        return d


@frozen_block
class MupGroup(Block):
    """One parameter group of the muP view: multipliers (dimensionless) relative to the muP
    proxy of the base width, and the group's peak ``lr``, torch ``weight_decay`` (coupled
    AdamW lambda) and decay per step (fraction of the weight, at the peak LR) at the target
    width (``advisor.specs.transfer.target_groups``). The attention-logits row carries ``scale`` and ``note``."""

    group: str
    lr_multiplier: float | None = field(default=None, metadata=OMIT_NONE)
    init_std_multiplier: float | None = field(default=None, metadata=OMIT_NONE)
    output_multiplier: float | None = field(default=None, metadata=OMIT_NONE)
    weight_decay_multiplier: float | None = field(default=None, metadata=OMIT_NONE)
    decay_per_step_multiplier: float | None = field(default=None, metadata=OMIT_NONE)
    lr: float | None = field(default=None, metadata=OMIT_NONE)
    torch_weight_decay: float | None = field(default=None, metadata=OMIT_NONE)
    decay_per_step: float | None = field(default=None, metadata=OMIT_NONE)
    scale: str | None = field(default=None, metadata=OMIT_NONE)
    note: str | None = field(default=None, metadata=OMIT_NONE)


@frozen_block
class WdRule(Block):
    """The weight-decay width rule the muP view applies (``advisor.rules.optim_rules.WD_WIDTH_RULES``):
    its name, the exponent e (hidden torch weight_decay x m^e), where the rule comes from
    (``source``) and why this rule was chosen (``origin``: the law set's ``mup.wd_rule``,
    --wd-rule, or the default)."""

    name: str
    exponent: float
    rule: str
    source: str
    basis: str
    origin: str | None = field(default=None, metadata=OMIT_NONE)


@frozen_block
class MupView(Block):
    """Per-group multipliers of a muP model at ``width`` vs a proxy of ``base_width``
    (channels); ``width_multiplier`` m = width / base_width."""

    base_width: int
    width: int
    width_multiplier: float
    groups: tuple
    note: str
    wd_rule: WdRule | None = field(default=None, metadata=OMIT_NONE)


@frozen_block
class LawInfo(Block):
    """The law set behind the LR and batch, its conventions (from its file) and which law set
    gave each quantity (``used_for``)."""

    name: str
    title: str
    citation: str
    url: Any
    file: Any
    conventions: dict
    used_for: dict


@frozen_block
class WithWidth(Block):
    """A depth-view group's multipliers with the muP width rules multiplied in; ``lr`` the
    group's peak LR at the target when the law gives a muP base LR."""

    lr_multiplier: float
    weight_decay_multiplier: float
    init_std_multiplier: float
    output_multiplier: float
    eps_multiplier: float
    lr: float | None = field(default=None, metadata=OMIT_NONE)


@frozen_block
class DepthGroup(Block):
    """One parameter group of the depth view: multipliers (dimensionless) vs the proxy's depth."""

    group: str
    what: str
    lr_multiplier: float
    weight_decay_multiplier: float
    decay_per_step_multiplier: float
    eps_multiplier: float
    init_std_multiplier: float
    with_width: WithWidth


@frozen_block
class DepthView(Block):
    """The depth view (``advisor.recommendation.depth_view``): depths in blocks, multipliers
    dimensionless. What each trainer format cannot express of it (``trainer_support`` in the
    YAML and JSON output) is the export layer's (``advisor.export.yaml_json``)."""

    base_depth: int
    depth: int
    depth_multiplier: float
    alpha: float
    rule: str
    residual_multiplier: float
    apply: str
    groups: tuple
    source: str
    note: str


@frozen_block
class QuantityUncertainty(Block):
    """A quantity's 95% interval and its parts (``advisor.recommendation.trust.quantity_uncertainty``): sds
    in natural-log units (``sd_octaves`` in octaves), ``width_factor`` hi / lo."""

    interval_95: Any
    width_factor: float
    sd_ln: float
    sd_octaves: float
    components_ln: dict
    extrapolation_ln_distance: float
    setup_spread_measured_for: str
    construction: str
    evidence: str
    coverage_held_out: Any
    interval_80: Any = None


@frozen_block
class Uncertainty(Block):
    """The uncertainty of the peak LR and of the batch (tokens)."""

    learning_rate: QuantityUncertainty
    batch_size_tokens: QuantityUncertainty


@frozen_block
class SweepProxy(Block):
    """The muP proxy a calibration sweep is priced on: ``d_model`` and ``ffn_hidden``
    (channels), ``n_layers`` (blocks), ``params_non_embedding`` (scalars) and the ``tokens``
    each of its runs trains on."""

    d_model: int
    n_layers: int
    ffn_hidden: int
    params_non_embedding: int
    tokens: float


@frozen_block
class AfterCalibration(Block):
    """Expected excess loss (``value``, nats per token) after a proxy sweep, what the sweep
    is (``sweep``) and ``assumes``, the ``proxy`` it runs on, and its cost: ``compute_flops``
    (FLOPs) and ``gpu_hours`` (at an assumed throughput, ``cost_arithmetic``)."""

    value: float
    unit: str
    sweep: str
    assumes: str
    proxy: SweepProxy
    compute_flops: float
    gpu_hours: float
    cost_arithmetic: str


@frozen_block
class ExcessLoss(Block):
    """Expected excess loss (nats per token) of using the recommendation uncalibrated, the
    curvatures (nats per octave^2, as Values) it is built from, the sds of the LR and batch
    errors (octaves), and ``after_calibration`` (a proxy sweep's expected excess and cost;
    ``advisor.recommendation.trust.excess_loss_block``)."""

    value: float
    unit: str
    source: str
    curvature_lr: Value
    curvature_batch: Value
    sd_lr_octaves: float
    sd_batch_octaves: float
    after_calibration: AfterCalibration


@frozen_block
class LrRuleHere(Block):
    """How the optimal LR moves with the batch at the user's batch: the local slope
    d ln lr* / d ln B of the ridge (dimensionless), the rule it is nearest (linear, square
    root, none), the regime and its slope."""

    local_slope_dlnlr_dlnB: float
    rule: str
    regime: str
    regime_slope: Any
    source: str


@frozen_block
class GivenBatch(Block):
    """The batch (tokens) against the law's optimum (tokens): octaves from it, the expected
    cost (nats per token), and the LR rule there."""

    tokens: float
    law_optimum_tokens: float
    octaves_from_optimum: float
    expected_cost_nats: float
    lr_rule_here: LrRuleHere


@frozen_block
class LrOptimumGiven(Block):
    """The optimal peak LR given the rest, its 80% and 95% intervals and sd (octaves)."""

    value: float
    unit: str
    interval_80: Any
    interval_95: Any
    sd_octaves: float


@frozen_block
class LrPlacement(Block):
    """Where a chosen peak LR (``value``) sits against the optimum: octaves above (+) or
    below (-), the quantile of the optimum's distribution, the expected cost (nats per
    token), and whether it lies inside the 80% and 95% intervals."""

    value: float
    octaves_from_optimum: float
    quantile: float
    expected_cost_nats: float
    inside_80: bool
    inside_95: bool


@frozen_block
class Beta2Given(Block):
    """Adam's beta2 and its second-moment half-life in tokens, against the beta2 the rule
    recommends for this batch."""

    value: float
    half_life_tokens: float
    recommended_for_this_batch: float
    recommended_half_life_tokens: float
    rule: str


@frozen_block
class EpsPerGroup(Block):
    """Adam's eps per muP parameter group (``value``: group -> eps) from ``base_eps`` at
    ``width_multiplier`` (width / base width)."""

    value: dict
    base_eps: float
    width_multiplier: float
    rule: str


@frozen_block
class WeightDecayViews(Block):
    """A coupled AdamW weight decay stated every way trainers take it: ``coupled`` lambda,
    ``independent_per_step`` (lr * lambda at the peak LR), the timescale 1 / (lr lambda) in
    steps, tokens and as a fraction of the run (None without decay), and ``run_steps``."""

    coupled: float
    independent_per_step: float
    timescale_steps: float | None
    timescale_tokens: float | None
    timescale_fraction_of_run: float | None
    run_steps: int | None = field(default=None, metadata=OMIT_NONE)


@frozen_block
class GivenBlock(Block):
    """The user's fixed choices (``fixed``, as given), where each sits against the optimum
    given the rest, and what it costs (``advisor.recommendation.conditional.given_block``);
    ``lr`` only with a fixed LR, ``eps_per_group_mup`` only with a width multiplier."""

    fixed: dict
    batch: GivenBatch
    lr_optimum_given_the_rest: LrOptimumGiven
    lr: LrPlacement | None = field(default=None, metadata=OMIT_NONE)
    beta2: Beta2Given | None = None
    eps_per_group_mup: EpsPerGroup | None = field(default=None, metadata=OMIT_NONE)
    weight_decay: WeightDecayViews | None = None


@frozen_block
class PublishedNearest(Block):
    """A published run or tuned optimum near the target (``advisor.laws.published``) and this
    recommendation's LR and batch divided by its own (``batch_ratio`` None without a batch)."""

    entry: Any                         # advisor.laws.published.PublishedConfig
    lr_ratio: float
    batch_ratio: float | None

    def to_dict(self) -> dict:
        return {**self.entry.to_dict(), "lr_ratio": self.lr_ratio,
                "batch_ratio": self.batch_ratio}
