"""``advisor recommend``: a ready-to-run training config for a target model size."""
from __future__ import annotations

import click

from advisor.export import FORMATS, export
from advisor.recommendation import (DEFAULT_BASE_WIDTH, DEFAULT_FAMILY, DEFAULT_LAW,
                                    DEFAULT_SEQ_LEN, recommend as _recommend)


@click.command()
@click.option("--params", required=True, metavar="N",
              help="Total parameters of the target model, embeddings included: 7e9, 7B or "
                   "7000000000.")
@click.option("--tokens", default=None, metavar="D",
              help="Training tokens (default: compute-optimal for --params under Epoch AI's "
                   "Chinchilla refit, about 20 per parameter).")
@click.option("--seq-len", default=str(DEFAULT_SEQ_LEN), show_default=True,
              help="Tokens per sequence; sets the batch in sequences.")
@click.option("--law", default=DEFAULT_LAW, show_default=True,
              help="Shipped law set for LR and batch size (see `advisor laws`).")
@click.option("--laws", "laws_file", type=click.Path(dir_okay=False), default=None,
              help="A law-set YAML file (e.g. from `advisor fit`); overrides --law.")
@click.option("--family", default=DEFAULT_FAMILY, show_default=True,
              help="Target-model family in recipes/families, for the shape.")
@click.option("--base-width", default=str(DEFAULT_BASE_WIDTH), show_default=True,
              help="Width of the muP proxy the muP multipliers are relative to.")
@click.option("--base-depth", default=None, metavar="L0",
              help="Blocks of the proxy the depth view is relative to (default 4).")
@click.option("--depth-alpha", default=None, metavar="ALPHA",
              help="Depth exponent of the depth view: 1 CompleteP (default), 0.5 Depth-muP, "
                   "0 none.")
@click.option("--schedule-law", type=click.Path(dir_okay=False), default=None,
              help="A fitted schedule law (`advisor schedule fit`) to choose the schedule.")
@click.option("--optimizer", "optimizer_name", type=click.Choice(("adamw", "muon")),
              default="adamw", show_default=True,
              help="muon: Muon on hidden matrices + AdamW elsewhere, converted from the AdamW "
                   "laws (advisor/muon_view.py).")
@click.option("--muon-convention", type=click.Choice(("match_rms_adamw", "spectral")),
              default="match_rms_adamw", show_default=True,
              help="Muon width convention (with --optimizer muon).")
@click.option("--format", "fmt", type=click.Choice(FORMATS + ("pytorch",)), default="yaml",
              show_default=True, help="Output format (pytorch: a snippet building the "
                                      "optimizers; --optimizer muon only).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write to this file (atomically) instead of standard output.")
def recommend(params, tokens, seq_len, law, laws_file, family, base_width, schedule_law, fmt,
              output, base_depth=None, depth_alpha=None, optimizer_name="adamw",
              muon_convention="match_rms_adamw"):
    """Recommend LR, weight decay, batch size, warmup and schedule for a model size.

    Every value carries its unit and its source; warnings say where a law is extrapolated
    and where shipped laws disagree. Example:

        advisor recommend --params 7e9 --format json
    """
    rec = _recommend(params, tokens=tokens, seq_len=seq_len, law=law, laws_file=laws_file,
                     family=family, base_width=base_width, schedule_law=schedule_law,
                     base_depth=base_depth, depth_alpha=depth_alpha)
    from advisor import muon_view
    if optimizer_name == "muon":
        rec = muon_view.with_muon(rec, muon_convention)
    if fmt == "pytorch":
        if optimizer_name != "muon":
            from advisor.errors import AdvisorError
            raise AdvisorError("--format pytorch needs --optimizer muon")
        text = muon_view.pytorch_snippet(rec)
    else:
        text = export(rec, fmt)
    if output:
        from advisor.yamlio import atomic_write_text
        atomic_write_text(output, text)
        click.echo(f"wrote {fmt} config to {output}", err=True)
    else:
        click.echo(text, nl=False)
    for w in rec.warnings:
        if fmt not in ("yaml", "json"):
            click.echo(f"warning: {w}", err=True)
    from advisor.depth_view import export_notes
    for note in export_notes(rec.depth, fmt) + muon_view.export_notes(rec.optimizer, fmt):
        click.echo(f"note: {note}", err=True)
