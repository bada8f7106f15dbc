"""``advisor evaluate --grid RESULTS --law NAME|FILE``: how close a law lands to each cell's best.

For each (N, D) cell: the loss of the run nearest (in ln lr, ln batch) to the law's
prediction, relative to the cell's best run (Step Law's measure). ``--cross-validate``
instead refits our own laws on cells it then scores: each cell held out in turn
(leave-one-cell-out, the interpolation figure), and the extrapolation folds (the cells at the
largest N, largest D, smallest N, smallest D held out together; advisor.fit.lr_batch).

A law set's figure is labelled in-sample only when its provenance records the fingerprint of
this very grid (``advisor fit`` writes it).
"""
from __future__ import annotations

import advisor.cli.commands._single_blas  # noqa: F401  (before numpy: one BLAS thread)

import math

import click

from advisor.cli.commands._options import sweep_options
from advisor.cli.commands._table import row
from advisor.common.numbers import parse_seq_len
from advisor.common.yamlio import json_text


@click.command("evaluate")
@click.option("--grid", "grid", required=True, help="results store or Step Law-layout CSV")
@click.option("--law", "law", default=None, help="shipped law-set name or law-set YAML file")
@click.option("--cross-validate", "cross", is_flag=True,
              help="refit our laws with each cell held out; score the held-out cell")
@click.option("--method", type=click.Choice(["surface", "optima", "best-point"]),
              default="surface", show_default=True, help="fit method for --cross-validate")
@sweep_options("loss column of the grid")
@click.option("--batch-vars", type=click.Choice(["N,D", "D", "N"]), default=None,
              help="variables of the batch law refitted by --cross-validate")
@click.option("--cell-by", "cell_by", default=None, metavar="COL[,COL]",
              help="columns that, with N and D, define a cell (several architectures at the "
                   "same N)")
@click.option("--n-column", "n_column", default="N", show_default=True, metavar="COL",
              help="the grid column read as N")
