"""What the exporters share: the :class:`Exporter` record of the registry, the numbers every
trainer file needs (read from the recommendation's typed blocks), and the notes saying what a
trainer's file cannot express (depth view, Muon, the weight-decay width rule).

Pure functions; units as in the recommendation: LRs are peak LRs, batches in sequences of
``seq_len`` tokens, steps are optimizer steps.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from typing import Callable

from advisor.errors import AdvisorError
from advisor.recommendation.mup_view import ROW_LABELS


@dataclass(frozen=True)
class Exporter:
    """One output format. ``write(rec) -> str``; ``suffix`` the usual file suffix; ``doc`` one
    line for help and docs; ``full``: carries the whole recommendation with its evidence
    (warnings included); ``depth_note`` / ``muon_note``: what this trainer's config cannot
    express of the depth view / a Muon optimizer (None: nothing to say); ``comment``: the
    line-comment prefix of the file (None: the file cannot carry comments); ``needs_muon``:
    only for ``--optimizer muon``."""

    name: str
    write: Callable
    suffix: str
    doc: str
    full: bool = False
    depth_note: str | None = None
    muon_note: str | None = None
    comment: str | None = None
    needs_muon: bool = False


@dataclass(frozen=True)
class TrainerNumbers:
    """The numbers a trainer config takes: peak LR, AdamW lambda, betas, eps, clip norm,
    warmup and total steps, the global batch (sequences), per-device micro-batch and
    accumulation steps on each of ``devices`` data-parallel devices (seqs = devices x micro x
    accum exactly), and the sequence length (tokens)."""

    lr: float
    wd: float
    beta1: float
    beta2: float
    eps: float
    clip: float
    warmup: int
    steps: int
    seqs: int
    micro: int
    accum: int
    seq_len: int
    devices: int = 1


def micro_batch(sequences: int, cap: int = 8) -> int:
    """Largest power of two <= cap that divides the global batch (sequences per device step)."""
    mb = 1
    while mb * 2 <= cap and sequences % (mb * 2) == 0:
        mb *= 2
    return mb


def trainer_numbers(rec) -> TrainerNumbers:
    """:class:`TrainerNumbers` from a recommendation's blocks: the batch plan's devices,
    micro-batch and accumulation (``advisor.recommendation.batch_plan``), or, for a
    recommendation without one, one device and the largest power-of-two micro-batch up to 8."""
    seqs = int(rec.batch_size_sequences.value)
    plan = getattr(rec, "batch_plan", None)
    if plan is not None:
        devices, mb, accum = int(plan.devices), int(plan.micro_batch), int(plan.accumulation)
    else:
        devices, mb = 1, micro_batch(seqs)
        accum = seqs // mb
    if devices * mb * accum != seqs:
        raise AdvisorError(f"the batch plan ({devices} x {mb} x {accum}) does not make the "
                           f"global batch of {seqs} sequences")
    opt = rec.optimizer
    return TrainerNumbers(
        lr=float(rec.learning_rate.value), wd=float(rec.weight_decay.value),
        beta1=opt.beta1, beta2=opt.beta2, eps=opt.eps, clip=opt.grad_clip_norm,
        warmup=int(rec.warmup_steps.value), steps=int(rec.total_steps.value),
        seqs=seqs, micro=mb, accum=accum, seq_len=int(rec.target.seq_len), devices=devices)


def launch_line(n: TrainerNumbers) -> str:
    """How the batch is split: devices x micro-batch x accumulation = global, in sequences."""
    return (f"{n.devices} data-parallel device(s) x micro-batch {n.micro} x accumulation "
            f"{n.accum} = global batch {n.seqs} sequences of {n.seq_len} tokens "
            f"({n.seqs * n.seq_len} tokens per optimizer step)")


def torchrun(n: TrainerNumbers) -> str:
    """The launcher for ``n.devices`` processes (one node up to 8, else several)."""
    if n.devices <= 8:
        return f"torchrun --standalone --nproc_per_node={n.devices}"
    return f"torchrun with {n.devices} processes in all (--nnodes x --nproc_per_node)"


def ramp_note(rec, exporter: "Exporter") -> str | None:
    """For a trainer without a batch ramp: the ramp is not in its file."""
    plan = getattr(rec, "batch_plan", None)
    if plan is None or plan.ramp is None or exporter.full or exporter.name == "megatron":
        return None
    return (f"batch ramp ({plan.ramp.doublings} doublings) not expressible in "
            f"{exporter.name}: the file uses the planned batch of {plan.global_sequences} "
            "sequences throughout (the stages are in --format yaml or json)")


def wsd_decay(rec, n: TrainerNumbers) -> tuple[int, float]:
    """(cooldown steps, final LR / peak LR) of a WSD schedule block."""
    s = rec.schedule
    decay = n.steps - int(s.decay_start_step)
    return decay, (float(s.final_lr or 0.0) / n.lr if n.lr else 0.0)


def toml_float(x: float) -> str:
    """``x`` as a TOML float (refuses NaN and inf)."""
    x = float(x)
    if not math.isfinite(x):
        raise AdvisorError(f"cannot write non-finite number {x} to TOML")
    r = repr(x)
    return r if any(ch in r for ch in ".en") else r + ".0"


def depth_note(depth, exporter: Exporter) -> str | None:
    """What ``exporter``'s trainer cannot express of the depth view (``depth``: the
    recommendation's depth block), or None."""
    if not depth or exporter.depth_note is None:
        return None
    return (f"depth view (alpha {depth.alpha:g}, {depth.depth} blocks vs a "
            f"{depth.base_depth}-block proxy) not expressible here: "
            f"{exporter.depth_note}. To apply: {depth.apply}")


