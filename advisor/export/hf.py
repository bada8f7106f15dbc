"""Hugging Face ``transformers.TrainingArguments`` as JSON (``HfArgumentParser.parse_json_file``).

Field names are TrainingArguments'. The WSD schedule maps to ``lr_scheduler_type``
"warmup_stable_decay" with ``lr_scheduler_kwargs`` (num_decay_steps, decay_type, min_lr_ratio);
``per_device_train_batch_size`` and ``gradient_accumulation_steps`` are per device: the Trainer's
global batch is their product times the world size (processes), which the batch plan fixes;
``run_name`` states the world size and the sequence length the batch assumes (JSON has no
comments; TrainingArguments has neither field). The CLI prints the notes on stderr.
"""
from __future__ import annotations

import json

from advisor.export.common import Exporter, launch_line, trainer_numbers, wsd_decay

DEPTH_NOTE = ("TrainingArguments has no residual multiplier and no per-group LRs or eps: apply "
              "the depth view in the model's forward and in a custom optimizer "
              "(Trainer(optimizers=...))")
MUON_NOTE = ("TrainingArguments.optim has no Muon (transformers 5.24's OptimizerNames): build "
             "the two optimizers with `--format pytorch` and pass a wrapper to "
             "Trainer(optimizers=(optimizer, scheduler))")
_DECAY_TYPES = {"1-sqrt": "1-sqrt", "linear": "linear", "cosine": "cosine"}
_SCHEDULERS = {"cosine": "cosine", "linear": "linear"}


def write(rec) -> str:
    """TrainingArguments fields for ``rec`` as JSON."""
    n = trainer_numbers(rec)
    s = rec.schedule
    args = {
        "output_dir": "out",
        "run_name": (f"hp-advisor: launch on world size {n.devices}; {launch_line(n)}; "
                     f"tokenize to sequences of exactly {n.seq_len} tokens"),
        "learning_rate": n.lr, "weight_decay": n.wd,
        "adam_beta1": n.beta1, "adam_beta2": n.beta2, "adam_epsilon": n.eps,
        "max_grad_norm": n.clip, "optim": "adamw_torch",
        "per_device_train_batch_size": n.micro, "gradient_accumulation_steps": n.accum,
        "max_steps": n.steps, "warmup_steps": n.warmup, "bf16": True,
    }
    if s.family == "wsd":
        decay, final_ratio = wsd_decay(rec, n)
        args["lr_scheduler_type"] = "warmup_stable_decay"
        args["lr_scheduler_kwargs"] = {
            "num_decay_steps": decay, "decay_type": _DECAY_TYPES.get(s.cooldown_shape, "linear"),
            "min_lr_ratio": final_ratio}
    else:
        args["lr_scheduler_type"] = _SCHEDULERS.get(s.family, "constant_with_warmup")
    return json.dumps(args, indent=2) + "\n"


EXPORTER = Exporter(name="hf", write=write, suffix=".json",
                    doc="Hugging Face TrainingArguments JSON (warmup_stable_decay, 1-sqrt)",
                    depth_note=DEPTH_NOTE, muon_note=MUON_NOTE)
