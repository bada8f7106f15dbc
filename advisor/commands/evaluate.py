"""``advisor evaluate --grid RESULTS --law NAME|FILE``: how close a law lands to each cell's best.

For each (N, D) cell: the loss of the run nearest (in ln lr, ln batch) to the law's
prediction, relative to the cell's best run (Step Law's measure). ``--cross-validate``
instead refits our own laws with each cell held out and scores the held-out cell.
"""
from __future__ import annotations

import advisor.commands._single_blas  # noqa: F401  (before numpy: one BLAS thread)

import json

import click

from advisor.numbers import SEQ_LEN_UNITS, parse_seq_len


@click.command("evaluate")
@click.option("--grid", "grid", required=True, help="results store or Step Law-layout CSV")
@click.option("--law", "law", default=None, help="shipped law-set name or law-set YAML file")
@click.option("--cross-validate", "cross", is_flag=True,
              help="refit our laws with each cell held out; score the held-out cell")
@click.option("--method", type=click.Choice(["surface", "optima", "best-point"]),
              default="surface", show_default=True, help="fit method for --cross-validate")
@click.option("--loss", "loss_col", type=click.Choice(["auto", "smooth", "final"]),
              default="auto", show_default=True, help="loss column of the grid")
@click.option("--select", "select", multiple=True, metavar="COLUMN=VALUE",
              help="keep only runs whose COLUMN equals VALUE (repeatable), e.g. "
                   "parameterization=mup")
@click.option("--seq-len", default="2048", show_default=True,
              help=f"tokens per sequence, to read a bs column given in sequences; "
                   f"{SEQ_LEN_UNITS}")
@click.option("--batch-vars", type=click.Choice(["N,D", "D", "N"]), default=None,
              help="variables of the batch law refitted by --cross-validate")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def evaluate(grid, law, cross, method, loss_col, select, seq_len, batch_vars, fmt):
    """Loss gap of a law's (LR, batch) prediction on every cell of a grid."""
    from advisor.errors import AdvisorError
    from advisor.fit.crossval import cross_validate
    from advisor.fit.gaps import lawset_gaps, summarize
    from advisor.runs import load_runs

    seq_len = parse_seq_len(seq_len)
    if cross and law:
        raise AdvisorError("give either --law (score a law set) or --cross-validate (score our "
                           "own fit on held-out cells), not both")
    if not cross and not law:
        raise AdvisorError("give --law NAME|FILE, or --cross-validate")
    lawset = None
    if law:
        from advisor.lawset import load_lawset
        lawset = load_lawset(law)
        if not lawset.has("learning_rate"):
            raise AdvisorError(f"law set {lawset.name!r} has no learning_rate law to evaluate")
    table = load_runs(grid, loss=loss_col, seq_len=seq_len, select=select)
    notes = list(table.notes)
    if cross:
        def progress(i, n):
            if fmt == "text":
                click.echo(f"\r  refitting with cell {i}/{n} held out", err=True,
                           nl=(i == n))
        bv = tuple(batch_vars.split(",")) if batch_vars else None
        cells = cross_validate(table, method, progress=progress, batch_vars=bv)
        label = f"our fit ({method}), each cell held out"
    else:
        if lawset.conventions.get("params") != "non_embedding":
            notes.append(f"law set {lawset.name} counts N as {lawset.conventions.get('params')}; "
                         "the grid's N is used as given (non-embedding in Step Law layout)")
        cells = lawset_gaps(table, lawset)
        label = f"law set {lawset.name} (in-sample for the grid it was fitted on)"
    summary = summarize(cells)
    if fmt == "json":
        click.echo(json.dumps({"grid": table.source, "evaluated": label,
                               "loss_column": table.loss_column, "summary": summary,
                               "cells": cells, "notes": notes}, indent=1))
        return
    click.echo(f"{table.summary()}")
    click.echo(f"evaluated: {label}")
    click.echo(f"{'N':>9} {'D':>9} {'pred lr':>9} {'pred B':>9} {'near lr':>9} {'near B':>9} "
               f"{'best lr':>9} {'best B':>9} {'gap %':>7}")
    for c in cells:
        pb = c["pred_batch_tokens"]
        click.echo(f"{c['N']:9.3g} {c['D']:9.3g} {c['pred_lr']:9.3g} "
                   f"{pb if pb is None else format(pb, '9.3g')!s:>9} {c['nearest_lr']:9.3g} "
                   f"{c['nearest_batch_tokens']:9.3g} {c['best_lr']:9.3g} "
                   f"{c['best_batch_tokens']:9.3g} {100 * c['gap']:7.3f}")
    click.echo(f"gap over {summary['cells']} cells: mean {100 * summary['mean_gap']:.3f}%, "
               f"median {100 * summary['median_gap']:.3f}%, max {100 * summary['max_gap']:.3f}%")
    for n in notes:
        click.echo(f"note: {n}")
