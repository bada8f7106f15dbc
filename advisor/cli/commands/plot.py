"""``advisor plot RESULTS --out DIR``: PNG figures of a sweep and the laws fitted to it.

- ``loss_vs_lr.png``: per cell, loss against LR at the batch sizes nearest the optimum,
  with the cell's smooth optimum and its 95% interval and the law's prediction;
- ``laws.png``: per-cell optimal LR and batch (with intervals) against D, the fitted laws
  with their 95% bands, and a shipped law set beside them (``--compare``);
- ``loss_law.png``: each cell's best loss against D with the fitted loss law.
The figures are drawn by ``advisor.cli.plots``.
"""
from __future__ import annotations

import advisor.cli.commands._single_blas  # noqa: F401  (before numpy: one BLAS thread)

from pathlib import Path

import click

from advisor.cli.commands._options import sweep_options
from advisor.common.numbers import parse_seq_len


@click.command("plot")
@click.argument("results")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="folder for the PNG files")
@click.option("--laws", "laws_path", default=None,
              help="law set to draw (default: fit one from RESULTS now)")
@click.option("--compare", default="step-law", show_default=True,
              help="shipped law set (or file) drawn beside ours; 'none' for none")
@sweep_options()
def plot(results, out, laws_path, compare, loss_col, select, seq_len):
    """Draw the sweep, its per-cell optima and the fitted laws as PNG files in OUT."""
    from advisor.cli.deps import require
    from advisor.common.outputs import check_output_dir

    require("plot", "matplotlib")
    seq_len = parse_seq_len(seq_len)
    check_output_dir(out, "plot folder")
    outdir = Path(out)
    from advisor.cli import plots
    from advisor.fit.gaps import check_grid_variables
    from advisor.fit.pipeline import default_name, fit_sweep, lawset_dict
    from advisor.fit.optima import all_optima
    from advisor.laws.lawset import LawSet, load_lawset
    from advisor.runs.table import load_runs

    other = None if compare in ("none", "", None) else load_lawset(compare)   # before the fit
    table = load_runs(results, loss=loss_col, seq_len=seq_len, select=select)
    if laws_path:
        ours = load_lawset(laws_path)
        check_grid_variables(ours, table)
        optima = all_optima(table, n_bootstrap=200)
    else:
        click.echo("fitting laws (give --laws FILE to draw a fitted set) ...", err=True)
        fit = fit_sweep(table, n_bootstrap=200)
        ours = LawSet.from_dict(lawset_dict(fit, name=default_name(results)))
        optima = fit.optima
    paths = [plots.loss_vs_lr(table, optima, ours, outdir / "loss_vs_lr.png"),
             plots.laws(table, optima, ours, other, outdir / "laws.png")]
    if ours.has("loss"):
        paths.append(plots.loss_law(optima, ours, outdir / "loss_law.png"))
    for p in paths:
        click.echo(f"wrote {p}")


