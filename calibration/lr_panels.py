"""One plot for transfer sweeps: final held-out loss against LR, one panel per arm.

Shared by the depth summary (an arm = a depth exponent, lines = depths) and the Muon summary
(an arm = an optimizer/convention, lines = widths).
"""
from __future__ import annotations

import math


def plot_lr_panels(panels, path, *, span: float, xlabel: str = "base LR") -> None:
    """Write a PNG of loss-vs-LR panels, atomically.

    Args:
        panels: list of (title, lines); each line is (label, curve, best_lr, best_loss) with
            curve a list of (base LR, final held-out loss in nats/byte); non-finite losses
            (diverged runs) leave gaps, and the best point is starred.
        path: the PNG to write.
        span: the y axis shows at most this many nats above the lowest loss.
        xlabel: what the x axis is (the curves' first coordinate; log base 2).
    """
    import matplotlib
    import numpy as np

    from advisor.outputs import atomic_output

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    try:
        with atomic_output(path, "plot", suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
