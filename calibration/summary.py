"""Summaries of a results store: best LR per width, how far it moves, and the LR-sweep plot.

Torch-free (numpy; matplotlib imported only to plot). Units: LRs are peak LRs of the
base-width model; losses are final held-out losses in nats per token.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

# Settings that define one LR sweep (everything except lr and seed).
SWEEP_KEYS = ("parameterization", "depth", "batch_size", "seq_len", "tokens", "schedule",
              "weight_decay", "optimizer", "data", "family")


def _sweep_key(settings: dict) -> tuple:
    model = tuple(sorted((settings.get("model") or {}).items()))
    return tuple(settings.get(k) for k in SWEEP_KEYS) + (model,)


def lr_curves(runs) -> dict:
    """{sweep key: {width: [(lr, mean val loss over seeds, n seeds, n diverged)]}} sorted by lr.

    Diverged runs count as +inf; failed runs are left out.
    """
    cells = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in runs:
        if r.status == "failed":
            continue
        loss = r.final_val_loss if r.status == "finished" else math.inf
        if not math.isfinite(loss):
            loss = math.inf
        s = r.settings
        cells[_sweep_key(s)][int(s["width"])][float(s["lr"])].append(loss)
    out = {}
    for key, widths in cells.items():
        out[key] = {}
        for w, lrs in sorted(widths.items()):
            pts = []
            for lr, losses in sorted(lrs.items()):
                finite = [x for x in losses if math.isfinite(x)]
                mean = float(np.mean(losses)) if len(finite) == len(losses) else math.inf
                pts.append((lr, mean, len(losses), len(losses) - len(finite)))
            out[key][w] = pts
    return out


def best_lr_table(runs) -> list[dict]:
    """One row per (sweep, width): the LR with the lowest mean held-out loss."""
    rows = []
    for key, widths in lr_curves(runs).items():
        settings = dict(zip(SWEEP_KEYS, key[:-1]))
        for w, pts in widths.items():
            finite = [p for p in pts if math.isfinite(p[1])]
            if not finite:
                best_lr, best_loss = math.nan, math.nan
            else:
                best_lr, best_loss = min(finite, key=lambda p: p[1])[:2]
            rows.append({"parameterization": settings["parameterization"], "width": w,
                         "depth": settings["depth"], "best_lr": best_lr,
                         "log2_best_lr": math.log2(best_lr) if best_lr > 0 else math.nan,
                         "best_val_loss": best_loss, "n_lrs": len(pts),
                         "batch_size": settings["batch_size"], "tokens": settings["tokens"],
                         "schedule": settings["schedule"],
                         "weight_decay": settings["weight_decay"], "model": dict(key[-1])})
    return rows


def optimum_shift(rows: list[dict]) -> list[dict]:
    """Per sweep: log2 of (best LR at the largest width / best LR at the smallest width)."""
    groups = defaultdict(list)
    for r in rows:
        if math.isfinite(r["best_lr"]):
            k = (r["parameterization"], r["depth"], r["batch_size"], r["tokens"], r["schedule"],
                 r["weight_decay"], tuple(sorted(r["model"].items())))
            groups[k].append(r)
    out = []
    for k, rs in groups.items():
        rs.sort(key=lambda r: r["width"])
        if len(rs) >= 2:
            out.append({"parameterization": k[0], "depth": k[1], "smallest_width": rs[0]["width"],
                        "largest_width": rs[-1]["width"],
                        "log2_shift": rs[-1]["log2_best_lr"] - rs[0]["log2_best_lr"]})
    return out


def plot_lr_sweeps(runs, path) -> None:
    """Held-out loss against LR, one line per width, one panel per parameterisation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = lr_curves(runs)
    if not curves:
        from advisor.errors import AdvisorError
        raise AdvisorError("nothing to plot: the store has no finished runs")
    keys = sorted(curves, key=str)
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4.2), squeeze=False,
                             sharey=True)
    finite_all = [p[1] for k in keys for pts in curves[k].values() for p in pts
                  if math.isfinite(p[1])]
    for ax, key in zip(axes[0], keys):
        widths = sorted(curves[key])
        cmap = plt.get_cmap("viridis")
        for i, w in enumerate(widths):
            pts = curves[key][w]
            lrs = [p[0] for p in pts if math.isfinite(p[1])]
            ls = [p[1] for p in pts if math.isfinite(p[1])]
            color = cmap(i / max(1, len(widths) - 1))
            ax.plot(lrs, ls, "o-", color=color, label=f"width {w}", ms=4)
            if ls:
                j = int(np.argmin(ls))
                ax.plot([lrs[j]], [ls[j]], "*", color=color, ms=13, mec="k")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("peak LR (base-width units)")
        ax.set_title(f"{key[0]}  (depth {key[1]}, {key[4]})", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("final held-out loss (nats/token)")
    if finite_all:
        lo = min(finite_all)
        axes[0][0].set_ylim(lo - 0.05, min(max(finite_all), lo + 1.5) + 0.05)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
