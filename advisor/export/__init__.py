"""Write a :class:`~advisor.recommendation.Recommendation` in the formats trainers read.

| format      | what it is                                   | read back by (in tests)        |
|-------------|----------------------------------------------|--------------------------------|
| yaml, json  | the full recommendation with its evidence    | yaml.safe_load, json.loads     |
| nanogpt     | a nanoGPT config file (Python assignments, as | nanoGPT's configurator: exec   |
|             | `python train.py config/this.py` reads)       | of the file into globals       |
| hf          | Hugging Face TrainingArguments as JSON       | transformers.HfArgumentParser  |
| torchtitan  | a torchtitan job TOML                        | tomllib (what torchtitan uses) |

Trainer formats carry the numbers a trainer can take; the evidence stays in yaml/json.
"""
from __future__ import annotations

import json
import math

from advisor.depth_view import comment_lines
from advisor.errors import AdvisorError

FORMATS = ("yaml", "json", "nanogpt", "hf", "torchtitan")


def export(rec, fmt: str) -> str:
    """The recommendation as text in format ``fmt`` (one of FORMATS)."""
    if fmt == "yaml":
        return rec.to_yaml()
    if fmt == "json":
        return rec.to_json() + "\n"
    if fmt == "nanogpt":
        return to_nanogpt(rec)
    if fmt == "hf":
        return to_hf_training_args(rec)
    if fmt == "torchtitan":
        return to_torchtitan(rec)
    raise AdvisorError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")


def micro_batch(sequences: int, cap: int = 8) -> int:
    """Largest power of two <= cap that divides the global batch (sequences per device step)."""
    mb = 1
    while mb * 2 <= cap and sequences % (mb * 2) == 0:
        mb *= 2
    return mb


def _core(rec) -> dict:
    seqs = int(rec.batch_size_sequences.value)
    mb = micro_batch(seqs)
    sched = rec.schedule
    return {
        "lr": float(rec.learning_rate.value), "wd": float(rec.weight_decay.value),
        "beta1": rec.optimizer["beta1"], "beta2": rec.optimizer["beta2"],
        "eps": rec.optimizer["eps"], "clip": rec.optimizer["grad_clip_norm"],
        "warmup": int(rec.warmup_steps.value), "steps": int(rec.total_steps.value),
        "seqs": seqs, "micro": mb, "accum": seqs // mb, "seq_len": int(rec.target["seq_len"]),
        "m": rec.model, "sched": sched,
    }


def to_nanogpt(rec) -> str:
    """nanoGPT config (karpathy/nanoGPT train.py globals). nanoGPT decays by cosine only, so
    this carries the cosine alternative; the model block is LLaMA-shaped (SwiGLU width is
    not a nanoGPT setting: its MLP is 4 * n_embd)."""
    c = _core(rec)
    final = float(rec.schedule.get("alternative", {}).get("final_lr", c["lr"] * 0.1))
    lines = [
        f"# hp-advisor {rec.target['params_total']:.4g} parameters, "
        f"{rec.target['tokens']['value']:.4g} tokens; law: {rec.law['name']}",
        "# Run: python train.py config/this_file.py  (per-GPU accumulation = "
        "gradient_accumulation_steps / number of GPUs)",
        "# nanoGPT decays by cosine: this uses the advisor's cosine alternative.",
        f"n_layer = {c['m']['n_layers']}",
        f"n_head = {c['m']['n_heads']}",
        f"n_embd = {c['m']['d_model']}",
        f"block_size = {c['seq_len']}",
        "bias = False",
        "dropout = 0.0",
        f"batch_size = {c['micro']}",
        f"gradient_accumulation_steps = {c['accum']}",
        f"learning_rate = {c['lr']!r}",
        f"min_lr = {final!r}",
        f"weight_decay = {c['wd']!r}",
        f"beta1 = {c['beta1']!r}",
        f"beta2 = {c['beta2']!r}",
        f"grad_clip = {c['clip']!r}",
        "decay_lr = True",
        f"warmup_iters = {c['warmup']}",
        f"lr_decay_iters = {c['steps']}",
        f"max_iters = {c['steps']}",
    ]
    lines += comment_lines(getattr(rec, "depth", None), "nanogpt")
    return "\n".join(lines) + "\n"


