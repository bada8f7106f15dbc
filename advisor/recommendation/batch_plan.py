"""The batch on the user's devices: global batch = devices x micro-batch x accumulation, exactly.

Pure functions. Units: batches in sequences of ``seq_len`` tokens (``*_tokens`` in tokens);
``accumulation`` is micro-steps per optimizer step on each device; costs in nats per token;
``octaves`` are log2 units.

* :func:`plan_batch` rounds the law's batch to what ``devices`` devices of ``micro_batch``
  sequences each can run (a whole number of accumulation steps), or checks a fixed global
  batch, and prices the rounding with the loss-vs-batch curvature the expected-excess-loss
  block uses (``advisor.trust``: a quadratic bowl in log2 batch, nats per octave^2, measured
  on the Step Law grid): a batch ``r`` octaves off the law's costs ``curvature * r^2``.
* :func:`critical_batch_view` states the critical batch (tokens) and the time-versus-tokens
  trade-off around it, in McCandlish et al.'s (2018, arXiv 1812.06162, Eq. 2.11) form that
  Kaplan et al. (2020, Eq. 5.4) fitted: to reach a given loss, a batch B needs
  S = S_min (1 + B_crit / B) steps and E = E_min (1 + B / B_crit) tokens.
* :func:`batch_ramp` is a batch warmup (Merrill et al. 2025, arXiv 2505.23971: the critical
  batch is near 0 at initialisation, rises fast and plateaus, so start small and grow the
  batch as it grows): the batch doubles ``doublings`` times up to the planned batch; each
  doubling happens when the critical batch along the run (a critical-batch law at the loss
  its loss law predicts after D tokens) has grown to the next stage's batch.
"""
from __future__ import annotations

import math
from dataclasses import field

from advisor.errors import AdvisorError
from advisor.recommendation.blocks import Block, frozen_block, OMIT_NONE

MAX_DEVICES = 1_000_000
MAX_MICRO_BATCH = 100_000
MAX_DOUBLINGS = 6
ROUNDING_WARN_OCTAVES = 0.5      # warn when the devices move the batch this far from the law
REFUSE_OCTAVES = 2.0             # refuse (unless --batch-size says so) when they force it 4x up
DEFAULT_MICRO_CAP = 8            # micro-batch assumed when --devices comes without one


@frozen_block
class CriticalBatch(Block):
    """The critical batch (tokens) at the end of the run and the planned batch's place
    against it: ``tradeoff`` rows of batch (sequences and tokens), steps and tokens needed
    for the same loss, each relative to the planned batch."""

    tokens: float
    source: str
    planned_over_critical: float
    regime: str
    tradeoff: tuple
    model: str


@frozen_block
class RampStage(Block):
    """One stage of a batch ramp: its batch, the training tokens it spans and its steps."""

    global_sequences: int
    accumulation: int
    from_tokens: float
    to_tokens: float
    steps: int


@frozen_block
class BatchRamp(Block):
    """A batch warmup (Merrill et al. 2025): stages of doubling batch and the steps saved or
    added against the planned batch throughout."""

    doublings: int
    stages: tuple
    total_steps: int
    steps_at_planned_batch: int
    rule: str
    source: str
    trainer_support: str


@frozen_block
class BatchPlan(Block):
    """The global batch as the devices run it. ``global_sequences`` = ``devices`` x
    ``micro_batch`` x ``accumulation``; ``rounding_octaves`` log2(planned / law batch);
    ``rounding_cost_nats`` the expected loss that rounding costs (nats per token)."""

    devices: int
    micro_batch: int
    accumulation: int
    global_sequences: int
    global_tokens: int
    seq_len: int
    law_sequences: float
    rounding_octaves: float
    rounding_cost_nats: float
    rounding: str
    micro_batch_source: str
    batch_source: str
    critical: CriticalBatch | None = field(default=None, metadata=OMIT_NONE)
    ramp: BatchRamp | None = field(default=None, metadata=OMIT_NONE)


def _positive_int(value, what: str, maximum: int) -> int | None:
    if value is None:
        return None
    s = str(value).strip().replace("_", "")
    try:
        n = int(s)
    except ValueError:
        raise AdvisorError(f"{what} must be a whole number, got {value!r}") from None
    if not 1 <= n <= maximum:
        raise AdvisorError(f"{what} must be between 1 and {maximum:g}, got {value!r}")
    return n


