"""Muon vs AdamW from a results store: best LR and loss per width, per optimizer arm.

Torch-free (numpy; matplotlib only to plot). Reads a store made by a Muon sweep such as
``recipes/plans/cpu-muon-sweep.yaml`` (widths x LR grid for muP AdamW and for Muon under each
width convention, equal tokens) and answers, per arm: where is the best base LR at each width,
does it stay within one factor of 2 of the smallest width's, and what is the best loss per
width. Units: LRs are base peak LRs; losses are final held-out losses in nats per token (here
bytes); diverged runs count as +inf.

    python -m calibration.muon_summary runs/cpu-muon-sweep [--plot muon.png]
"""
from __future__ import annotations

import math
import sys
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from advisor.errors import AdvisorError

ARM_ORDER = ("AdamW (muP)", "AdamW", "Muon spectral", "Muon match_rms_adamw")


@dataclass(frozen=True)
class ArmRow:
    """One (arm, width) cell: its LR curve and best point."""

    arm: str
    width: int
    curve: tuple          # ((lr, mean final val loss over seeds or inf), ...) sorted by lr
    best_lr: float
    best_loss: float


def arm_of(settings: dict) -> str:
    """The optimizer arm of a stored run: its optimizer, and Muon's width convention."""
    opt = settings.get("optimizer", "muadamw")
    if opt == "muon":
        return f"Muon {settings.get('muon_convention', 'spectral')}"
    return "AdamW (muP)" if opt == "muadamw" and settings.get("parameterization") == "mup" \
        else "AdamW"


def arm_rows(runs) -> list[ArmRow]:
    """Rows sorted by (arm, width); failed runs are left out. All runs must share a token
    budget (the comparison is at equal tokens)."""
    kept = [r for r in runs if r.status != "failed"]
    budgets = {int(r.settings["tokens"]) for r in kept}
    if len(budgets) > 1:
        raise AdvisorError(f"runs of different token budgets {sorted(budgets)}: the "
                           f"comparison needs equal tokens")
    cells = defaultdict(lambda: defaultdict(list))
    for r in kept:
        loss = r.final_val_loss if r.status == "finished" else math.inf
        if loss is None or not math.isfinite(loss):
            loss = math.inf
        cells[(arm_of(r.settings), int(r.settings["width"]))][float(r.settings["lr"])].append(loss)
    order = {a: i for i, a in enumerate(ARM_ORDER)}
    rows = []
    for (arm, width), lrs in sorted(cells.items(), key=lambda kv: (order.get(kv[0][0], 99),
                                                                   kv[0][0], kv[0][1])):
        curve = tuple((lr, float(np.mean(v)) if all(math.isfinite(x) for x in v) else math.inf)
                      for lr, v in sorted(lrs.items()))
        finite = [p for p in curve if math.isfinite(p[1])]
        best = min(finite, key=lambda p: p[1]) if finite else (math.nan, math.nan)
        rows.append(ArmRow(arm, width, curve, best[0], best[1]))
    if not rows:
        raise AdvisorError("no finished or diverged runs to summarise")
    return rows


def smooth_optimum(row: ArmRow) -> float:
    """log2 of the LR at the vertex of the parabola (in log2 LR) through the best grid point
    and its two neighbours; NaN when the best point is at an end of the grid or not finite."""
    pts = [(math.log2(lr), loss) for lr, loss in row.curve]
    i = next((j for j, p in enumerate(pts) if p[0] == math.log2(row.best_lr)), None) \
        if math.isfinite(row.best_lr) else None
    if i is None or i == 0 or i == len(pts) - 1:
        return math.nan
    (x0, y0), (x1, y1), (x2, y2) = pts[i - 1], pts[i], pts[i + 1]
    if not all(math.isfinite(y) for y in (y0, y1, y2)):
        return math.nan
    a = np.polyfit([x0, x1, x2], [y0, y1, y2], 2)
    return float(-a[1] / (2 * a[0])) if a[0] > 0 else math.nan


