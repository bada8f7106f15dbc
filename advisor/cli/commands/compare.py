"""``advisor compare``: every shipped law's LR, batch and weight decay for one target."""
from __future__ import annotations


import click

from advisor.cli.commands._table import cell, row
from advisor.laws.lawset import load_shipped
from advisor.common.numbers import SEQ_LEN_UNITS, parse_count, parse_seq_len
from advisor.common.yamlio import json_text
from advisor.laws.published import nearest
from advisor.rules.plausibility import check_target
from advisor.recommendation.core import (DEFAULT_FAMILY, DEFAULT_LOSS_LAW, DEFAULT_SEQ_LEN,
                                    compute_optimal_tokens, law_table)
from advisor.specs.shapes import load_family, shape_for_params


@click.command()
@click.option("--params", required=True, metavar="N", help="Total parameters, e.g. 7e9.")
@click.option("--tokens", default=None, metavar="D",
              help="Training tokens (default: compute-optimal, as `recommend`).")
@click.option("--seq-len", default=str(DEFAULT_SEQ_LEN), show_default=True,
              help=f"Tokens per sequence; {SEQ_LEN_UNITS}.")
@click.option("--family", default=DEFAULT_FAMILY, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def compare(params, tokens, seq_len, family, fmt):
    """One table: each shipped law's LR / batch / weight decay for the same target.

    Each law is evaluated at N in its own convention (non-embedding, total, ...). Weight
    decay by AdamW timescale (Power Lines) uses the default law's LR and batch.
    """
    params = parse_count(params, "params", minimum=1e6, maximum=1e14)
    seq_len = parse_seq_len(seq_len)
    shape = shape_for_params(load_family(family), params)
    sets = load_shipped()                      # each shipped set read once
    loss_ls = next(ls for ls in sets if ls.name == DEFAULT_LOSS_LAW)
    D = (compute_optimal_tokens(float(shape.params_total), loss_ls) if tokens is None
         else parse_count(tokens, "tokens", minimum=1e3, maximum=1e17))
    target_warnings = check_target(shape.params_total, D)     # the same check as recommend
    loss = loss_ls.predict("loss", shape.params_total, D)
    rows = law_table(shape, D, seq_len, loss=loss, sets=sets)
    practice = [e.to_dict() for kind, k in (("published", 4), ("tuned_optimum", 2))
                for e in nearest(float(shape.params_total), D, k=k, kind=kind)]
    if fmt == "json":
        click.echo(json_text({"params_total": params, "tokens": D, "seq_len": seq_len,
                              "model": shape.to_dict(), "laws": rows,
                              "published": practice, "warnings": target_warnings}))
        return
    for w in target_warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"target: {shape.params_total:.4g} parameters ({shape.n_layers} layers x "
               f"d_model {shape.d_model}), {D:.4g} tokens, seq_len {seq_len}")
    click.echo(f"{'law':<17} {'N used':>9} {'peak LR':>9} {'batch tok':>10} "
               f"{'batch seq':>9} {'wd':>7} {'loss':>6} {'B_crit tok':>10}  outside fitted range")
    for r in rows:
        bseq = None if r["batch_size_tokens"] is None else r["batch_size_tokens"] / seq_len
        notes = list(r["out_of_range"]) + [f"{q} {why}" for q, why in
                                           r.get("not_applicable", {}).items()]
        rng = "; ".join(notes)
        lr_cell = ("n/a".rjust(9) if "learning_rate" in r.get("not_applicable", {})
                   else cell(r["learning_rate"], "9.3g"))
        click.echo(row(f"{r['law']:<17}", (r["N"], "9.3g"), lr_cell,
                       (r["batch_size_tokens"], "10.3g"), (bseq, "9.0f"),
                       (r["weight_decay"], "7.3g"), (r["loss"], "6.3f"),
                       (r["critical_batch_size_tokens"], "10.3g")) + f"  {rng}")
    for p in practice:
        bt = p["batch_tokens"]
        click.echo(row(f"{p['id'][:17]:<17}", (p["params_non_embedding"], "9.3g"),
                       (p["peak_lr"], "9.3g"), (bt, "10.3g"),
                       (None if bt is None else bt / p["seq_len"], "9.0f"),
                       (p["weight_decay"], "7.3g"), (None, "6"), (None, "10"))
                   + f"  {p['kind']}: {p['tokens']:.3g} tokens, seq {p['seq_len']}; "
                   f"{p['source']['citation']}, {p['source']['place']} (checked: {p['checked']})")
    click.echo("Losses are on each law's own corpus and tokenizer (not comparable across "
               "rows); kaplan's critical batch reads its own loss.")
    click.echo("minicpm's LR is its muP base LR scaled to this width (x 256/d_model); its "
               "batch reads the loss L from the default loss law.")