def parse_device_options(devices=None, micro_batch=None, batch_ramp=None):
    """(devices, micro_batch, doublings): each a positive whole number or None; AdvisorError
    (one line) otherwise. The fixed global batch (--batch-size / --batch-tokens) is parsed
    with the user's other fixed choices (``advisor.recommendation.conditional``)."""
    d = _positive_int(devices, "--devices", MAX_DEVICES)
    m = _positive_int(micro_batch, "--micro-batch", MAX_MICRO_BATCH)
    r = _positive_int(batch_ramp, "--batch-ramp", MAX_DOUBLINGS)
    return d, m, r


def check_fixed_batch(devices: int, micro: int, fixed: int) -> int:
    """The accumulation for a fixed global batch of ``fixed`` sequences on ``devices`` x
    ``micro``, or AdvisorError naming the batches that are reachable."""
    per_step = devices * micro
    if fixed < per_step:
        raise AdvisorError(
            f"--batch-size {fixed} sequences cannot be reached on {devices} devices with a "
            f"micro-batch of {micro}: one micro-step already runs {per_step} sequences; "
            "use fewer devices or a smaller --micro-batch")
    if fixed % per_step:
        lo = fixed // per_step * per_step
        raise AdvisorError(
            f"--batch-size {fixed} sequences is not a whole number of micro-steps of "
            f"{devices} devices x {micro} sequences ({per_step}); nearest reachable: {lo} "
            f"or {lo + per_step}")
    return fixed // per_step


def plan_batch(law_sequences: float, seq_len: int, curvature_batch: float,
               devices: int = 1, micro_batch: int | None = None,
               fixed_sequences: int | None = None,
               default_sequences: int | None = None) -> BatchPlan:
    """The :class:`BatchPlan` for a law batch of ``law_sequences`` (sequences, unrounded).

    ``curvature_batch`` in nats per octave^2. ``fixed_sequences``: the user's global batch
    (checked, never changed). ``default_sequences``: the batch to use on one device when no
    devices were named (the recommendation's own rounding), whose micro-batch is the largest
    power of two up to 8 that divides it.
    """
    if not (law_sequences > 0 and math.isfinite(law_sequences)):
        raise AdvisorError(f"the law's batch {law_sequences!r} sequences is not a positive "
                           "number")
    micro_source = "given (--micro-batch)"
    if fixed_sequences is not None:
        if micro_batch is None:
            micro_batch = _largest_micro(fixed_sequences // devices if
                                         fixed_sequences % devices == 0 else 1)
            micro_source = (f"assumed: the largest power of two up to {DEFAULT_MICRO_CAP} "
                            "that divides the per-device batch (give --micro-batch)")
        accum = check_fixed_batch(devices, micro_batch, fixed_sequences)
        batch_source = "given (--batch-size / --batch-tokens)"
    elif default_sequences is not None and micro_batch is None and devices == 1:
        micro_batch = _largest_micro(default_sequences)
        micro_source = (f"assumed: the largest power of two up to {DEFAULT_MICRO_CAP} that "
                        "divides the batch (give --devices and --micro-batch)")
        accum = default_sequences // micro_batch
        batch_source = "the law's batch, rounded (one device assumed)"
    else:
        if micro_batch is None:
            micro_batch = 1
            while micro_batch * 2 <= DEFAULT_MICRO_CAP and \
                    devices * micro_batch * 2 <= law_sequences:
                micro_batch *= 2
            micro_source = (f"assumed: the largest power of two up to {DEFAULT_MICRO_CAP} "
                            "whose micro-step stays within the law's batch (give "
                            "--micro-batch: the sequences one device fits)")
        per_step = devices * micro_batch
        if per_step > law_sequences * 2 ** REFUSE_OCTAVES:
            raise AdvisorError(
                f"{devices} devices x micro-batch {micro_batch} run at least {per_step} "
                f"sequences per step, {per_step / law_sequences:.1f}x the law's batch of "
                f"{law_sequences:.0f}; use fewer devices or a smaller --micro-batch, or give "
                "--batch-size to train at that batch anyway (its cost is then stated)")
        raw = law_sequences / per_step
        cands = {max(1, math.floor(raw)), max(1, math.ceil(raw))}
        accum = min(cands, key=lambda a: (abs(math.log2(a * per_step / law_sequences)), a))
        batch_source = (f"the law's batch rounded to a whole number of micro-steps of "
                        f"{devices} x {micro_batch} sequences")
    seqs = devices * micro_batch * accum
    octaves = math.log2(seqs / law_sequences)
    cost = curvature_batch * octaves ** 2
    rounding = (f"{law_sequences:.1f} sequences from the law -> {seqs} = {devices} devices x "
                f"{micro_batch} x {accum} accumulation ({100 * (2 ** octaves - 1):+.1f}%, "
                f"{octaves:+.3f} octaves): expected cost {cost:.2g} nats per token "
                f"(curvature {curvature_batch:.3g} nats per octave^2 x octaves^2)")
    return BatchPlan(
        devices=devices, micro_batch=micro_batch, accumulation=accum,
        global_sequences=seqs, global_tokens=seqs * seq_len, seq_len=seq_len,
        law_sequences=round(law_sequences, 2), rounding_octaves=round(octaves, 4),
        rounding_cost_nats=float(f"{cost:.3g}"), rounding=rounding,
        micro_batch_source=micro_source, batch_source=batch_source)