@click.option("--extrapolation/--no-extrapolation", "extrap", default=True, show_default=True,
              help="with --cross-validate, also score the extrapolation folds")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def evaluate(grid, law, cross, method, loss_col, select, seq_len, batch_vars, cell_by,
             n_column, extrap, fmt):
    """Loss gap of a law's (LR, batch) prediction on every cell of a grid."""
    from advisor.errors import AdvisorError
    from advisor.fit.lr_batch import cross_validate, extrapolation_cv, extrapolation_summary
    from advisor.fit.gaps import lawset_gaps, summarize
    from advisor.runs.table import load_runs

    seq_len = parse_seq_len(seq_len)
    if cross and law:
        raise AdvisorError("give either --law (score a law set) or --cross-validate (score our "
                           "own fit on held-out cells), not both")
    if not cross and not law:
        raise AdvisorError("give --law NAME|FILE, or --cross-validate")
    lawset = None
    extrapolation_cells = None
    if law:
        from advisor.laws.lawset import load_lawset
        lawset = load_lawset(law)
        if not lawset.has("learning_rate"):
            raise AdvisorError(f"law set {lawset.name!r} has no learning_rate law to evaluate")
    table = load_runs(grid, loss=loss_col, seq_len=seq_len, select=select,
                      cell_by=cell_by or (), n_column=n_column)
    notes = list(table.notes)
    warnings = []
    extrapolation = None
    if cross:
        def progress(i, n):
            if fmt == "text":
                click.echo(f"\r  refitting with cell {i}/{n} held out", err=True,
                           nl=(i == n))
        bv = tuple(batch_vars.split(",")) if batch_vars else None
        cells = cross_validate(table, method, progress=progress, batch_vars=bv)
        label = f"our fit ({method}), each cell held out (interpolation)"
        folds = None
        extrapolation_cells = None
        if extrap:
            folds = extrapolation_cv(table, method, batch_vars=bv)
            extrapolation = extrapolation_summary(folds)
            extrapolation_cells = {k: f.get("cells", []) for k, f in folds.items()}
        notes += _refit_messages(cells, folds, "fit_notes")
        warnings += _refit_messages(cells, folds, "fit_warnings")
    else:
        if lawset.conventions.get("params") != "non_embedding":
            notes.append(f"law set {lawset.name} counts N as {lawset.conventions.get('params')}; "
                         "the grid's N is used as given (non-embedding in Step Law layout)")
        cells = lawset_gaps(table, lawset)
        warnings += _implausible_predictions(cells)
        # a file is named by its path (its internal name may be anyone's), a shipped set by name
        named = (lawset.name if lawset.path in (None, f"{lawset.name}.yaml")
                 else f"{lawset.name} (file {lawset.path})")
        fitted_on = (lawset.provenance or {}).get("grid_fingerprint")
        if fitted_on is not None and fitted_on == table.fingerprint():
            label = f"law set {named}, in-sample (fitted on this grid)"
        elif fitted_on is not None:
            label = f"law set {named}, out-of-sample (fitted on another grid)"
        else:
            label = (f"law set {named} (its provenance does not say whether it was "
                     "fitted on this grid)")
    summary = summarize(cells)
    if fmt == "json":
        click.echo(json_text({"grid": table.source, "evaluated": label,
                              "loss_column": table.loss_column, "summary": summary,
                              "cells": cells, "extrapolation": extrapolation,
                              "extrapolation_cells": extrapolation_cells,
                              "notes": notes, "warnings": warnings}, indent=1))
        return
    click.echo(f"{table.summary()}")
    click.echo(f"evaluated: {label}")
    click.echo(f"{'N':>9} {'D':>9} {'pred lr':>9} {'pred B':>9} {'near lr':>9} {'near B':>9} "
               f"{'best lr':>9} {'best B':>9} {'gap %':>7}")
    for c in cells:
        click.echo(row(*((c[k], "9.3g") for k in ("N", "D", "pred_lr", "pred_batch_tokens",
                                                  "nearest_lr", "nearest_batch_tokens",
                                                  "best_lr", "best_batch_tokens")),
                       (100 * c["gap"], "7.3f")))
    click.echo(f"gap over {summary['cells']} cells: mean {100 * summary['mean_gap']:.3f}%, "
               f"median {100 * summary['median_gap']:.3f}%, max {100 * summary['max_gap']:.3f}%")
    for fold, s in (extrapolation or {}).items():
        if "refused" in s:
            click.echo(f"extrapolation {fold:>10}: not scored ({s['refused']})")
        else:
            click.echo(f"extrapolation {fold:>10}: mean {100 * s['mean_gap']:.3f}%, median "
                       f"{100 * s['median_gap']:.3f}%, max {100 * s['max_gap']:.3f}% over "
                       f"{s['cells']} held-out cells")
    for n in notes:
        click.echo(f"note: {n}")
    for w in warnings:
        click.echo(f"warning: {w}")


def _implausible_predictions(cells) -> list[str]:
    """Warnings for cells where the law predicts an LR or batch outside what can train
    (advisor.laws.plausible.LAW_RANGES): the law is far outside its fitted range there."""
    from advisor.laws.plausible import LAW_RANGES

    out = []
    for key, quantity, what in (("pred_lr", "learning_rate", "LR"),
                                ("pred_batch_tokens", "batch_size", "batch (tokens)")):
        lo, hi = LAW_RANGES[quantity]
        bad = [c for c in cells if c.get(key) is not None
               and not (math.isfinite(c[key]) and lo <= c[key] <= hi)]
        if bad:
            c = bad[0]
            out.append(f"the law predicts a {what} outside [{lo:g}, {hi:g}] in {len(bad)} of "
                       f"{len(cells)} cells (e.g. {c[key]:.3g} at N = {c['N']:.3g}, D = "
                       f"{c['D']:.3g}): it is extrapolated far beyond its fitted range there, "
                       "and those cells' gaps say nothing about its skill")
    return out


def _refit_messages(cells, folds, key):
    """The refits' notes (or warnings), once each: the same message with other figures in
    its parentheses counts as one, said with the number of refits that gave it."""
    per_fit = [c.pop(key, []) for c in cells]                  # one refit per held-out cell
    for f in (folds or {}).values():
        got = [c.pop(key, []) for c in f.get("cells", [])]
        per_fit += got[:1]                                     # one refit per fold
    first, count = {}, {}
    for msgs in per_fit:
        for m in dict.fromkeys(msgs):
            k = m.split(" (")[0]
            first.setdefault(k, m)
            count[k] = count.get(k, 0) + 1
    return [f"{first[k]} [in {count[k]} of {len(per_fit)} refits]" for k in first]
