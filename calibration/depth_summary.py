"""Transfer in depth from a results store: best LR and loss per depth, per depth exponent.

Torch-free (numpy; matplotlib only to plot). Reads a store made by a depth sweep such as
``recipes/plans/cpu-depth-sweep.yaml`` (one width, depths x ``depth_alpha`` x LR grid) and
answers, per alpha: where is the best base LR at each depth, does it stay within one factor
of 2 of the base depth's, and what is the best loss per depth. Units: LRs are base peak LRs;
losses are final held-out losses in nats per token (diverged runs count as +inf).

    python -m calibration.depth_summary runs/cpu-depth [--plot depth.png] [--markdown]
"""
from __future__ import annotations

import math
import sys
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from advisor.errors import AdvisorError


@dataclass(frozen=True)
class DepthRow:
    """One (alpha, depth) cell: its LR curve and best point."""

    alpha: float
    depth: int
    curve: tuple          # ((lr, mean final val loss over seeds or inf), ...) sorted by lr
    best_lr: float
    best_loss: float


def _alpha_of(settings: dict) -> float:
    a = (settings.get("model") or {}).get("depth_alpha")
    return 0.0 if a is None else float(a)


def depth_rows(runs) -> list[DepthRow]:
    """Rows sorted by (alpha, depth). Runs of one width only; failed runs are left out."""
    widths = {int(r.settings["width"]) for r in runs if r.status != "failed"}
    if len(widths) > 1:
        raise AdvisorError(f"a depth summary needs runs of one width, found {sorted(widths)}")
    cells = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r.status == "failed":
            continue
        loss = r.final_val_loss if r.status == "finished" else math.inf
        if loss is None or not math.isfinite(loss):
            loss = math.inf
        cells[(_alpha_of(r.settings), int(r.settings["depth"]))][float(r.settings["lr"])].append(loss)
    rows = []
    for (alpha, depth), lrs in sorted(cells.items()):
        curve = tuple((lr, float(np.mean(v)) if all(math.isfinite(x) for x in v) else math.inf)
                      for lr, v in sorted(lrs.items()))
        finite = [p for p in curve if math.isfinite(p[1])]
        best = min(finite, key=lambda p: p[1]) if finite else (math.nan, math.nan)
        rows.append(DepthRow(alpha, depth, curve, best[0], best[1]))
    if not rows:
        raise AdvisorError("no finished or diverged runs to summarise")
    return rows


def transfer_verdicts(rows: list[DepthRow]) -> dict:
    """alpha -> {depths, best LRs, shift in factors of 2 from the shallowest depth, ok}.

    ``max_shift`` is the largest |log2(best LR at depth / best LR at the shallowest depth)|;
    ``ok`` is whether it is at most 1 (the optimum stays within one factor of 2).
    ``edge`` lists depths whose best LR is at an end of the grid (the optimum may lie outside).
    """
    by_alpha = defaultdict(list)
    for r in rows:
        by_alpha[r.alpha].append(r)
    out = {}
    for alpha, rs in sorted(by_alpha.items()):
        rs.sort(key=lambda r: r.depth)
        ref = rs[0].best_lr
        shifts = [abs(math.log2(r.best_lr / ref)) if math.isfinite(r.best_lr) and
                  math.isfinite(ref) else math.inf for r in rs]
        edge = [r.depth for r in rs if math.isfinite(r.best_lr)
                and r.best_lr in (r.curve[0][0], r.curve[-1][0])]
        out[alpha] = {"depths": [r.depth for r in rs], "best_lr": [r.best_lr for r in rs],
                      "best_loss": [r.best_loss for r in rs],
                      "shift_pow2": shifts, "max_shift": max(shifts),
                      "ok": max(shifts) <= 1.0, "edge": edge}
    return out


def _pow2(lr: float) -> str:
    if not math.isfinite(lr):
        return "-"
    k = math.log2(lr)
    return f"2^{k:.0f}" if abs(k - round(k)) < 1e-9 else f"{lr:.3g}"


def markdown_table(rows: list[DepthRow]) -> str:
    """Best LR and loss per depth (columns: one pair per alpha), then the verdicts."""
    verdicts = transfer_verdicts(rows)
    alphas = list(verdicts)
    depths = sorted({r.depth for r in rows})
    cell = {(r.alpha, r.depth): r for r in rows}
    head = "| depth | " + " | ".join(f"alpha {a:g}: best LR, loss" for a in alphas) + " |"
    lines = [head, "|" + "---|" * (len(alphas) + 1)]
    for d in depths:
        parts = []
        for a in alphas:
            r = cell.get((a, d))
            parts.append("-" if r is None else f"{_pow2(r.best_lr)}, {r.best_loss:.3f}")
        lines.append(f"| {d} | " + " | ".join(parts) + " |")
    lines.append("| optimum within one factor of 2 of the shallowest depth's | "
                 + " | ".join(("yes" if v["ok"] else "no") + f" (max shift {v['max_shift']:g})"
                              for v in verdicts.values()) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[DepthRow], path) -> None:
    """One panel per alpha: final held-out loss against LR, one line per depth, best marked."""
    from calibration.lr_panels import plot_lr_panels

    names = {0.0: "no depth scaling", 0.5: "Depth-muP", 1.0: "CompleteP"}
    panels = [(f"alpha {a:g} ({names.get(a, '')}): best LR moves {v['max_shift']:g} x2",
               [(f"depth {r.depth}", r.curve, r.best_lr, r.best_loss)
                for r in rows if r.alpha == a])
              for a, v in transfer_verdicts(rows).items()]
    plot_lr_panels(panels, path, span=1.2)


def summary_lines(rows: list[DepthRow]) -> list[str]:
    """The summary's printed lines: the table and grid-edge notes."""
    from calibration.summary_cli import edge_note

    lines = [markdown_table(rows).rstrip("\n")]
    for a, v in transfer_verdicts(rows).items():
        lines += edge_note(f"alpha {a:g}", "depth(s)", v["edge"])
    return lines


def main(argv=None) -> int:
    from calibration.summary_cli import summary_main

    return summary_main(argv, "transfer in depth: best LR and loss per depth", depth_rows,
                        summary_lines, plot, "write the loss-vs-LR panels here (PNG)")


if __name__ == "__main__":
    sys.exit(main())