def _largest_micro(sequences: int) -> int:
    mb = 1
    while mb * 2 <= DEFAULT_MICRO_CAP and sequences % (mb * 2) == 0:
        mb *= 2
    return mb


def rounding_warning(plan: BatchPlan) -> str | None:
    """A warning when the devices move the batch far from the law's (ROUNDING_WARN_OCTAVES)."""
    if abs(plan.rounding_octaves) < ROUNDING_WARN_OCTAVES:
        return None
    return (f"the batch the devices run ({plan.global_sequences} sequences) is "
            f"{2 ** abs(plan.rounding_octaves):.2g}x {'above' if plan.rounding_octaves > 0 else 'below'}"
            f" the law's ({plan.law_sequences:g}); expected cost "
            f"{plan.rounding_cost_nats:.2g} nats per token (batch_plan.rounding)")


TRADEOFF_MULTIPLES = (0.25, 0.5, 1.0, 2.0, 4.0)
CRITICAL_MODEL = ("McCandlish et al. 2018 (arXiv 1812.06162, Eq. 2.11), as fitted by Kaplan et "
                  "al. 2020 (Eq. 5.4): to reach one loss, batch B takes S_min (1 + B_crit/B) "
                  "steps and E_min (1 + B/B_crit) tokens")


def critical_batch_view(plan: BatchPlan, critical_tokens: float, source: str) -> CriticalBatch:
    """The planned batch against a critical batch of ``critical_tokens`` tokens: its regime
    and, for multiples of the planned batch, the steps and tokens needed to reach the same
    loss, relative to the planned batch (same model as CRITICAL_MODEL)."""
    if not (critical_tokens > 0 and math.isfinite(critical_tokens)):
        raise AdvisorError(f"critical batch {critical_tokens!r} tokens is not positive")
    b = float(plan.global_tokens)
    ratio = b / critical_tokens

    def steps(x):
        return 1.0 + critical_tokens / x

    def tokens(x):
        return 1.0 + x / critical_tokens

    rows = []
    for m in TRADEOFF_MULTIPLES:
        x = b * m
        rows.append({"batch_multiple": m, "global_sequences": round(plan.global_sequences * m, 1),
                     "tokens_per_step": x, "steps_relative": round(steps(x) / steps(b), 3),
                     "tokens_relative": round(tokens(x) / tokens(b), 3)})
    if ratio < 0.5:
        regime = (f"below the critical batch ({ratio:.2g}x): a larger batch would cut steps "
                  "(wall-clock) at little cost in tokens")
    elif ratio <= 2.0:
        regime = (f"near the critical batch ({ratio:.2g}x): doubling the batch cuts steps by "
                  f"{100 * (1 - rows[3]['steps_relative']):.0f}% and costs "
                  f"{100 * (rows[3]['tokens_relative'] - 1):.0f}% more tokens for the same loss")
    else:
        regime = (f"above the critical batch ({ratio:.2g}x): each doubling costs nearly twice "
                  "the tokens for the same loss and saves few steps")
    return CriticalBatch(tokens=float(f"{critical_tokens:.4g}"), source=source,
                         planned_over_critical=round(ratio, 3), regime=regime,
                         tradeoff=tuple(rows), model=CRITICAL_MODEL)


