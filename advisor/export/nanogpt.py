"""nanoGPT (karpathy/nanoGPT ``train.py``): a config file of Python assignments, as
``python train.py config/this.py`` reads it (its configurator exec()s the file into globals).

Field names are nanoGPT's ``train.py`` globals. nanoGPT decays by cosine only, so the file
carries the recommendation's cosine alternative; the model block is LLaMA-shaped (SwiGLU width
is not a nanoGPT setting: its MLP is 4 * n_embd). Units: LRs peak, ``batch_size`` sequences
per device step, iterations are optimizer steps. ``gradient_accumulation_steps`` is the count
over all processes: nanoGPT's ``train.py`` asserts it divides by the world size and divides it
by that, so it is written as devices x per-device accumulation (launch on exactly that many
processes).
"""
from __future__ import annotations

from advisor.export.common import (Exporter, launch_line, torchrun, trainer_numbers,
                                   with_file_notes)

DEPTH_NOTE = ("karpathy/nanoGPT has no residual multiplier and one LR for all parameters: "
              "apply the depth view in model.py and configure_optimizers (EleutherAI's "
              "nanoGPT-mup, branch completep, has GPTConfig fields depth_alpha_enabled, "
              "depth_multiplier and depth_alpha_exp for it)")
MUON_NOTE = ("karpathy/nanoGPT's configure_optimizers builds one AdamW: replace it with the "
             "two optimizers of `--format pytorch` (Muon on the 2-D block weights, AdamW on "
             "wte/wpe/ln/lm_head)")


def write(rec) -> str:
    """The nanoGPT config file for ``rec``."""
    n = trainer_numbers(rec)
    m = rec.model
    alt = rec.schedule.alternative
    final = float(alt.final_lr if alt.final_lr is not None else n.lr * 0.1)
    lines = [
        f"# hp-advisor {rec.target.params_total:.4g} parameters, "
        f"{rec.target.tokens.value:.4g} tokens; law: {rec.law.name}",
        f"# Run on exactly {n.devices} process(es): {torchrun(n)} train.py "
        "config/this_file.py",
        f"# {launch_line(n)}; train.py divides gradient_accumulation_steps by the world size",
        "# nanoGPT decays by cosine: this uses the advisor's cosine alternative.",
        f"n_layer = {m.n_layers}",
        f"n_head = {m.n_heads}",
        f"n_embd = {m.d_model}",
        f"block_size = {n.seq_len}",
        "bias = False",
        "dropout = 0.0",
        f"batch_size = {n.micro}",
        f"gradient_accumulation_steps = {n.accum * n.devices}",
        f"learning_rate = {n.lr!r}",
        f"min_lr = {final!r}",
        f"weight_decay = {n.wd!r}",
        f"beta1 = {n.beta1!r}",
        f"beta2 = {n.beta2!r}",
        f"grad_clip = {n.clip!r}",
        "decay_lr = True",
        f"warmup_iters = {n.warmup}",
        f"lr_decay_iters = {n.steps}",
        f"max_iters = {n.steps}",
    ]
    return with_file_notes(lines, rec, EXPORTER)


EXPORTER = Exporter(name="nanogpt", write=write, suffix=".py",
                    doc="config file for karpathy/nanoGPT's train.py (cosine alternative)",
                    depth_note=DEPTH_NOTE, muon_note=MUON_NOTE, comment="# ")
