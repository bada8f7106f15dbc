"""``advisor fit RESULTS --out laws.yaml``: fit laws from a sweep and write a law set."""
from __future__ import annotations

import advisor.cli.commands._single_blas  # noqa: F401  (before numpy: one BLAS thread)

import time

import click

from advisor.cli.commands._options import sweep_options
from advisor.laws.lawset import CONVENTIONS
from advisor.common.numbers import parse_seq_len


@click.command("fit")
@click.argument("results")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="law-set YAML file to write")
@click.option("--name", default=None, help="law-set name (default: fitted-<results stem>)")
@click.option("--method", type=click.Choice(["auto", "surface", "optima", "best-point"]),
              default="auto", show_default=True,
              help="how the LR and batch laws are fitted (auto: surface, or the per-cell "
                   "optima when the surface's LR law is implausible, with a note)")
@sweep_options()
@click.option("--bootstrap", "n_bootstrap", default=50, show_default=True,
              help="bootstrap resamples for the per-cell and loss-law intervals (0: none)")
@click.option("--cv/--no-cv", default=False, show_default=True,
              help="also record cross-validated gaps in the provenance: leave-one-cell-out "
                   "(interpolation) and extrapolation (largest/smallest N and D held out)")
@click.option("--schedule", default=None, help="the LR schedule the sweep used (recorded)")
@click.option("--lr-convention", type=click.Choice(list(CONVENTIONS["learning_rate"])), default=None,
              help="what the sweep's lr column means (default: what the runs record -- a "
                   "results store always does -- else peak)")
@click.option("--batch-vars", type=click.Choice(["N,D", "D", "N"]), default=None,
              help="variables of the batch law: B*(N, D), B*(D) or B*(N) (default: D for "
                   "surface and best-point, N,D for optima: the forms that extrapolate best, "
                   "docs/fitting.md)")
@click.option("--lr-vars", type=click.Choice(["N,D", "D"]), default=None,
              help="variables of the LR law (default: D for a muP base LR, whose width "
                   "dependence muP's rules give, with the N exponent measured and reported "
                   "as a transfer check; N,D otherwise)")
@click.option("--cell-by", "cell_by", default=None, metavar="COL[,COL]",
              help="columns that, with N and D, define a cell (several architectures at the "
                   "same N, e.g. h,numl or nume,topk)")
@click.option("--n-column", "n_column", default="N", show_default=True, metavar="COL",
              help="the column the laws read as N (e.g. Na, active parameters)")
@click.option("--max-nfev", "max_nfev", default=500, show_default=True,
              help="function evaluations allowed to each surface fit (a fit that runs out "
                   "is reported as not converged)")
@click.option("--seed", default=0, show_default=True)
def fit(results, out, name, method, loss_col, select, seq_len, n_bootstrap, cv, schedule,
        lr_convention, batch_vars, cell_by, n_column, max_nfev, seed, lr_vars=None):
    """Fit LR, batch, loss (and weight-decay, critical-batch) laws from RESULTS.

    RESULTS is a results store directory or a CSV in the Step Law layout (bs in sequences
    of --seq-len tokens, or a bs_tokens column; N non-embedding parameters; D tokens).
    """
    from advisor.fit.pipeline import FitRequest, fit_lawset
    from advisor.laws.lawset import dump_lawset, load_lawset_file
    from advisor.common.outputs import check_output_file

    req = FitRequest(results=results, out=out, name=name, method=method, loss=loss_col,
                     seq_len=parse_seq_len(seq_len), select=select, n_bootstrap=n_bootstrap,
                     cv=cv, schedule=schedule, lr_convention=lr_convention,
                     batch_vars=batch_vars, lr_vars=lr_vars, cell_by=cell_by,
                     n_column=n_column, max_nfev=max_nfev, seed=seed)
    check_output_file(out, "law set")         # before the fit, not after it
    t0 = time.perf_counter()
    table, conventions = req.load()
    click.echo(table.summary(), err=True)
    for note in table.notes:
        click.echo(f"note: {note}", err=True)

    def progress(msg):
        click.echo(f"  fitting {msg} ...", err=True)

    result, d = fit_lawset(req, (table, conventions), progress)
    dump_lawset(d, out)
    load_lawset_file(out)  # what we wrote must load as any law set does
    elapsed = time.perf_counter() - t0
    _print_summary(result, d, out, elapsed)


def _print_summary(result, d, out, elapsed):
    from advisor.fit.powerlaw import PowerLaw

    laws = d["laws"]

    def pl(law):
        return PowerLaw.from_law(law).describe()

    refused = d["provenance"].get("refused_laws", {})
    if "learning_rate" in laws:
        click.echo(f"learning rate: {pl(laws['learning_rate'])}")
    elif "learning_rate" in refused:
        click.echo(f"learning rate: refused, not written ("
                   f"{refused['learning_rate']['refused'].split(' (')[0]})")
    if "batch_size" in laws:
        click.echo(f"batch size   : {pl(laws['batch_size'])} tokens")
    if "loss" in laws:
        lo = laws["loss"]
        click.echo(f"loss         : {lo['E']:.4g} + {lo['A']:.4g}/N^{lo['alpha']:.3f} + "
                   f"{lo['B']:.4g}/D^{lo['beta']:.3f}")
    elif "loss" in d["provenance"].get("refused_laws", {}):
        click.echo(f"loss         : refused, not written ("
                   f"{d['provenance']['refused_laws']['loss']['refused'].split(' (')[0]})")
    if "weight_decay" in laws:
        w = laws["weight_decay"]
        click.echo(f"weight decay : tau* = {w['coefficient']:.4g} TPP^{w['exponents']['TPP']:+.3f}")
    if "critical_batch_size" in laws:
        click.echo(f"critical batch: {pl(laws['critical_batch_size'])} tokens")
    mup = d.get("mup") or {}
    if mup:
        click.echo(f"muP          : base width {mup.get('base_width', 'not recorded')}, "
                   f"weight-decay width rule {mup.get('wd_rule', 'not stated')}")
    q = d["provenance"]["fit_quality"]
    s = q["in_sample_gap"]
    click.echo(f"in-sample gap: mean {s['mean_gap_pct']:.3f}%, median {s['median_gap_pct']:.3f}%, "
               f"max {s['max_gap_pct']:.3f}% over {s['cells']} cells")
    if q.get("cross_validated_gap"):
        s = q["cross_validated_gap"]
        click.echo(f"held-out gap : mean {s['mean_gap_pct']:.3f}%, median "
                   f"{s['median_gap_pct']:.3f}%, max {s['max_gap_pct']:.3f}% (each cell held "
                   "out: interpolation)")
    for fold, s in (q.get("extrapolation_gap") or {}).items():
        if "refused" in s:
            click.echo(f"extrapolation {fold:>10}: not scored ({s['refused']})")
        else:
            click.echo(f"extrapolation {fold:>10}: mean {s['mean_gap_pct']:.3f}%, max "
                       f"{s['max_gap_pct']:.3f}% over {s['cells']} held-out cells")
    tc = result.transfer
    if tc is not None:
        click.echo("transfer check: " + (tc.get("note") or tc["refused"]))
    for note in result.notes:
        if tc is None or note not in (tc.get("note"), tc.get("refused")):
            click.echo(f"note: {note}")
    for w in result.warnings:
        click.echo(f"warning: {w}")
    click.echo(f"wrote {out} ({elapsed:.1f} s)")
