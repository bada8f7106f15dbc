"""The options of ``check-spectral`` that set its contract with the user's model (what it
feeds, how it reads the output, how it trains): one decorator, so the command itself only
parses and formats. The contract is stated in full in ``CONTRACT_HELP`` (the command's
``--help``), README and docs/spectral-check.md; the adapters live in
``calibration.spectral.contract`` (torch side: the command module builds the Contract)."""
from __future__ import annotations

import click

CONTRACT_HELP = """\b
The contract (--factory):
  factory(width) -> model or (model, optimizer); module:function, importable from
    the current directory. No optimizer: torch AdamW at --lr. A factory may seed
    torch itself: the check offsets that seed per replicate.
  Inputs: (batch, seq) token ids of real text (stdlib source bytes mod --vocab;
    --batch 8, --seq-len 64), or --data FILE (.npy or uint16 .bin token ids), or
    --batch-hook module:function, batch(width, step) -> (inputs, targets), step -1
    the probe batch (torch/numpy/random seeded per replicate and step).
  Layout: --layout auto (default: detected by changing one sample), batch-first,
    or seq-first (fed (seq, batch), returns (seq, batch, vocab)).
  Output: a tensor, a tuple (its first element, e.g. (logits, loss)), a dict or
    HF ModelOutput ('logits'), or an object with .logits.
  Loss: cross-entropy of the logits on next tokens, or --loss module:function,
    loss(output, targets) -> scalar tensor (for models that are not LMs).
  LR scales: a param group's 'lr_scale' entry (--lr-scale-key) is multiplied into
    its lr once, as a training loop that applies it would.
  Readout and attention are measured from what the model computes (logits, the
    hidden state entering the readout, the softmax input or SDPA call); a module
    attribute spectral_multiplier overrides the readout's measured multiplier.
  --format json prints JSON only on stdout; the model's own prints go to stderr.
"""


def contract_options(fn):
    """Add the contract options; the command receives them as ``contract_opts`` (dict)."""
    opts = [
        click.option("--vocab", type=int, default=256, show_default=True,
                     help="vocabulary the check's token ids fall in (text bytes mod vocab)."),
        click.option("--seq-len", type=int, default=64, show_default=True,
                     help="tokens per sequence fed to the model."),
        click.option("--batch", "batch_size", type=int, default=8, show_default=True,
                     help="sequences per batch."),
        click.option("--layout", type=click.Choice(["auto", "batch-first", "seq-first"]),
                     default="auto", show_default=True,
                     help="how the model takes token ids: (batch, seq) or (seq, batch)."),
        click.option("--data", default=None,
                     help="your token ids (.npy, or .bin of uint16) instead of the stdlib text."),
        click.option("--batch-hook", default=None,
                     help="module:function, batch(width, step) -> (inputs, targets)."),
        click.option("--loss", "loss_hook", default=None,
                     help="module:function, loss(output, targets) -> scalar tensor."),
        click.option("--lr-scale-key", default="lr_scale", show_default=True,
                     help="param-group entry multiplied into that group's lr."),
        click.option("--max-seeds", type=int, default=None,
                     help="replicates the check may add to settle inconclusive rows "
                          "[default: 2 x --seeds]."),
    ]

    def wrapper(**kwargs):
        names = ("vocab", "seq_len", "batch_size", "layout", "data", "batch_hook", "loss_hook",
                 "lr_scale_key", "max_seeds")
        kwargs["contract_opts"] = {n: kwargs.pop(n) for n in names}
        return fn(**kwargs)

    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    for opt in reversed(opts):
        wrapper = opt(wrapper)
    return wrapper