def transfer_verdicts(rows: list[ArmRow]) -> dict:
    """arm -> {widths, best LRs, shift in factors of 2 from the smallest width, ok, edge}.

    ``max_shift``: the largest |log2(best LR at a width / best LR at the smallest width)|;
    ``ok``: at most 1. ``edge``: widths whose best LR is at an end of the grid.
    """
    by_arm = defaultdict(list)
    for r in rows:
        by_arm[r.arm].append(r)
    out = {}
    for arm, rs in by_arm.items():
        rs.sort(key=lambda r: r.width)
        ref = rs[0].best_lr
        shifts = [abs(math.log2(r.best_lr / ref)) if math.isfinite(r.best_lr) and
                  math.isfinite(ref) else math.inf for r in rs]
        edge = [r.width for r in rs if math.isfinite(r.best_lr)
                and r.best_lr in (r.curve[0][0], r.curve[-1][0])]
        out[arm] = {"widths": [r.width for r in rs], "best_lr": [r.best_lr for r in rs],
                    "smooth_log2_lr": [smooth_optimum(r) for r in rs],
                    "best_loss": [r.best_loss for r in rs], "shift_pow2": shifts,
                    "max_shift": max(shifts), "ok": max(shifts) <= 1.0, "edge": edge}
    return out


def _pow2(lr: float) -> str:
    if not math.isfinite(lr):
        return "-"
    k = math.log2(lr)
    return f"2^{k:.0f}" if abs(k - round(k)) < 1e-9 else f"{lr:.3g}"


def markdown_table(rows: list[ArmRow]) -> str:
    """Best LR and loss per width (one column per arm), the verdicts, and Muon - AdamW."""
    verdicts = transfer_verdicts(rows)
    arms = list(verdicts)
    widths = sorted({r.width for r in rows})
    cell = {(r.arm, r.width): r for r in rows}
    ref = next((a for a in arms if a.startswith("AdamW")), None)
    muons = [a for a in arms if a.startswith("Muon")]
    head = ("| width | " + " | ".join(f"{a}: best LR, loss" for a in arms)
            + "".join(f" | {m} - {ref} (nats)" for m in muons if ref) + " |")
    lines = [head, "|" + "---|" * (1 + len(arms) + (len(muons) if ref else 0))]
    for w in widths:
        parts = []
        for a in arms:
            r = cell.get((a, w))
            parts.append("-" if r is None else f"{_pow2(r.best_lr)}, {r.best_loss:.3f}")
        if ref:
            for m in muons:
                rm, ra = cell.get((m, w)), cell.get((ref, w))
                parts.append("-" if rm is None or ra is None
                             else f"{rm.best_loss - ra.best_loss:+.3f}")
        lines.append(f"| {w} | " + " | ".join(parts) + " |")
    lines.append("| optimum within one factor of 2 of the smallest width's | "
                 + " | ".join(("yes" if v["ok"] else "no") + f" (max shift {v['max_shift']:g})"
                              for v in verdicts.values())
                 + "".join(" | " for _ in (muons if ref else [])) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[ArmRow], path) -> None:
    """One panel per arm: final held-out loss against LR, one line per width, best marked."""
    from calibration.lr_panels import plot_lr_panels

    panels = [(f"{a}: best LR moves {v['max_shift']:g} x2",
               [(f"width {r.width}", r.curve, r.best_lr, r.best_loss)
                for r in rows if r.arm == a])
              for a, v in transfer_verdicts(rows).items()]
    plot_lr_panels(panels, path, span=1.0)


def summary_lines(rows: list[ArmRow]) -> list[str]:
    """The summary's printed lines: the table, each arm's smooth optimum, grid-edge notes."""
    from calibration.summary_cli import edge_note

    lines = [markdown_table(rows).rstrip("\n")]
    for a, v in transfer_verdicts(rows).items():
        lines.append(f"{a}: smooth optimum log2(LR) by width "
                     + ", ".join(f"{w}: {x:.2f}" for w, x in zip(v["widths"],
                                                                 v["smooth_log2_lr"])))
        lines += edge_note(a, "width(s)", v["edge"])
    return lines


def main(argv=None) -> int:
    from calibration.summary_cli import summary_main

    return summary_main(argv, "Muon vs AdamW: best LR and loss per width", arm_rows,
                        summary_lines, plot, "write the loss-vs-LR panels here (PNG)")


if __name__ == "__main__":
    sys.exit(main())