def muon_note(optimizer, exporter: Exporter) -> str | None:
    """What ``exporter``'s trainer cannot express of a Muon optimizer block, or None."""
    if getattr(optimizer, "muon", None) is None or exporter.muon_note is None:
        return None
    return (f"Muon not expressible in {exporter.name}: the file above configures AdamW only; "
            f"{exporter.muon_note}")


def wd_rule_note(mup, exporter: Exporter) -> str | None:
    """The weight-decay width rule of the muP view, for a trainer file with one weight_decay
    (None for the full formats, which carry the whole muP view)."""
    rule = getattr(mup, "wd_rule", None)
    if exporter.full or exporter.needs_muon or rule is None:
        return None
    wd = {g.group: g.torch_weight_decay for g in mup.groups}
    return (f"weight-decay width rule {rule.name} (hidden torch weight_decay x "
            f"m^{rule.exponent:g}, m = {mup.width}/{mup.base_width}): this file sets one "
            "weight_decay for every parameter, right for a standard-parameterisation run; a "
            f"muP model at this width gives hidden matrices {wd[ROW_LABELS['hidden']]:.3g} "
            f"and embedding and readout {wd[ROW_LABELS['embedding']]:.3g} (the mup block of "
            "--format yaml or json; --wd-rule)")


def notes(rec, exporter: Exporter) -> list[str]:
    """Every note for ``exporter``: depth view, Muon, weight-decay width rule, batch ramp
    (that order)."""
    return [n for n in (depth_note(rec.depth, exporter), muon_note(rec.optimizer, exporter),
                        wd_rule_note(rec.mup, exporter), ramp_note(rec, exporter)) if n]


def file_notes(rec, exporter: Exporter) -> list[str]:
    """The notes a trainer file carries as comments: depth view and weight-decay width rule
    (the Muon note goes to the CLI's stderr only)."""
    return [n for n in (depth_note(rec.depth, exporter), wd_rule_note(rec.mup, exporter),
                        ramp_note(rec, exporter)) if n]


def with_file_notes(lines: list[str], rec, exporter: Exporter) -> str:
    """A trainer file's ``lines`` with its :func:`file_notes` as trailing comments, as text."""
    return "\n".join(lines + comment_block(file_notes(rec, exporter), exporter.comment)) + "\n"


def comment_block(lines: list[str], prefix: str, width: int = 92) -> list[str]:
    """``lines`` wrapped at ``width`` and prefixed as comments."""
    return [prefix + line for note in lines
            for line in textwrap.wrap(note, width, break_on_hyphens=False,
                                      break_long_words=False)]
