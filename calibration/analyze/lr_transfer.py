"""Transfer sweeps read from a results store: one LR curve per (arm, size), verdicts, a plot.

Shared by the depth summary (``calibration/analyze/depth_summary.py``: an arm = a depth exponent, sizes
= depths) and the Muon summary (``calibration/analyze/muon_summary.py``: an arm = an optimizer and width
convention, sizes = widths). Torch-free (numpy; figures by advisor.cli.plots). Units: LRs are base
peak LRs; losses are final held-out losses in nats per token (here bytes); a diverged run counts
as +inf, a failed run is left out.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from operator import attrgetter

import numpy as np

from advisor.cli import plots
from advisor.errors import AdvisorError
from advisor.specs.grouping import EXECUTION_ONLY, differing, group_key


@dataclass(frozen=True)
class LRRow:
    """One (arm, size) cell: its LR curve and best grid point."""

    arm: object
    size: int
    curve: tuple          # ((lr, mean final val loss over seeds or inf), ...) sorted by lr
    best_lr: float
    best_loss: float


def alias(field: str, doc: str) -> property:
    """A read-only second name for an LRRow field, as a summary calls it (``depth`` for
    ``size`` in the depth summary); ``doc`` says what it is and its unit."""
    return property(attrgetter(field), doc=doc)


def final_loss(run) -> float:
    """A stored run's final held-out loss; +inf when it diverged or has none."""
    loss = run.final_val_loss if run.status == "finished" else math.inf
    return math.inf if loss is None or not math.isfinite(loss) else float(loss)


def loss_cells(runs, key, x: str = "lr") -> dict:
    """``{(arm, size): {x value: [final losses over seeds]}}`` with ``(arm, size) =
    key(settings)`` and the x value the run setting named ``x``; failed runs left out.

    The runs of one cell must belong together (``advisor.specs.grouping.group_key`` with
    only ``x``, the seed and execution flags free): runs that differ in any other setting
    (an optimizer constant, a weight decay, a batch size, ...) are never averaged into one
    curve; that is one clear error naming the settings, not a merged curve."""
    cells = defaultdict(lambda: defaultdict(list))
    groups = defaultdict(set)
    free = (x, "seed") + EXECUTION_ONLY
    for r in runs:
        if r.status != "failed":
            cell = key(r.settings)
            groups[cell].add(group_key(r.settings, free))
            cells[cell][float(r.settings[x])].append(final_loss(r))
    for cell, keys in groups.items():
        if len(keys) > 1:
            raise AdvisorError(f"the runs of {cell[0]} at size {cell[1]} differ in "
                               f"{', '.join(differing(keys))}: they are not one sweep; "
                               "summarise one setting at a time")
    return cells


def rows_from_cells(cells: dict, row_type=LRRow, order=None) -> list:
    """``row_type`` rows of :func:`loss_cells`' cells, sorted by ``order(arm, size)`` (default:
    the key itself). Seeds are averaged; a point with any diverged seed is +inf."""
    order = order or (lambda arm, size: (arm, size))
    rows = []
    for (arm, size), pts in sorted(cells.items(), key=lambda kv: order(*kv[0])):
        curve = tuple((x, float(np.mean(v)) if all(math.isfinite(y) for y in v) else math.inf)
                      for x, v in sorted(pts.items()))
        finite = [p for p in curve if math.isfinite(p[1])]
        best = min(finite, key=lambda p: p[1]) if finite else (math.nan, math.nan)
        rows.append(row_type(arm, size, curve, best[0], best[1]))
    if not rows:
        raise AdvisorError("no finished or diverged runs to summarise")
    return rows


def lr_rows(runs, key, row_type=LRRow, order=None) -> list:
    """One LR curve per ``key(settings) = (arm, size)``: :func:`rows_from_cells` of
    :func:`loss_cells`."""
    return rows_from_cells(loss_cells(runs, key), row_type, order)


def smooth_optimum(row: LRRow) -> float:
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


def rows_by_arm(rows: list) -> dict:
    """``{arm: its rows sorted by size}``, arms in the rows' order."""
    by_arm = defaultdict(list)
    for r in rows:
        by_arm[r.arm].append(r)
    return {arm: sorted(rs, key=lambda r: r.size) for arm, rs in by_arm.items()}


def table_then_notes(table, notes):
    """A summary's printed lines, as a function of its rows: ``table(rows)``, then
    ``notes(rows)``."""
    return lambda rows: [table(rows).rstrip("\n"), *notes(rows)]


