"""Options shared by several commands, defined once here. The commands that read a sweep
(``fit``, ``evaluate``, ``plot``): which loss column, which runs, and the sequence length a
``bs`` column is counted in (advisor.runs.table checks the values; no numpy import at
``advisor --help``). The commands that take a target's shape in dimensions (``recommend``,
``plan``)."""
from __future__ import annotations

import click

from advisor.common.numbers import SEQ_LEN_UNITS
from advisor.specs.conventions import STEPLAW_SEQ_LEN

LOSS_CHOICES = ("auto", "smooth", "final")   # advisor.runs.table: "auto" or a LOSS_COLUMNS key


def sweep_options(loss_help: str = "loss column: smooth (Step Law's 'smooth loss'), "
                                   "final ('loss')"):
    """Decorator adding --loss (as ``loss_col``), --select (repeatable) and --seq-len."""
    def decorate(f):
        for opt in reversed((
                click.option("--loss", "loss_col", type=click.Choice(LOSS_CHOICES),
                             default="auto", show_default=True, help=loss_help),
                click.option("--select", "select", multiple=True, metavar="COLUMN=VALUE",
                             help="keep only runs whose COLUMN equals VALUE (repeatable), "
                                  "e.g. parameterization=mup"),
                click.option("--seq-len", default=str(STEPLAW_SEQ_LEN), show_default=True,
                             help="tokens per sequence, to read a bs column given in "
                                  f"sequences; {SEQ_LEN_UNITS}"))):
            f = opt(f)
        return f
    return decorate


def shape_options(what: str = "Real model"):
    """Decorator adding the target's dimensions: --d-model, --n-layers, --n-heads,
    --n-kv-heads, --ffn, --vocab, --tied-embeddings (all parsed by the command)."""
    def decorate(f):
        for opt in reversed((
                click.option("--d-model", default=None,
                             help=f"{what} width (with --n-layers, --n-heads)."),
                click.option("--n-layers", default=None, help=f"{what} depth."),
                click.option("--n-heads", default=None, help="Attention heads."),
                click.option("--n-kv-heads", default=None,
                             help="Key/value heads (GQA; default: --n-heads)."),
                click.option("--ffn", default=None,
                             help="MLP hidden size (default: 8/3 d rounded up to 256)."),
                click.option("--vocab", default=None, help="Vocabulary size (default 32000)."),
                click.option("--tied-embeddings", is_flag=True,
                             help="Input embedding and output head shared."))):
            f = opt(f)
        return f
    return decorate
