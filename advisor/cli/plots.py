"""Every figure the package draws: one module, the only one that imports matplotlib (Agg).

The commands (``advisor plot``, ``advisor schedule fit|predict``, ``advisor results --plot``),
the transfer summaries (``calibration/analyze``) and the benchmarks' figures (``bench/``)
hand it their data; each function writes
one PNG atomically (:func:`save_figure`). Units as in the data: LRs are
peak LRs (base-width LRs for muP sweeps), losses in nats per token (bytes for the proxy's
byte-level corpus), batches in tokens, D in tokens.
"""
from __future__ import annotations

import math

import numpy as np

from advisor.common.outputs import atomic_output


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path, dpi: int, what: str = "plot") -> None:
    """Write a matplotlib figure as PNG atomically (``advisor.common.outputs.atomic_output``;
    ``dpi``: dots per inch), then close it, written or not."""
    plt = _pyplot()
    try:
        with atomic_output(path, what) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)


def _predict(ls, q, N, D, **extra):
    """Law set ``ls``'s ``q`` at N, D (and the cell's other variables ``extra``: M, W);
    a batch in tokens."""
    v = ls.predict(q, N=N, D=D, **extra)
    return ls.batch_tokens(v) if q == "batch_size" else v


def loss_vs_lr(table, optima, ours, path):
    """``advisor plot``'s loss_vs_lr.png: per cell, loss against LR at the batches nearest
    the optimum, the cell optimum with its 95% interval and the law's LR."""
    plt = _pyplot()

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
        ax.axvline(_predict(ours, "learning_rate", N, D, **table.cell_variables(c)), color="C3",
                   ls="--", lw=1)
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
    save_figure(fig, path, dpi=110)
    return path