def to_hf_training_args(rec) -> str:
    """transformers.TrainingArguments fields as JSON (HfArgumentParser.parse_json_file).

    The WSD schedule maps to lr_scheduler_type "warmup_stable_decay"; per-device batch and
    accumulation are for one device (divide accumulation by the number of devices).
    """
    c = _core(rec)
    s = c["sched"]
    args = {
        "output_dir": "out",
        "learning_rate": c["lr"], "weight_decay": c["wd"],
        "adam_beta1": c["beta1"], "adam_beta2": c["beta2"], "adam_epsilon": c["eps"],
        "max_grad_norm": c["clip"], "optim": "adamw_torch",
        "per_device_train_batch_size": c["micro"], "gradient_accumulation_steps": c["accum"],
        "max_steps": c["steps"], "warmup_steps": c["warmup"], "bf16": True,
    }
    if s.get("family") == "wsd":
        decay = c["steps"] - int(s["decay_start_step"])
        shape = {"1-sqrt": "1-sqrt", "linear": "linear", "cosine": "cosine"}.get(
            s.get("cooldown_shape"), "linear")
        args["lr_scheduler_type"] = "warmup_stable_decay"
        args["lr_scheduler_kwargs"] = {
            "num_decay_steps": decay, "decay_type": shape,
            "min_lr_ratio": float(s.get("final_lr", 0.0)) / c["lr"] if c["lr"] else 0.0}
    else:
        args["lr_scheduler_type"] = {"cosine": "cosine", "linear": "linear"}.get(
            s.get("family"), "constant_with_warmup")
    return json.dumps(args, indent=2) + "\n"


def to_torchtitan(rec) -> str:
    """A torchtitan job TOML: [optimizer], [lr_scheduler] (WSD: decay_ratio, decay_type
    linear|sqrt|cosine, min_lr_factor) and [training] (global/local batch, seq_len, steps)."""
    c = _core(rec)
    s = c["sched"]
    if s.get("family") == "wsd":
        decay_ratio = (c["steps"] - int(s["decay_start_step"])) / c["steps"]
        decay_type = {"1-sqrt": "sqrt"}.get(s.get("cooldown_shape"), s.get("cooldown_shape"))
        min_factor = float(s.get("final_lr", 0.0)) / c["lr"] if c["lr"] else 0.0
    else:
        decay_ratio, decay_type = 1.0, ("cosine" if s.get("family") == "cosine" else "linear")
        min_factor = 0.1 if s.get("family") == "cosine" else 0.0
    m = c["m"]
    out = [
        f"# hp-advisor {rec.target['params_total']:.4g} parameters, law: {rec.law['name']}",
        "[job]",
        f'description = "hp-advisor: {m["n_layers"]} layers x d_model {m["d_model"]}"',
        "",
        "[optimizer]",
        'name = "AdamW"',
        f"lr = {_toml_float(c['lr'])}",
        f"eps = {_toml_float(c['eps'])}",
        f"beta1 = {_toml_float(c['beta1'])}",
        f"beta2 = {_toml_float(c['beta2'])}",
        f"weight_decay = {_toml_float(c['wd'])}",
        "",
        "[lr_scheduler]",
        f"warmup_steps = {c['warmup']}",
        f"decay_ratio = {_toml_float(round(decay_ratio, 6))}",
        f'decay_type = "{decay_type}"',
        f"min_lr_factor = {_toml_float(min_factor)}",
        "",
        "[training]",
        f"global_batch_size = {c['seqs']}",
        f"local_batch_size = {c['micro']}",
        f"seq_len = {c['seq_len']}",
        f"steps = {c['steps']}",
        f"max_norm = {_toml_float(c['clip'])}",
    ]
    out += comment_lines(getattr(rec, "depth", None), "torchtitan")
    return "\n".join(out) + "\n"


def _toml_float(x: float) -> str:
    x = float(x)
    if not math.isfinite(x):
        raise AdvisorError(f"cannot write non-finite number {x} to TOML")
    r = repr(x)
    return r if any(ch in r for ch in ".en") else r + ".0"
