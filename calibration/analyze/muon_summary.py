"""Muon vs AdamW from a results store: best LR and loss per width, per optimizer arm.

Torch-free (numpy; figures by advisor.cli.plots). Reads a store made by a Muon sweep such as
``recipes/plans/cpu-muon-sweep.yaml`` (widths x LR grid for muP AdamW and for Muon under each
width convention, equal tokens) and answers, per arm: where is the best base LR at each width,
does it stay within one factor of 2 of the smallest width's, and what is the best loss per
width. Units: LRs are base peak LRs; losses are final held-out losses in nats per token (here
bytes); diverged runs count as +inf.

    advisor results runs/cpu-muon-sweep --by optimizer [--plot muon.png]
"""
from __future__ import annotations

import math

from advisor.errors import AdvisorError
from calibration.analyze.lr_transfer import (LRRow, alias, lr_rows, lr_table, plot_transfer,
                                             table_then_notes, transfer_verdicts)
from calibration.analyze.summary_cli import edge_note

ARM_ORDER = ("AdamW (muP)", "AdamW", "Muon spectral", "Muon match_rms_adamw")


class ArmRow(LRRow):
    """One (arm, width) cell: its LR curve and best point (``size`` = width)."""

    width = alias("size", "the model width d_model (channels)")


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
    budgets = {int(r.settings["tokens"]) for r in runs if r.status != "failed"}
    if len(budgets) > 1:
        raise AdvisorError(f"runs of different token budgets {sorted(budgets)}: the "
                           f"comparison needs equal tokens")
    order = {a: i for i, a in enumerate(ARM_ORDER)}
    return lr_rows(runs, lambda s: (arm_of(s), int(s["width"])), ArmRow,
                   order=lambda arm, width: (order.get(arm, 99), arm, width))


def markdown_table(rows: list[ArmRow]) -> str:
    """Best LR and loss per width (one column per arm), the verdicts, and Muon - AdamW."""
    verdicts = transfer_verdicts(rows)
    ref = next((a for a in verdicts if a.startswith("AdamW")), None)

    def minus_ref(muon):
        def text(cells, width):
            rm, ra = cells.get((muon, width)), cells.get((ref, width))
            if rm is None or ra is None or not math.isfinite(rm.best_loss - ra.best_loss):
                return "-"
            return f"{rm.best_loss - ra.best_loss:+.3f}"
        return text

    extra = [(f"{m} - {ref} (nats)", minus_ref(m))
             for m in verdicts if m.startswith("Muon")] if ref else []
    return lr_table(rows, verdicts, "width", str,
                    "optimum within one factor of 2 of the smallest width's", extra)


def plot(rows: list[ArmRow], path) -> None:
    """One panel per arm: final held-out loss against LR, one line per width, best marked."""
    plot_transfer(rows, transfer_verdicts(rows), path, str, lambda w: f"width {w}", span=1.0)


def _notes(rows: list[ArmRow]) -> list[str]:
    lines = []
    for a, v in transfer_verdicts(rows).items():
        lines.append(f"{a}: smooth optimum log2(LR) by width "
                     + ", ".join(f"{w}: {x:.2f}" if math.isfinite(x) else f"{w}: - (best at a "
                                 f"grid end)" for w, x in zip(v.sizes, v.smooth_log2_lr)))
        lines += edge_note(a, "width(s)", v.edge)
    return lines


summary_lines = table_then_notes(markdown_table, _notes)   # rows -> the printed lines