def laws(table, optima, ours, other, path):
    """``advisor plot``'s laws.png: per-cell optimal LR and batch against D, the fitted laws
    with their 95% bands, and ``other`` (a shipped law set) beside them."""
    plt = _pyplot()

    qs = ["learning_rate"] + (["batch_size"] if ours.has("batch_size") else [])
    fig, axs = plt.subplots(1, len(qs), figsize=(6 * len(qs), 4.2), squeeze=False)
    Ns = sorted({c[0] for c in table.cells})
    Dgrid = np.geomspace(min(c[1] for c in table.cells), max(c[1] for c in table.cells), 50)
    for j, q in enumerate(qs):
        ax = axs[0][j]
        for k, N in enumerate(Ns):
            col = f"C{k}"
            extra = table.cell_variables(next(c for c, cell in enumerate(table.cells)
                                              if cell[0] == N))     # the model at this N
            pts = [o for o in optima if o.N == N]
            y = np.array([o.optimum.get(q, o.best_run.get(q)) for o in pts])
            x = np.array([o.D for o in pts])
            err = np.array([[y[i] - o.interval[q][0], o.interval[q][1] - y[i]]
                            if q in o.interval else [0, 0] for i, o in enumerate(pts)]).T
            ax.errorbar(x, y, yerr=err, fmt="o", color=col, ms=4, capsize=2,
                        label=f"N={N / 1e6:.0f}M")
            pred = np.array([_predict(ours, q, N, D, **extra) for D in Dgrid])
            ax.plot(Dgrid, pred, color=col, lw=1.2)
            band = [ours.interval(q, N=N, D=D, **extra) for D in Dgrid]
            if all(b is not None for b in band):
                ax.fill_between(Dgrid, [b[0] for b in band], [b[1] for b in band], color=col,
                                alpha=0.12)
            if other is not None and other.has(q):
                try:
                    ax.plot(Dgrid, [_predict(other, q, N, D, **extra) for D in Dgrid], color=col,
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
    save_figure(fig, path, dpi=110)
    return path


def loss_law(optima, ours, path):
    """``advisor plot``'s loss_law.png: each cell's best loss against D and the loss law."""
    plt = _pyplot()

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
    save_figure(fig, path, dpi=110)
    return path


def schedule_prediction(steps, loss, lr, path, title, band=None):
    """``advisor schedule predict``: the predicted loss curve and the LR against step;
    ``band`` (lo, hi arrays): the interval, shaded."""
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(steps, loss, color="C0", label="predicted loss")
    if band is not None:
        ax.fill_between(steps, band[0], band[1], color="C0", alpha=0.15, lw=0,
                        label="interval")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats)", color="C0")
    lo, hi = float(loss[-1]), float(loss[len(loss) // 10])
    if band is not None:
        lo = min(lo, float(np.min(band[0][len(loss) // 10:])))
    ax.set_ylim(lo - 0.1 * (hi - lo), hi + 0.2 * (hi - lo))
    ax2 = ax.twinx()
    ax2.plot(steps, lr, color="C1", alpha=0.7, label="LR")
    ax2.set_ylabel("learning rate", color="C1")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def schedule_fit(curves, preds, path, title):
    """``advisor schedule fit``: each measured curve and the law's prediction (dashed)."""
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (c, p) in enumerate(zip(curves, preds)):
        ax.plot(c.steps, c.loss, color=f"C{i}", lw=1, label=c.name)
        ax.plot(c.steps, p, color=f"C{i}", lw=1, ls="--")
    ys = [c.loss[len(c.loss) // 10] for c in curves] + [c.loss.min() for c in curves]
    ax.set_ylim(min(ys) - 0.02, max(ys) + 0.02)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats); dashed: law")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def lr_sweeps(runs, path, title: str = "") -> None:
    """Held-out loss against LR. Top row: one panel per arm (parameterisation), one line per
    width (does the optimum stay put?). Bottom row: one panel per width, one line per arm
    (which parameterisation is better there?)."""
    from advisor.runs.summary import lr_curves
    from advisor.specs.grouping import arm_labels

    curves = lr_curves(runs)
    if not any(math.isfinite(p[1]) for widths in curves.values() for pts in widths.values()
               for p in pts):
        from advisor.errors import AdvisorError
        raise AdvisorError("nothing to plot: no run in the store has a finite held-out loss")
    plt = _pyplot()
    labels = arm_labels(curves)
    keys = sorted(curves, key=labels.get)
    widths = sorted({w for k in keys for w in curves[k]})
    ncol = max(len(keys), len(widths))
    fig, axes = plt.subplots(2, ncol, figsize=(4.2 * ncol, 7.6), squeeze=False, sharey=True)
    finite_all = [p[1] for k in keys for pts in curves[k].values() for p in pts
                  if math.isfinite(p[1])]
    cmap = plt.get_cmap("viridis")
    arm_colors = plt.get_cmap("tab10")

    def draw(ax, pts, color, label):
        lrs = [p[0] for p in pts if math.isfinite(p[1])]
        ls = [p[1] for p in pts if math.isfinite(p[1])]
        ax.plot(lrs, ls, "o-", color=color, label=label, ms=4)
        if ls:
            j = int(np.argmin(ls))
            ax.plot([lrs[j]], [ls[j]], "*", color=color, ms=13, mec="k")

    for ax, key in zip(axes[0], keys):
        for i, w in enumerate(widths):
            if w in curves[key]:
                draw(ax, curves[key][w], cmap(i / max(1, len(widths) - 1)), f"width {w}")
        ax.set_title(labels[key], fontsize=10)
    for ax, w in zip(axes[1], widths):
        for i, key in enumerate(keys):
            if w in curves[key]:
                draw(ax, curves[key][w], arm_colors(i), labels[key])
        ax.set_title(f"width {w}", fontsize=10)
    for row in axes:
        for ax in row:
            if not ax.lines:
                ax.set_visible(False)
                continue
            ax.set_xscale("log", base=2)
            ax.set_xlabel("peak LR (base-width units)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        row[0].set_ylabel("final held-out loss (nats/token)")
    if finite_all:
        lo = min(finite_all)
        axes[0][0].set_ylim(lo - 0.05, min(max(finite_all), lo + 1.2) + 0.05)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def lr_panels(panels, path, *, span: float, xlabel: str = "base LR") -> None:
    """Write a PNG of loss-vs-LR panels, atomically.

    Args:
        panels: list of (title, lines); each line is (label, curve, best_lr, best_loss) with
            curve a list of (base LR, final held-out loss in nats/byte); non-finite losses
            (diverged runs) leave gaps, and the best point is starred.
        path: the PNG to write.
        span: the y axis shows at most this many nats above the lowest loss.
        xlabel: what the x axis is (the curves' first coordinate; log base 2).
    """
    plt = _pyplot()

    finite = [y for _, lines in panels for _, curve, _, _ in lines for _, y in curve
              if math.isfinite(y)]
    lo, hi = min(finite), min(max(finite), min(finite) + span)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False,
                             sharey=True)
    for ax, (title, lines) in zip(axes[0], panels):
        for label, curve, best_lr, best_loss in lines:
            xs = [p[0] for p in curve]
            ys = [p[1] if math.isfinite(p[1]) else np.nan for p in curve]
            line, = ax.plot(xs, ys, "o-", ms=3, label=label)
            if math.isfinite(best_lr):
                ax.plot([best_lr], [best_loss], "*", ms=11, color=line.get_color())
        ax.set_xscale("log", base=2)
        ax.set_ylim(lo - 0.02, hi)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
    axes[0][0].set_ylabel("final held-out loss (nats/byte)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def coord_check_width(cc, path) -> None:
    """A width coordinate check (``calibration.spectral.coordcheck.CoordCheck``): each
    layer's activation and change since step 0 against width, one panel per step."""
    plt = _pyplot()

    layers = list(cc.delta)
    fig, axes = plt.subplots(2, cc.steps - 1, figsize=(3.2 * (cc.steps - 1), 6),
                             squeeze=False)
    for j, t in enumerate(range(1, cc.steps)):
        for i, (kind, table) in enumerate((("activation", cc.act), ("change since step 0", cc.delta))):
            ax = axes[i][j]
            for layer in layers:
                ax.plot(cc.widths, table[layer][:, t], "o-", ms=3, label=layer)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{cc.parameterization}: {kind}, step {t}", fontsize=9)
            ax.set_xlabel("width")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def coord_check_depth(cc, path) -> None:
    """A depth coordinate check: the residual stream's size and change after each block
    against block index / depth, one line per depth."""
    plt = _pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, (kind, table) in zip(axes, (("activation", cc.act),
                                        ("change since step 0", cc.delta))):
        for L in cc.depths:
            rel = (np.arange(1, L + 1)) / L
            ax.plot(rel, table[L][:, -1], "o-", ms=3, label=f"depth {L}")
        ax.set_yscale("log")
        ax.set_xlabel("block index / depth")
        ax.set_title(f"alpha {cc.alpha:g}: residual stream {kind}, step {cc.steps - 1}",
                     fontsize=9)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def transfer_gaps(points: dict, rows: list, path, *, series_label: str,
                  xlabel: str, ylabel: str, gap_label, span: float, pad: float,
                  legend_size: int = 7) -> None:
    """Write a PNG of the held-out transfer check: the loss of every LR run at the held-out
    width, each LR choice starred (a dashed line where it diverged), atomically.

    Args:
        points: {LR: final held-out loss} of the runs drawn as the grey line.
        rows: the choices, after the grid-best row: dicts with ``choice``, ``lr``, ``loss``.
        gap_label: row -> the gap as the legend states it (e.g. "+0.75%").
        span, pad: the y axis shows at most ``span`` above the lowest loss, ``pad`` either side.
    """
    plt = _pyplot()
    lrs = sorted(points)
    ys = [points[x] if math.isfinite(points[x]) else float("nan") for x in lrs]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(lrs, ys, "o-", color="0.3", label=series_label)
    for r, c in zip(rows, ("C0", "C1", "C2", "C3", "C4")):
        if math.isfinite(r["loss"]):
            ax.plot([r["lr"]], [r["loss"]], "*", ms=13, color=c,
                    label=f"{r['choice']}: {gap_label(r)}")
        else:
            ax.axvline(r["lr"], color=c, ls="--", label=f"{r['choice']}: diverged")
    ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    finite = [y for y in ys if math.isfinite(y)]
    if finite:
        ax.set_ylim(min(finite) - pad, min(max(finite), min(finite) + span) + pad)
    ax.legend(fontsize=legend_size)
    ax.set_title("Held-out transfer: loss gap of each LR choice", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, 120)
    plt.close(fig)


def stability_sweep(summary: dict, path) -> None:
    """``advisor results DIR --by stability``'s figure: loss vs LR, one panel per arm, one
    line per width, unstable points crossed (``summary``:
    ``calibration.analyze.stability_summary.summarise``; LRs peak, losses nats per token)."""
    plt = _pyplot()

    arms = list(summary["arms"])
    ncols = min(3, len(arms))
    nrows = -(-len(arms) // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False,
                             sharey=True)
    axes = [[ax for row in grid for ax in row]]
    for ax in axes[0][len(arms):]:
        ax.set_visible(False)
    cf = summary["context_free_loss"]
    all_widths = sorted({r["width"] for a in summary["arms"].values() for r in a["rows"]})
    for ax, arm in zip(axes[0], arms):
        for r in summary["arms"][arm]["rows"]:
            xs = [lr for lr, _ in r["curve"]]
            ys = [y if math.isfinite(y) else float("nan") for _, y in r["curve"]]
            line, = ax.plot(xs, ys, "o-", ms=3, label=f"width {r['width']}",
                            color=f"C{all_widths.index(r['width'])}")
            bad = [(lr, y if math.isfinite(y) else cf + 0.3) for lr, y in r["curve"]
                   if lr in r["unstable_lrs"]]
            if bad:
                ax.plot([b[0] for b in bad], [b[1] for b in bad], "x", ms=8, mew=2,
                        color=line.get_color())
        ax.axhline(cf, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log", base=2)
        ax.set_title(arm, fontsize=9)
        ax.set_xlabel("peak LR")
        ax.set_ylim(None, cf + 0.5)
    for row in grid:
        row[0].set_ylabel("final held-out loss (nats/byte)")
    for ax in axes[0][:len(arms)]:
        ax.legend(fontsize=6)
    fig.suptitle("x: unstable (diverged, or lost over half the context gain; dotted: unigram "
                 "loss; diverged runs drawn above it)", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def inflight_run(result: dict, plan, model_lrs: dict, path) -> None:
    """``advisor run``'s figure: the run's curve, the law fitted so far and its forecasts
    with their bands (``model_lrs``: {label: (steps, predicted loss, lo, hi)}), spikes and
    divergence shaded, the LR (planned and logged) on a second axis. Steps are optimizer
    steps, losses nats per token."""
    plt = _pyplot()

    f = result["fitted"]
    st, y, law = np.array(f["steps"]), np.array(f["loss"]), np.array(f["law"])
    fig, ax = plt.subplots(figsize=(8, 4.6))
    ax.plot(st, y, "o", color="k", ms=1.5, label="logged loss")
    ax.plot(st, law, color="C0", lw=1.0, label="law fitted so far")
    for i, (label, (s, p, lo, hi)) in enumerate(model_lrs.items()):
        ax.plot(s, p, color=f"C{i + 1}", lw=1.2, ls="--", label=label)
        ax.fill_between(s, lo, hi, color=f"C{i + 1}", alpha=0.2, lw=0)
    for fd in result["health"]["findings"]:
        if fd["kind"] in ("spike", "divergence"):
            ax.axvspan(fd["start_step"], fd["last_step"] + 1, color="red", alpha=0.25)
    settle = y[len(y) // 10:]
    lo_y = min(float(settle.min()), *(float(v[2].min()) for v in model_lrs.values())) \
        if model_lrs else float(settle.min())
    hi_y = float(np.percentile(settle, 99))
    pad = 0.1 * (hi_y - lo_y)
    ax.set_ylim(lo_y - pad, hi_y + pad)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (nats)")
    ax2 = ax.twinx()
    ax2.plot(np.arange(len(plan.curve.lrs)), plan.curve.lrs, color="C2", lw=0.8, alpha=0.5)
    if plan.planned_lrs is not None:
        ax2.plot(np.arange(len(plan.planned_lrs)), plan.planned_lrs, color="C2", lw=0.8,
                 ls=":", alpha=0.5)
    ax2.set_ylabel("learning rate (green; dotted: plan)")
    ax2.set_ylim(0, None)
    ax.set_zorder(ax2.get_zorder() + 1)         # the loss in front of the LR
    ax.patch.set_visible(False)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(f"{result['model']['law']}; step {result['now']}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def log_partition_trajectories(panels, path, *, near_zero: float = 1.0) -> None:
    """The log-partition over training with and without z-loss
    (``calibration.analyze.zloss_trajectory``): ``panels`` [{title, series: [{label, steps,
    values (seed-mean log Z, nats), seeds: [(steps, values), ...]}]}], one line per series,
    its seeds thin; 0 and the +-``near_zero`` band marked."""
    plt = _pyplot()
    ncol = min(3, len(panels))
    nrow = (len(panels) + ncol - 1) // ncol
    fig, axs = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.3 * nrow), squeeze=False,
                            sharey=True)
    colors = plt.get_cmap("viridis")
    for k, panel in enumerate(panels):
        ax = axs[k // ncol][k % ncol]
        n = len(panel["series"])
        for i, s in enumerate(panel["series"]):
            c = colors(i / max(1, n - 1) * 0.9)
            for st, v in s.get("seeds", []):
                ax.plot(st, v, "-", color=c, lw=0.6, alpha=0.45)
            ax.plot(s["steps"], s["values"], "o-", color=c, ms=2.5, lw=1.4, label=s["label"])
        ax.axhspan(-near_zero, near_zero, color="0.85", zorder=0)
        ax.axhline(0.0, color="k", lw=0.7)
        ax.set_title(panel["title"], fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if k % ncol == 0:
            ax.set_ylabel("mean log Z (nats)")
        ax.legend(fontsize=7)
    for k in range(len(panels), nrow * ncol):
        axs[k // ncol][k % ncol].set_visible(False)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def batch_ridge(ridge: dict, path) -> None:
    """``bench.conditional_eval --plot``: the best LR at a batch off the optimum (octaves of
    LR against octaves of batch from B*): the Step Law grid's per-batch optima, the surface's
    and the shipped ridge, and the linear and square-root rules."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    u = [p[0] for p in ridge["grid_pairs"]]
    g = [p[1] for p in ridge["grid_pairs"]]
    ax.scatter(u, g, s=10, c="0.6",
               label="grid: best LR per batch vs the cell's best run (17 cells)")
    k = ridge["knots_oct"]
    ax.plot(k, ridge["surface_lr_offset_oct"], "C0--", label="surface ridge (median of cells)")
    ax.plot(k, ridge["lr_offset_oct"], "C3-", lw=2, label="shipped ridge")
    for slope, name, style in ((1.0, "linear", ":"), (0.5, "square root", "-.")):
        ax.plot([-3, 0], [-3 * slope, 0], "k" + style, lw=0.8, label=f"{name} rule")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("log2(B / B*)  (batch, octaves from the optimum)")
    ax.set_ylabel("log2(lr*(B) / lr*)")
    ax.set_title("Step Law grid: the best LR at a batch that is not the optimum")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def stacked_throughput(rows: list, device_name: str, path) -> None:
    """``bench.bench_stacked --plot``: model-tokens/s of an LR sweep run one at a time and
    stacked, per width (log scale), each bar pair labelled with the speed-up."""
    plt = _pyplot()
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(6.5, 4))
    one = [r["single"]["model_tokens_per_s"] for r in rows]
    st = [r["stacked"]["model_tokens_per_s"] for r in rows]
    ax.bar(x - 0.2, one, 0.4, label="one run at a time")
    ax.bar(x + 0.2, st, 0.4, label="stacked")
    for i, r in enumerate(rows):
        ax.text(i + 0.2, st[i], f"x{r['speedup']:.1f}", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(x, [str(r["width"]) for r in rows])
    ax.set_xlabel("width")
    ax.set_ylabel("model-tokens/s (all members)")
    ax.set_yscale("log")
    ax.set_title(f"LR sweep of {rows[0]['members']} runs: stacked vs one at a time\n{device_name}",
                 fontsize=10)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def schedule_overlay(series: list, path, title: str) -> None:
    """``bench.bench_schedule_proxy``: measured train loss (nats) against step for each
    schedule, the law's prediction dashed, and each schedule's LR faintly on a second axis.
    ``series``: (label, steps, loss, predicted loss, per-step LRs) per schedule."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    ax2 = ax.twinx()
    for i, (label, steps, loss, pred, lrs) in enumerate(series):
        ax.plot(steps, loss, color=f"C{i}", lw=1, label=label)
        ax.plot(steps, pred, color=f"C{i}", lw=1, ls="--")
        ax2.plot(np.arange(len(lrs)), lrs, color=f"C{i}", lw=0.6, alpha=0.35)
    lo = min(float(np.min(s[2])) for s in series)
    ax.set_ylim(lo - 0.05, lo + 0.6)
    ax.set_xlabel("step")
    ax.set_ylabel("train loss (nats); dashed: law")
    ax2.set_ylabel("learning rate")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
