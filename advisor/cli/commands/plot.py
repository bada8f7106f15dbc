"""``advisor plot RESULTS --out DIR``: PNG figures of a sweep and the laws fitted to it.

- ``loss_vs_lr.png``: per cell, loss against LR at the batch sizes nearest the optimum,
  with the cell's smooth optimum and its 95% interval and the law's prediction;
- ``laws.png``: per-cell optimal LR and batch (with intervals) against D, the fitted laws
  with their 95% bands, and a shipped law set beside them (``--compare``);
- ``loss_law.png``: each cell's best loss against D with the fitted loss law.
matplotlib is imported here only (Agg backend).
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
    import matplotlib
    matplotlib.use("Agg")
    from advisor.fit.pipeline import default_name, fit_sweep, lawset_dict
    from advisor.fit.optima import all_optima
    from advisor.laws.lawset import LawSet, load_lawset
    from advisor.runs.table import load_runs

    other = None if compare in ("none", "", None) else load_lawset(compare)   # before the fit
    table = load_runs(results, loss=loss_col, seq_len=seq_len, select=select)
    if laws_path:
        ours = load_lawset(laws_path)
        optima = all_optima(table, n_bootstrap=200)
    else:
        click.echo("fitting laws (give --laws FILE to draw a fitted set) ...", err=True)
        fit = fit_sweep(table, n_bootstrap=200)
        ours = LawSet.from_dict(lawset_dict(fit, name=default_name(results)))
        optima = fit.optima
    paths = [_loss_vs_lr(table, optima, ours, outdir / "loss_vs_lr.png"),
             _laws(table, optima, ours, other, outdir / "laws.png")]
    if ours.has("loss"):
        paths.append(_loss_law(optima, ours, outdir / "loss_law.png"))
    for p in paths:
        click.echo(f"wrote {p}")


def _save(fig, path):
    from advisor.common.outputs import save_figure

    save_figure(fig, path, dpi=110)


def _predict(ls, q, N, D):
    v = ls.predict(q, N=N, D=D)
    return ls.batch_tokens(v) if q == "batch_size" else v


def _loss_vs_lr(table, optima, ours, path):
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(table.cells)
    cols = min(5, n)
    rows = (n + cols - 1) // cols
    fig, axs = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False)
    idx = table.cell_index
    for c, (N, D) in enumerate(table.cells):
        ax = axs[c // cols][c % cols]
        o = optima[c]
        m = idx == c
        fin = m & table.finished
        sizes = np.unique(table.batch_tokens[fin])
        b_opt = o.optimum.get("batch_size", o.best_run["batch_size"])
        near = sizes[np.argsort(np.abs(np.log(sizes) - np.log(b_opt)))[:3]]
        best = table.loss[fin].min()
        for b in sorted(near):
            s = fin & np.isclose(table.batch_tokens, b)
            order = np.argsort(table.lr[s])
            ax.plot(table.lr[s][order], 100 * (table.loss[s][order] / best - 1), "o-", ms=3,
                    label=f"B={b / 1e6:.2g}M")
            dv = m & table.diverged & np.isclose(table.batch_tokens, b)
            if dv.any():
                ax.plot(table.lr[dv], np.full(dv.sum(), 2.9), "x", color="k", ms=4)
        lr_o = o.optimum["learning_rate"]
        ax.axvline(lr_o, color="k", lw=1)
        if "learning_rate" in o.interval:
            lo, hi = o.interval["learning_rate"]
            ax.axvspan(lo, hi, color="k", alpha=0.1)
        ax.axvline(_predict(ours, "learning_rate", N, D), color="C3", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_ylim(-0.1, 3)
        ax.set_title(f"N={N / 1e6:.0f}M D={D / 1e9:.3g}B", fontsize=8)
        ax.tick_params(labelsize=7)
        if c == 0:
            ax.legend(fontsize=6)
            ax.set_ylabel("loss above cell best (%)", fontsize=7)
    for c in range(n, rows * cols):
        axs[c // cols][c % cols].axis("off")
    fig.suptitle("loss vs peak LR (black: cell optimum and 95% interval; red dashed: law; "
                 "x: diverged)", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return path


def _laws(table, optima, ours, other, path):
    import matplotlib.pyplot as plt
    import numpy as np

    qs = ["learning_rate"] + (["batch_size"] if ours.has("batch_size") else [])
    fig, axs = plt.subplots(1, len(qs), figsize=(6 * len(qs), 4.2), squeeze=False)
    Ns = sorted({c[0] for c in table.cells})
    Dgrid = np.geomspace(min(c[1] for c in table.cells), max(c[1] for c in table.cells), 50)
    for j, q in enumerate(qs):
        ax = axs[0][j]
        for k, N in enumerate(Ns):
            col = f"C{k}"
            pts = [o for o in optima if o.N == N]
            y = np.array([o.optimum.get(q, o.best_run.get(q)) for o in pts])
            x = np.array([o.D for o in pts])
            err = np.array([[y[i] - o.interval[q][0], o.interval[q][1] - y[i]]
                            if q in o.interval else [0, 0] for i, o in enumerate(pts)]).T
            ax.errorbar(x, y, yerr=err, fmt="o", color=col, ms=4, capsize=2,
                        label=f"N={N / 1e6:.0f}M")
            pred = np.array([_predict(ours, q, N, D) for D in Dgrid])
            ax.plot(Dgrid, pred, color=col, lw=1.2)
            band = [ours.interval(q, N=N, D=D) for D in Dgrid]
            if all(b is not None for b in band):
                ax.fill_between(Dgrid, [b[0] for b in band], [b[1] for b in band], color=col,
                                alpha=0.12)
            if other is not None and other.has(q):
                try:
                    ax.plot(Dgrid, [_predict(other, q, N, D) for D in Dgrid], color=col,
                            ls=":", lw=1)
                except Exception:  # a law needing variables this grid lacks: skip it
                    pass
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("D (tokens)")
        ax.set_ylabel("peak LR" if q == "learning_rate" else "batch (tokens)")
        ax.set_title(f"{q}: points = cell optima (95%), solid = {ours.name}"
                     + (f", dotted = {other.name}" if other is not None else ""), fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    return path


def _loss_law(optima, ours, path):
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 4.2))
    Ns = sorted({o.N for o in optima})
    Ds = [o.D for o in optima]
    Dgrid = np.geomspace(min(Ds) / 1.5, max(Ds) * 1.5, 60)
    for k, N in enumerate(Ns):
        pts = [o for o in optima if o.N == N]
        ax.plot([o.D for o in pts], [o.best_loss for o in pts], "o", color=f"C{k}",
                label=f"N={N / 1e6:.0f}M")
        ax.plot(Dgrid, [ours.predict("loss", N=N, D=D) for D in Dgrid], color=f"C{k}", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("D (tokens)")
    ax.set_ylabel("best loss in cell (nats/token)")
    law = ours.laws["loss"]
    ax.set_title(f"L = {law['E']:.3g} + {law['A']:.3g}/N^{law['alpha']:.3f} + "
                 f"{law['B']:.3g}/D^{law['beta']:.3f}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    return path