RAMP_RULE = ("each stage keeps the batch at or below the critical batch along the run: the "
             "batch (about) doubles at the first D where B_crit(D) reaches the next stage's batch "
             "(tokens), with B_crit(D) the critical-batch law at the loss its loss law "
             "predicts for D training tokens (Kaplan et al. 2020, Eq. 5.3 and 1.5)")


def batch_ramp(plan: BatchPlan, doublings: int, total_tokens: float, critical_at) -> BatchRamp:
    """A batch warmup of ``doublings`` doublings ending at the planned batch.

    ``critical_at(D)``: the critical batch (tokens) after D training tokens. Each stage's
    batch is a whole number of micro-steps on the plan's devices: the accumulation halves per
    stage back from the plan, rounded to a whole number (so a stage is about, not exactly,
    half the next), and must stay at least 1. Refused when the
    planned batch is above the critical batch at the end of the run (no ramp that keeps
    below it reaches the planned batch).
    """
    if doublings < 1:
        raise AdvisorError("--batch-ramp must be at least 1 doubling")
    if plan.accumulation < 2 ** doublings:
        raise AdvisorError(
            f"--batch-ramp {doublings} halves the accumulation {doublings} times from "
            f"{plan.accumulation}, below one micro-step of {plan.devices} devices x micro-batch "
            f"{plan.micro_batch}; ask for fewer doublings or a smaller --micro-batch")
    end_cbs = float(critical_at(total_tokens))
    if not (end_cbs > 0 and math.isfinite(end_cbs)):
        raise AdvisorError("the critical-batch law gives no positive value at the end of the run")
    if plan.global_tokens > end_cbs:
        raise AdvisorError(
            f"--batch-ramp: the planned batch ({plan.global_tokens} tokens) is above the "
            f"critical batch even at the end of the run ({end_cbs:.3g} tokens); a ramp that "
            "keeps below it never reaches the planned batch")

    def tokens_when(batch_tokens):    # first D where critical_at(D) >= batch (bisection, log D)
        lo, hi = math.log(1e3), math.log(total_tokens)
        if critical_at(math.exp(lo)) >= batch_tokens:
            return 1e3
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if critical_at(math.exp(mid)) < batch_tokens else (lo, mid)
        return math.exp(hi)

    accums = [max(1, round(plan.accumulation / 2 ** (doublings - k)))   # whole micro-steps
              for k in range(doublings + 1)]
    if len(set(accums)) < len(accums):
        raise AdvisorError(f"--batch-ramp {doublings}: an accumulation of {plan.accumulation} "
                           f"has no {doublings + 1} distinct stages; ask for fewer doublings")
    per_step = plan.devices * plan.micro_batch
    stages, start = [], 0.0
    for k, accum in enumerate(accums):
        seqs = per_step * accum
        end = total_tokens if k == doublings else \
            min(total_tokens, tokens_when(per_step * accums[k + 1] * plan.seq_len))
        end = max(end, start)
        stage_steps = int(math.ceil((end - start) / (seqs * plan.seq_len)))
        stages.append(RampStage(global_sequences=seqs, accumulation=accum,
                                from_tokens=float(f"{start:.4g}"),
                                to_tokens=float(f"{end:.4g}"), steps=stage_steps))
        start = end
    total = sum(s.steps for s in stages)
    return BatchRamp(
        doublings=doublings, stages=tuple(stages), total_steps=total,
        steps_at_planned_batch=int(math.ceil(total_tokens / plan.global_tokens)),
        rule=RAMP_RULE,
        source=("Merrill et al. 2025 (arXiv 2505.23971): the critical batch is near 0 at "
                "initialisation, rises fast, then plateaus; a batch warmup trained OLMo 1B to "
                "slightly better loss with 43% fewer gradient steps. The switch points here "
                "come from Kaplan's B_crit(L), not from a measurement on your run"),
        trainer_support=("yaml/json carry the stages; megatron: --rampup-batch-size is a "
                         "linear ramp (noted in its file); nanogpt, hf and torchtitan have "
                         "no batch ramp: their files use the planned batch throughout"))
