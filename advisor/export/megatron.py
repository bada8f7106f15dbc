"""Megatron-LM: the command-line arguments of ``pretrain_gpt.py``, one per line (a shell args
file: ``torchrun ... pretrain_gpt.py $(grep -v '^#' this_file) <data and tokenizer args>``).

Flag names are Megatron-LM's (megatron/training/arguments.py; the test parses the file with
the options recorded from that parser, tests/data/megatron_lm_args.json, and runs
megatron-core's OptimizerParamScheduler on the result). Megatron runs
global = micro-batch x data-parallel size x accumulation, with data-parallel size = devices /
(tensor x pipeline parallel): the file sets tensor and pipeline parallel 1, so the
accumulation is the plan's. The WSD schedule is ``--lr-decay-style WSD`` with a 1-sqrt
(``minus_sqrt``) cooldown over ``--lr-wsd-decay-iters``. muP (``--use-mup``, Megatron-LM PR
#3058) is in comments: its ``--lr`` is the base-width LR, which only a muP law set gives.
"""
from __future__ import annotations

import math

from advisor.export.common import (Exporter, comment_block, file_notes, launch_line,
                                   torchrun, trainer_numbers, wsd_decay)

DEPTH_NOTE = ("Megatron-LM's arguments have no residual-branch multiplier for the depth view "
              "(its --apply-residual-connection-post-layernorm is not one): apply it in the "
              "model's forward and the per-group LR/eps in the optimizer's param groups")
MUON_NOTE = ("Megatron-LM has --optimizer muon, whose scaling conventions are its own "
             "(--muon-scale-mode): check them against the Muon groups of --format yaml "
             "before converting")
_WSD = {"1-sqrt": "minus_sqrt", "linear": "linear", "cosine": "cosine"}


def _mup_lines(rec) -> list[str]:
    mup, m = rec.mup, rec.model
    base_lr = None
    if (rec.law.conventions or {}).get("learning_rate") == "mup_base":
        base_lr = float(rec.learning_rate.value) * m.d_model / mup.base_width
    lr = (f"--lr {base_lr:.4g} (this law set's muP base LR; replaces --lr above)"
          if base_lr is not None else
          "--lr <your proxy's tuned LR>: the --lr above is a standard-parameterisation LR "
          "from a law fitted on SP runs, not a base-width LR")
    return [
        f"muP (Megatron-LM PR #3058) for a muP model tuned on a proxy of width "
        f"{mup.base_width}: add --use-mup --mup-base-hidden-size {mup.base_width} "
        f"--mup-base-head-dim {m.head_dim} (attention 1/d_head, standard at this head size) "
        f"and {lr}; Megatron then scales the hidden matrices' LR by 1/m "
        f"(m = {m.d_model}/{mup.base_width}) and the output logits by 1/m itself",
    ]


def _ramp_lines(rec, n) -> list[str]:
    ramp = rec.batch_plan.ramp if rec.batch_plan is not None else None
    if ramp is None:
        return []
    sched = " ".join(f"{_tokens(s.from_tokens)}:{s.global_sequences}" for s in ramp.stages)
    samples = int(math.ceil(rec.target.tokens.value / n.seq_len))
    decay, _ = wsd_decay(rec, n)
    return [f"batch ramp ({ramp.doublings} doublings, Merrill et al. 2025): replace "
            f"--global-batch-size with --step-batch-size-schedule \"{sched}\" (thresholds in "
            "tokens) and train by samples: --train-samples "
            f"{samples} --lr-warmup-samples {n.warmup * n.seqs} --lr-wsd-decay-samples "
            f"{decay * n.seqs} in place of --train-iters, --lr-decay-iters, "
            "--lr-warmup-iters and --lr-wsd-decay-iters"]


def _tokens(x: float) -> str:
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if x >= scale:
            return f"{x / scale:.6g}{suffix}"
    return f"{int(x)}"


def write(rec) -> str:
    """The Megatron-LM args file for ``rec``."""
    n = trainer_numbers(rec)
    m, s = rec.model, rec.schedule
    args = [f"--num-layers {m.n_layers}", f"--hidden-size {m.d_model}",
            f"--ffn-hidden-size {m.ffn_hidden}", f"--num-attention-heads {m.n_heads}"]
    if m.n_kv_heads != m.n_heads:
        args.append(f"--group-query-attention --num-query-groups {m.n_kv_heads}")
    if m.n_heads * m.head_dim != m.d_model:
        args.append(f"--kv-channels {m.head_dim}")
    args += [f"--seq-length {n.seq_len}", f"--max-position-embeddings {n.seq_len}",
             "--position-embedding-type rope", "--normalization RMSNorm", "--swiglu",
             "--disable-bias-linear"]
    if not m.tied_embeddings:
        args.append("--untie-embeddings-and-output-weights")
    args += ["--tensor-model-parallel-size 1", "--pipeline-model-parallel-size 1",
             f"--micro-batch-size {n.micro}", f"--global-batch-size {n.seqs}",
             f"--train-iters {n.steps}", f"--lr {n.lr!r}", f"--lr-warmup-iters {n.warmup}",
             f"--lr-decay-iters {n.steps}"]
    if s.family == "wsd":
        decay, final_ratio = wsd_decay(rec, n)
        args += ["--lr-decay-style WSD",
                 f"--lr-wsd-decay-style {_WSD.get(s.cooldown_shape, 'linear')}",
                 f"--lr-wsd-decay-iters {decay}", f"--min-lr {n.lr * final_ratio!r}"]
    else:
        alt_final = float(s.final_lr or 0.0)
        args += [f"--lr-decay-style {'cosine' if s.family == 'cosine' else 'linear'}",
                 f"--min-lr {alt_final!r}"]
    args += ["--optimizer adam", f"--weight-decay {n.wd!r}", f"--adam-beta1 {n.beta1!r}",
             f"--adam-beta2 {n.beta2!r}", f"--adam-eps {n.eps!r}", f"--clip-grad {n.clip!r}",
             "--bf16"]
    head = [f"# hp-advisor {rec.target.params_total:.4g} parameters, "
            f"{rec.target.tokens.value:.4g} tokens; law: {rec.law.name}; Megatron-LM "
            "pretrain_gpt.py arguments",
            f"# {launch_line(n)}",
            f"# Run on exactly {n.devices} processes (data-parallel {n.devices}): {torchrun(n)} "
            "pretrain_gpt.py $(grep -v '^#' this_file) --vocab-size/--tokenizer-* --data-path "
            f"...  (vocabulary {m.vocab_size})"]
    tail = comment_block(_mup_lines(rec) + _ramp_lines(rec, n) + file_notes(rec, EXPORTER),
                         "# ")
    return "\n".join(head + args + tail) + "\n"


EXPORTER = Exporter(name="megatron", write=write, suffix=".args",
                    doc="Megatron-LM pretrain_gpt.py arguments (muP flags in comments)",
                    depth_note=DEPTH_NOTE, muon_note=MUON_NOTE, comment="# ")