@dataclass(frozen=True)
class TransferVerdict:
    """Does one arm's best LR stay put across sizes? Per size (ascending, ``sizes``: widths
    or depths, as the rows' sizes): ``best_lr`` (base peak LR at the best grid point),
    ``smooth_log2_lr`` (log2 LR of :func:`smooth_optimum`, NaN at a grid end),
    ``best_loss`` (nats per token), ``shift_pow2`` (|log2(best LR / the smallest size's)|,
    factors of 2, inf without a best LR). ``max_shift`` the largest shift; ``ok`` whether it
    is at most 1 (within one factor of 2); ``edge`` the sizes whose best LR is at an end of
    the grid (the optimum may lie outside it)."""

    sizes: tuple[int, ...]
    best_lr: tuple[float, ...]
    smooth_log2_lr: tuple[float, ...]
    best_loss: tuple[float, ...]
    shift_pow2: tuple[float, ...]
    max_shift: float
    ok: bool
    edge: tuple[int, ...]


def transfer_verdicts(rows: list[LRRow]) -> dict:
    """``{arm: TransferVerdict}``, arms in the rows' order (the one verdict of the depth
    and Muon summaries)."""
    out = {}
    for arm, rs in rows_by_arm(rows).items():
        ref = rs[0].best_lr
        shifts = tuple(abs(math.log2(r.best_lr / ref)) if math.isfinite(r.best_lr) and
                       math.isfinite(ref) else math.inf for r in rs)
        out[arm] = TransferVerdict(
            sizes=tuple(r.size for r in rs), best_lr=tuple(r.best_lr for r in rs),
            smooth_log2_lr=tuple(smooth_optimum(r) for r in rs),
            best_loss=tuple(r.best_loss for r in rs), shift_pow2=shifts,
            max_shift=max(shifts), ok=max(shifts) <= 1.0,
            edge=tuple(r.size for r in rs if math.isfinite(r.best_lr)
                       and r.best_lr in (r.curve[0][0], r.curve[-1][0])))
    return out


def pow2(lr: float, fractional: bool = False) -> str:
    """``2^k`` for an exact power of two, else three significant digits (``fractional``:
    ``2^k`` with k to two decimals, for interpolated LRs); ``-`` if not finite."""
    if not math.isfinite(lr):
        return "-"
    k = math.log2(lr)
    if abs(k - round(k)) < 1e-9:
        return f"2^{k:.0f}"
    return f"2^{k:.2f}" if fractional else f"{lr:.3g}"


def cell_text(row) -> str:
    """A table cell: best LR and best loss, or ``-`` for a missing cell."""
    if row is None:
        return "-"
    if not math.isfinite(row.best_loss):
        return "all diverged"
    return f"{pow2(row.best_lr)}, {row.best_loss:.3f}"


def verdict_text(v: TransferVerdict) -> str:
    """A verdict as a table cell: yes/no and the largest shift (factors of 2)."""
    if not math.isfinite(v.max_shift):
        return "no (no best LR where every run diverged)"
    return ("yes" if v.ok else "no") + f" (max shift {v.max_shift:g})"


def lr_table(rows: list[LRRow], verdicts: dict, size_name: str, arm_label, verdict_label: str,
             extra=()) -> str:
    """A Markdown table: one line per size, a "best LR, loss" column per arm (headed
    ``arm_label(arm)``), then ``extra`` columns ``(header, fn(cells, size) -> str)`` with
    ``cells`` the rows by (arm, size); a last line of the verdicts, headed ``verdict_label``."""
    arms = list(verdicts)
    cell = {(r.arm, r.size): r for r in rows}
    head = (f"| {size_name} | " + " | ".join(f"{arm_label(a)}: best LR, loss" for a in arms)
            + "".join(f" | {h}" for h, _ in extra) + " |")
    lines = [head, "|" + "---|" * (1 + len(arms) + len(extra))]
    for size in sorted({r.size for r in rows}):
        parts = [cell_text(cell.get((a, size))) for a in arms] + [fn(cell, size) for _, fn in extra]
        lines.append(f"| {size} | " + " | ".join(parts) + " |")
    lines.append(f"| {verdict_label} | " + " | ".join(verdict_text(v) for v in verdicts.values())
                 + "".join(" | " for _ in extra) + " |")
    return "\n".join(lines) + "\n"


def plot_transfer(rows: list[LRRow], verdicts: dict, path, arm_title, line_label,
                  span: float) -> None:
    """``advisor.cli.plots.lr_panels`` with one panel per arm (titled ``arm_title(arm)`` and how far its
    best LR moves) and one line per size (labelled ``line_label(size)``)."""
    panels = [(f"{arm_title(a)}: best LR moves {v.max_shift:g} x2",
               [(line_label(r.size), r.curve, r.best_lr, r.best_loss)
                for r in rows if r.arm == a])
              for a, v in verdicts.items()]
    plots.lr_panels(panels, path, span=span)
