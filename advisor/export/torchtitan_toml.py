"""torchtitan 0.2.x: a job TOML (``--job.config_file``, read by torchtitan's ConfigManager with
tomllib). Releases from 0.3.0 read no TOML (``--format torchtitan`` writes their Python config).

Field names are torchtitan 0.2's job config: [model] (name, flavor, hf_assets_path),
[optimizer] (name, lr, eps, beta1, beta2, weight_decay), [lr_scheduler] (warmup_steps,
decay_ratio, decay_type linear|sqrt|cosine, min_lr_factor), [training] (global and local batch
in sequences, seq_len in tokens, steps, max_norm), [parallelism] (data_parallel_shard_degree:
the devices; torchtitan checks it against the world size) and [experimental] custom_import.
The [model] section names the shape: a Llama 3 flavor torchtitan has (8B, 70B, 405B), or the
flavor ``hp-advisor``, which the module named in custom_import registers (its code is in the
file's comments); without it torchtitan stops with an unknown flavor instead of training its
default ``llama3/debugmodel``.
"""
from __future__ import annotations

from advisor.export.common import (Exporter, comment_block, launch_line, toml_float, torchrun,
                                   with_file_notes)
from advisor.export.torchtitan_model import FLAVOR, ROPE_THETA, ffn_args, job_numbers

DEPTH_NOTE = ("the job TOML has no residual multiplier and no per-group LRs or eps: "
              "apply the depth view in the model and in build_optimizers")
MUON_NOTE = ("the job TOML's [optimizer] name picks one optimizer class for all "
             "parameters (upstream: Adam, AdamW; some forks add Muon): Muon on the "
             "hidden matrices with AdamW beside it needs a custom build_optimizers")
MODULE = "hp_advisor_flavor"


def flavor_module(m) -> list[str]:
    """The Python module that registers this shape as torchtitan 0.2's llama3 flavor."""
    multiple, mult = ffn_args(m.d_model, m.ffn_hidden)
    return [
        "from torchtitan.models.llama3 import TransformerModelArgs, llama3_args",
        "",
        f'llama3_args["{FLAVOR}"] = TransformerModelArgs(',
        f"    dim={m.d_model}, n_layers={m.n_layers}, n_heads={m.n_heads}, "
        f"n_kv_heads={m.n_kv_heads},",
        f"    vocab_size={m.vocab_size}, multiple_of={multiple}, ffn_dim_multiplier={mult!r},",
        f"    rope_theta={ROPE_THETA})",
    ]


def write(rec) -> str:
    """The torchtitan 0.2 job TOML for ``rec``."""
    n, m, (decay_ratio, decay_type, min_factor), flavor = job_numbers(rec)
    out = [
        f"# hp-advisor {rec.target.params_total:.4g} parameters, law: {rec.law.name}; "
        "torchtitan 0.2.x (0.3 reads Python configs: --format torchtitan)",
        f"# {launch_line(n)}",
        f"# Run: {torchrun(n)} -m torchtitan.train --job.config_file this.toml",
    ]
    if flavor is None:
        out += ([f"# The shape is no flavor torchtitan has: save these lines as {MODULE}.py "
                 "on PYTHONPATH (torchtitan imports it, [experimental] below):"]
                + comment_block(flavor_module(m), "#   ", width=200))
    out += [
        "[job]",
        f'description = "hp-advisor: {m.n_layers} layers x d_model {m.d_model}"',
        "",
        "[model]",
        'name = "llama3"',
        f'flavor = "{flavor or FLAVOR}"',
        f'hf_assets_path = "./assets/hf/tokenizer-vocab-{m.vocab_size}"  '
        f"# your tokenizer: {m.vocab_size} tokens",
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
        'dataset = "c4"  # torchtitan\'s default is its c4_test sample: name your data here',
        f"global_batch_size = {n.seqs}",
        f"local_batch_size = {n.micro}",
        f"seq_len = {n.seq_len}",
        f"steps = {n.steps}",
        f"max_norm = {toml_float(n.clip)}",
        "",
        "[parallelism]",
        f"data_parallel_shard_degree = {n.devices}",
    ]
    if flavor is None:
        out += ["", "[experimental]", f'custom_import = "{MODULE}"']
    return with_file_notes(out, rec, EXPORTER)


EXPORTER = Exporter(name="torchtitan-0.2", write=write, suffix=".toml",
                    doc="torchtitan 0.2.x job TOML with its [model] section",
                    depth_note=DEPTH_NOTE, muon_note=MUON_NOTE, comment="# ")
