"""Transfer in depth from a results store: best LR and loss per depth, per depth exponent.

Torch-free (numpy; figures by advisor.cli.plots). Reads a store made by a depth sweep such as
``recipes/plans/cpu-depth-sweep.yaml`` (one width, depths x ``depth_alpha`` x LR grid) and
answers, per alpha: where is the best base LR at each depth, does it stay within one factor
of 2 of the base depth's, and what is the best loss per depth. Units: LRs are base peak LRs;
losses are final held-out losses in nats per token (diverged runs count as +inf).

    advisor results runs/cpu-depth --by depth [--plot depth.png]
"""
from __future__ import annotations


from advisor.errors import AdvisorError
from calibration.analyze.lr_transfer import (LRRow, alias, lr_rows, lr_table, plot_transfer,
                                             table_then_notes, transfer_verdicts)
from calibration.analyze.summary_cli import edge_note


class DepthRow(LRRow):
    """One (alpha, depth) cell: its LR curve and best point (``arm`` = alpha, ``size`` = depth)."""

    alpha = alias("arm", "the depth exponent alpha (dimensionless)")
    depth = alias("size", "the number of blocks")


def _alpha_of(settings: dict) -> float:
    a = (settings.get("model") or {}).get("depth_alpha")
    return 0.0 if a is None else float(a)


def depth_rows(runs) -> list[DepthRow]:
    """Rows sorted by (alpha, depth). Runs of one width only; failed runs are left out."""
    widths = {int(r.settings["width"]) for r in runs if r.status != "failed"}
    if len(widths) > 1:
        raise AdvisorError(f"a depth summary needs runs of one width, found {sorted(widths)}")
    return lr_rows(runs, lambda s: (_alpha_of(s), int(s["depth"])), DepthRow)


def markdown_table(rows: list[DepthRow]) -> str:
    """Best LR and loss per depth (columns: one pair per alpha), then the verdicts."""
    return lr_table(rows, transfer_verdicts(rows), "depth", lambda a: f"alpha {a:g}",
                    "optimum within one factor of 2 of the shallowest depth's")


def plot(rows: list[DepthRow], path) -> None:
    """One panel per alpha: final held-out loss against LR, one line per depth, best marked."""
    names = {0.0: "no depth scaling", 0.5: "Depth-muP", 1.0: "CompleteP"}
    plot_transfer(rows, transfer_verdicts(rows), path,
                  lambda a: f"alpha {a:g} ({names.get(a, '')})", lambda d: f"depth {d}", span=1.2)


def _notes(rows: list[DepthRow]) -> list[str]:
    return [line for a, v in transfer_verdicts(rows).items()
            for line in edge_note(f"alpha {a:g}", "depth(s)", v.edge)]


summary_lines = table_then_notes(markdown_table, _notes)   # rows -> the printed lines
