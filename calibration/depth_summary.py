"""Transfer in depth from a results store: best LR and loss per depth, per depth exponent.

Torch-free (numpy; matplotlib only to plot). Reads a store made by a depth sweep such as
``recipes/plans/cpu-depth-sweep.yaml`` (one width, depths x ``depth_alpha`` x LR grid) and
answers, per alpha: where is the best base LR at each depth, does it stay within one factor
of 2 of the base depth's, and what is the best loss per depth. Units: LRs are base peak LRs;
losses are final held-out losses in nats per token (diverged runs count as +inf).

    python -m calibration.depth_summary runs/cpu-depth [--plot depth.png]
"""
from __future__ import annotations

import sys

from advisor.errors import AdvisorError
from calibration.lr_transfer import (LRRow, cell_text, lr_rows, plot_lr_panels, summary_main,
                                     verdict_text)
from calibration.lr_transfer import transfer_verdicts as _verdicts


class DepthRow(LRRow):
    """One (alpha, depth) cell: its LR curve and best point (``arm`` = alpha, ``size`` = depth)."""

    @property
    def alpha(self) -> float:
        return self.arm

    @property
    def depth(self) -> int:
        return self.size


def _alpha_of(settings: dict) -> float:
    a = (settings.get("model") or {}).get("depth_alpha")
    return 0.0 if a is None else float(a)


def depth_rows(runs) -> list[DepthRow]:
    """Rows sorted by (alpha, depth). Runs of one width only; failed runs are left out."""
    widths = {int(r.settings["width"]) for r in runs if r.status != "failed"}
    if len(widths) > 1:
        raise AdvisorError(f"a depth summary needs runs of one width, found {sorted(widths)}")
    return lr_rows(runs, lambda s: (_alpha_of(s), int(s["depth"])), DepthRow)


def transfer_verdicts(rows: list[DepthRow]) -> dict:
    """alpha -> the verdicts of :func:`calibration.lr_transfer.transfer_verdicts` (``depths``)."""
    return _verdicts(rows, "depths")


def markdown_table(rows: list[DepthRow]) -> str:
    """Best LR and loss per depth (columns: one pair per alpha), then the verdicts."""
    verdicts = transfer_verdicts(rows)
    alphas = list(verdicts)
    depths = sorted({r.depth for r in rows})
    cell = {(r.alpha, r.depth): r for r in rows}
    head = "| depth | " + " | ".join(f"alpha {a:g}: best LR, loss" for a in alphas) + " |"
    lines = [head, "|" + "---|" * (len(alphas) + 1)]
    for d in depths:
        lines.append(f"| {d} | " + " | ".join(cell_text(cell.get((a, d))) for a in alphas) + " |")
    lines.append("| optimum within one factor of 2 of the shallowest depth's | "
                 + " | ".join(verdict_text(v) for v in verdicts.values()) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[DepthRow], path) -> None:
    """One panel per alpha: final held-out loss against LR, one line per depth, best marked."""
    names = {0.0: "no depth scaling", 0.5: "Depth-muP", 1.0: "CompleteP"}
    panels = [(f"alpha {a:g} ({names.get(a, '')}): best LR moves {v['max_shift']:g} x2",
               [(f"depth {r.depth}", r.curve, r.best_lr, r.best_loss)
                for r in rows if r.alpha == a])
              for a, v in transfer_verdicts(rows).items()]
    plot_lr_panels(panels, path, span=1.2)


def _notes(rows: list[DepthRow]) -> list[str]:
    return [f"alpha {a:g}: best LR at an end of the grid at depth(s) "
            f"{', '.join(map(str, v['edge']))}: the optimum may lie outside it"
            for a, v in transfer_verdicts(rows).items() if v["edge"]]


def main(argv=None) -> int:
    return summary_main(argv, "transfer in depth: best LR and loss per depth", depth_rows,
                        markdown_table, _notes, plot)


if __name__ == "__main__":
    sys.exit(main())
