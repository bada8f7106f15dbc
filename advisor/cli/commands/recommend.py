"""``advisor recommend``: a ready-to-run training config for a target model size."""
from __future__ import annotations

import sys

import click

from advisor.cli.commands._device_options import device_options
from advisor.cli.commands._options import shape_options
from advisor.cli.commands._rec_table import TABLE_FORMAT, recommendation_table
from advisor.errors import AdvisorError
from advisor.export import NAMES, exporter
from advisor.common.numbers import SEQ_LEN_UNITS
from advisor.recommendation.muon_view import DEFAULT_CONVENTION, OPTIMIZERS
from advisor.rules.optim_rules import MUON_CONVENTIONS, WD_WIDTH_RULES
from advisor.recommendation.core import (DEFAULT_BASE_WIDTH, DEFAULT_FAMILY, DEFAULT_LAW,
                                    DEFAULT_SEQ_LEN, recommend as _recommend)


@click.command()
@click.option("--params", default=None, metavar="N",
              help="Total parameters of the target model, embeddings included: 7e9, 7B or "
                   "7000000000 (optional when the architecture is given).")
@click.option("--tokens", default=None, metavar="D",
              help="Training tokens (default: compute-optimal for --params under Epoch AI's "
                   "Chinchilla refit, about 20 per parameter).")
@click.option("--seq-len", default=str(DEFAULT_SEQ_LEN), show_default=True,
              help=f"Tokens per sequence; sets the batch in sequences; {SEQ_LEN_UNITS}.")
@click.option("--law", default=DEFAULT_LAW, show_default=True,
              help="Shipped law set for LR and batch size (see `advisor laws`).")
@click.option("--laws", "laws_file", type=click.Path(dir_okay=False), default=None,
              help="A law-set YAML file (e.g. from `advisor fit`); overrides --law.")
@click.option("--family", default=DEFAULT_FAMILY, show_default=True,
              help="Target-model family in recipes/families, for the shape.")
@click.option("--base-width", default=None, metavar="D0",
              help="Width of the muP proxy the muP multipliers are relative to (default: the "
                   f"law set's mup.base_width, else {DEFAULT_BASE_WIDTH}).")
@click.option("--base-depth", default=None, metavar="L0",
              help="Blocks of the proxy the depth view is relative to (default 4).")
@click.option("--depth-alpha", default=None, metavar="ALPHA",
              help="Depth exponent of the depth view: 1 CompleteP (default), 0.5 Depth-muP, "
                   "0 none.")
@click.option("--wd-rule", type=click.Choice(tuple(WD_WIDTH_RULES)), default=None,
              help="Width rule of the hidden matrices' weight decay in the muP view: mup "
                   "(torch weight_decay x m, as mup.MuAdamW), sqrt (x sqrt(m), Fan et al. "
                   "2025) or none (default: the law set's mup.wd_rule, which `advisor fit` "
                   "records from its runs, else mup; another rule than the law set's is "
                   "warned about; docs/recommend.md).")
@click.option("--schedule-law", type=click.Path(dir_okay=False), default=None,
              help="A fitted schedule law (`advisor schedule fit`) to choose the schedule.")
@click.option("--hf-config", type=click.Path(dir_okay=False), default=None,
              help="A Hugging Face config.json of the real model: its parameter counts (exact for "
                   "model types llama, mistral, qwen2, qwen3, gpt2, gpt_neox) "
                   "(vocabulary, tying, GQA key/value heads).")
@click.option("--stability-sweep", type=click.Path(dir_okay=False), default=None,
              help="A stability sweep summary (advisor results STORE --by stability --format "
                   "json > FILE) for the stability block; default: published evidence "
                   "(docs/stability.md).")
@shape_options("Real model")
@click.option("--optimizer", "optimizer_name", type=click.Choice(OPTIMIZERS),
              default="adamw", show_default=True,
              help="muon: Muon on hidden matrices + AdamW elsewhere, converted from the AdamW "
                   "laws (advisor/recommendation/muon_view.py).")
@click.option("--muon-convention", type=click.Choice(sorted(MUON_CONVENTIONS)),
              default=DEFAULT_CONVENTION, show_default=True,
              help="Muon width convention (with --optimizer muon).")
@click.option("--batch-tokens", default=None, metavar="B",
              help="Fixed global batch in tokens (a whole number of --seq-len sequences); "
                   "the LR is then the optimum given it (docs/conditional.md).")
