"""torchtitan 0.3.x (the current release): a Python config module, as torchtitan reads it
(``--module`` a module path, ``--config`` a function in it returning ``Trainer.Config``;
releases from 0.3.0 read no TOML: ``--format torchtitan-0.2`` writes that release's TOML).

The module starts from torchtitan's own Llama 3 8B recipe (``llama3_8b()``: data loader on
C4, checkpointing, metrics) and replaces its model, optimizer, LR scheduler, batch and
data-parallel degree with the recommendation's. The model is a Llama 3 flavor torchtitan has
(8B, 70B, 405B) or a new flavor ``hp-advisor`` built with torchtitan's own llama3 layer
builder at this shape. Names and fields are torchtitan 0.3.0's (the test checks each against
the API recorded from its wheel, tests/data/torchtitan_0_3_api.json).
"""
from __future__ import annotations

from advisor.export.common import Exporter, comment_block, file_notes, launch_line, torchrun
from advisor.export.torchtitan_model import FLAVOR, ROPE_THETA, job_numbers

DEPTH_NOTE = ("torchtitan's config has no residual multiplier; per-group LRs and eps need "
              "param_groups of the OptimizersContainer: apply the depth view there and in "
              "the model")
MUON_NOTE = ("the config's default_adamw gives every parameter AdamW: Muon on the hidden "
             "matrices needs its own ParamGroupConfig entries (torchtitan 0.3 "
             "OptimizersContainer.Config.param_groups)")
FUNCTION = "hp_advisor"


def _model_lines(m, seq_len: int) -> list[str]:
    return [
        "",
        "",
        "def _model(attn_backend: str = \"flex\", tp_gemm_backend=\"default\"):",
        f"    \"\"\"Llama 3 at the recommended shape: {m.n_layers} layers, d_model {m.d_model}, "
        f"{m.n_heads} heads ({m.n_kv_heads} key/value), MLP {m.ffn_hidden}.\"\"\"",
        "    L = _llama3",
        f"    dim, vocab = {m.d_model}, {m.vocab_size}",
        "    return L.Llama3Model.Config(",
        "        dim=dim, vocab_size=vocab,",
        "        tok_embeddings=L.Embedding.Config(num_embeddings=vocab, embedding_dim=dim,",
        "                                          param_init=L._EMBEDDING_INIT),",
        "        norm=L.RMSNorm.Config(normalized_shape=dim, param_init=L._NORM_INIT),",
        "        lm_head=L.Linear.Config(in_features=dim, out_features=vocab,",
        "                                param_init=L._output_linear_init(dim)),",
        "        layers=L._build_llama3_layers(",
        f"            fuse_qkv=True, n_layers={m.n_layers}, dim=dim, n_heads={m.n_heads}, "
        f"n_kv_heads={m.n_kv_heads},",
        f"            hidden_dim={m.ffn_hidden},",
        f"            rope=L.ComplexRoPE.Config(dim={m.head_dim}, "
        f"max_seq_len={max(131072, seq_len)}, theta={ROPE_THETA},",
        "                                      scaling=\"llama\"),",
        "            attn_backend=attn_backend, tp_gemm_backend=tp_gemm_backend))",
        "",
        "",
        f"_llama3.llama3_configs[\"{FLAVOR}\"] = _model",
    ]


def write(rec) -> str:
    """The torchtitan 0.3 config module for ``rec``."""
    n, m, (decay_ratio, decay_type, min_factor), flavor = job_numbers(rec)
    lines = [
        f'"""hp-advisor {rec.target.params_total:.4g} parameters, law: {rec.law.name}; '
        "torchtitan 0.3.x config.",
        "",
        f"{launch_line(n)}.",
        f"Run: PYTHONPATH=<this folder> {torchrun(n)} -m torchtitan.train "
        f"--module <this file's name> --config {FUNCTION}",
        '"""',
        "from torchtitan.components.optimizer import LRSchedulersContainer, default_adamw",
        "from torchtitan.config import TrainingConfig",
        "from torchtitan.models import llama3 as _llama3",
        "from torchtitan.models.llama3 import config_registry as _recipes",
    ]
    if flavor is None:
        lines += _model_lines(m, n.seq_len)
    lines += [
        "",
        "",
        f"def {FUNCTION}():",
        "    config = _recipes.llama3_8b()      # torchtitan's recipe: C4 data, checkpoints, metrics",
        f"    config.model_spec = _llama3.model_registry(\"{flavor or FLAVOR}\")",
        f"    config.loss.loss_fn.global_vocab_size = {m.vocab_size}",
        f"    config.hf_assets_path = \"./assets/hf/tokenizer-vocab-{m.vocab_size}\"  "
        f"# your tokenizer: {m.vocab_size} tokens",
        f"    config.optimizer = default_adamw(lr={n.lr!r}, betas=({n.beta1!r}, {n.beta2!r}), "
        f"eps={n.eps!r},",
        f"                                     weight_decay={n.wd!r})",
        "    config.lr_scheduler = LRSchedulersContainer.Config(",
        f"        warmup_steps={n.warmup}, decay_ratio={round(decay_ratio, 6)!r}, "
        f"decay_type=\"{decay_type}\",",
        f"        min_lr_factor={float(min_factor)!r})",
        "    config.training = TrainingConfig(",
        f"        local_batch_size={n.micro}, global_batch_size={n.seqs}, seq_len={n.seq_len},",
        f"        steps={n.steps}, max_norm={float(n.clip)!r})",
        f"    config.parallelism.data_parallel_shard_degree = {n.devices}",
        "    return config",
    ]
    lines += comment_block(file_notes(rec, EXPORTER), "# ")
    return "\n".join(lines) + "\n"


EXPORTER = Exporter(name="torchtitan", write=write, suffix=".py",
                    doc="torchtitan 0.3.x Python config (--module/--config); "
                        "torchtitan-0.2 for the TOML",
                    depth_note=DEPTH_NOTE, muon_note=MUON_NOTE, comment="# ")
