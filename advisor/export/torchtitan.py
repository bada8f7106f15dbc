"""torchtitan: a job TOML (read with tomllib, as torchtitan does).

Field names are torchtitan's job config: [optimizer] (name, lr, eps, beta1, beta2,
weight_decay), [lr_scheduler] (warmup_steps, decay_ratio, decay_type linear|sqrt|cosine,
min_lr_factor) and [training] (global/local batch in sequences, seq_len in tokens, steps,
max_norm).
"""
from __future__ import annotations

from advisor.export.common import (Exporter, toml_float, trainer_numbers, with_file_notes,
                                   wsd_decay)

DEPTH_NOTE = ("the job TOML has no residual multiplier and no per-group LRs or eps: "
              "apply the depth view in the model and in build_optimizers")
MUON_NOTE = ("the job TOML's [optimizer] name picks one optimizer class for all "
             "parameters (upstream: Adam, AdamW; some forks add Muon): Muon on the "
             "hidden matrices with AdamW beside it needs a custom build_optimizers")
_DECAY_TYPES = {"1-sqrt": "sqrt"}           # torchtitan's name for a 1-sqrt cooldown


def write(rec) -> str:
    """The torchtitan job TOML for ``rec``."""
    n = trainer_numbers(rec)
    s = rec.schedule
    if s.family == "wsd":
        decay, min_factor = wsd_decay(rec, n)
        decay_ratio = decay / n.steps
        decay_type = _DECAY_TYPES.get(s.cooldown_shape, s.cooldown_shape)
    else:
        decay_ratio, decay_type = 1.0, ("cosine" if s.family == "cosine" else "linear")
        min_factor = 0.1 if s.family == "cosine" else 0.0
    m = rec.model
    out = [
        f"# hp-advisor {rec.target.params_total:.4g} parameters, law: {rec.law.name}",
        "[job]",
        f'description = "hp-advisor: {m.n_layers} layers x d_model {m.d_model}"',
        "",
        "[optimizer]",
        'name = "AdamW"',
        f"lr = {toml_float(n.lr)}",
        f"eps = {toml_float(n.eps)}",
        f"beta1 = {toml_float(n.beta1)}",
        f"beta2 = {toml_float(n.beta2)}",
        f"weight_decay = {toml_float(n.wd)}",
        "",
        "[lr_scheduler]",
        f"warmup_steps = {n.warmup}",
        f"decay_ratio = {toml_float(round(decay_ratio, 6))}",
        f'decay_type = "{decay_type}"',
        f"min_lr_factor = {toml_float(min_factor)}",
        "",
        "[training]",
        f"global_batch_size = {n.seqs}",
        f"local_batch_size = {n.micro}",
        f"seq_len = {n.seq_len}",
        f"steps = {n.steps}",
        f"max_norm = {toml_float(n.clip)}",
    ]
    return with_file_notes(out, rec, EXPORTER)


EXPORTER = Exporter(name="torchtitan", write=write, suffix=".toml",
                    doc="torchtitan job TOML ([lr_scheduler] decay_type sqrt)",
                    depth_note=DEPTH_NOTE, muon_note=MUON_NOTE, comment="# ")