@click.option("--batch-size", default=None, metavar="SEQS",
              help="Fixed global batch in sequences of --seq-len tokens.")
@click.option("--lr", "fixed_lr", default=None, metavar="LR",
              help="Your peak LR: reported against the optimum given the rest (octaves, "
                   "quantile of the interval, expected loss cost in nats).")
@click.option("--beta2", default=None, help="Fixed Adam beta2 (its half-life in tokens is "
                                             "reported).")
@click.option("--weight-decay", default=None, metavar="LAMBDA",
              help="Fixed coupled AdamW weight decay (torch: decay lr*lambda per step).")
@click.option("--warmup", default=None, metavar="STEPS", help="Fixed warmup, optimizer steps.")
@click.option("--schedule", default=None, metavar="SPEC",
              help="Fixed schedule, e.g. cosine:final=0.1 or wsd:cooldown=0.2,shape=1-sqrt.")
@click.option("--format", "fmt", type=click.Choice((TABLE_FORMAT,) + tuple(NAMES)),
              default=None, help="Output format (default: table at a terminal, else yaml): "
              "table: the values, intervals and warnings, short; " + "; ".join(
                  f"{e.name}: {e.doc}" for e in map(exporter, NAMES)) + ".")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write to this file (atomically) instead of standard output.")
@device_options
def recommend(params, tokens, seq_len, law, laws_file, family, base_width, schedule_law,
              hf_config, d_model, n_layers, n_heads, n_kv_heads, ffn, vocab, tied_embeddings,
              fmt, output, base_depth=None, depth_alpha=None, optimizer_name="adamw",
              muon_convention="match_rms_adamw", wd_rule=None, batch_tokens=None,
              batch_size=None, fixed_lr=None, beta2=None, weight_decay=None, warmup=None,
              schedule=None, devices=None, micro_batch=None, batch_ramp=None,
              stability_sweep=None):
    """Recommend LR, weight decay, batch size, warmup and schedule for a model size.

    Every value carries its unit and its source; warnings say where a law is extrapolated
    and where shipped laws disagree. Example:

        advisor recommend --params 7e9 --format json
    """
    from advisor.specs.modelspec import spec_from_hf_config, spec_from_options
    from advisor.common.outputs import atomic_write_text, check_output_file
    from advisor.recommendation.stability import stability_inputs

    if output:
        check_output_file(output, "config")
    spec = spec_from_options(d_model, n_layers, n_heads, n_kv_heads, ffn, vocab,
                             tied_embeddings)
    if hf_config:
        if spec is not None:
            raise AdvisorError("give --hf-config or --d-model/--n-layers/--n-heads, not both")
        spec = spec_from_hf_config(hf_config)
    stability = stability_inputs(hf_config, stability_sweep)
    rec = _recommend(params, tokens=tokens, seq_len=seq_len, law=law, laws_file=laws_file,
                     family=family, base_width=base_width, schedule_law=schedule_law,
                     model_spec=spec, base_depth=base_depth, depth_alpha=depth_alpha,
                     wd_rule=wd_rule, batch_tokens=batch_tokens, batch_size=batch_size,
                     lr=fixed_lr, beta2=beta2, weight_decay=weight_decay, warmup=warmup,
                     schedule=schedule, devices=devices, micro_batch=micro_batch,
                     batch_ramp=batch_ramp, stability=stability, optimizer=optimizer_name,
                     muon_convention=muon_convention)
    if fmt is None:        # a person at a terminal reads the table; a pipe or file gets YAML
        fmt = TABLE_FORMAT if output is None and sys.stdout.isatty() else "yaml"
    if fmt == TABLE_FORMAT:          # warnings are in the table itself
        table = recommendation_table(rec)
        if output:
            atomic_write_text(output, table, "table")
            click.echo(f"wrote table to {output}", err=True)
        else:
            click.echo(table, nl=False)
        return
    writer = exporter(fmt)
    text = writer.write(rec)
    if output:
        atomic_write_text(output, text, "config")
        click.echo(f"wrote {fmt} config to {output}", err=True)
    else:
        click.echo(text, nl=False)
    for w in rec.warnings:
        if not writer.full:
            click.echo(f"warning: {w}", err=True)
    from advisor.export import notes
    for note in notes(rec, writer):
        click.echo(f"note: {note}", err=True)
