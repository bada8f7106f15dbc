"""Weight decay x width under each weight-decay width rule: does the best weight decay transfer?

Torch-free (numpy; figures by advisor.cli.plots). Reads a store made by a sweep such as
``recipes/plans/cpu-wd-rules.yaml``: muP AdamW at one base LR, a grid of base-width weight
decays, widths, and the rule (``wd_rule``, ``advisor.rules.optim_rules.WD_WIDTH_RULES``) that
carries the hidden matrices' coefficient to width multiplier m as wd * m^e. At the base width
the rules coincide, so the base width's runs (stored once, under any rule) belong to every
rule's curve. Per rule it answers: where is the best weight decay at each width, how far
(in factors of 2) has it moved from the base width's, and where the loss starts to rise (the
"knee": the weight decay at which the held-out loss is ``knee_nats`` above its best, to the
right of the best; log-interpolated), which stays identifiable when the best sits at the low
end of the grid. The prediction to compare with, if the decay per step of the hidden matrices
(lr/m * wd * m^e) is what sets the optimum: best wd ~ m^(1 - e) (none: m, sqrt: m^1/2,
mup: flat). Units: weight decays are the torch coefficients at the base width; losses are
final held-out losses in nats per token (here bytes); diverged runs count as +inf.

    advisor results runs/cpu-wd-rules --by wd-rule [--plot wd_rules.png]
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from advisor.errors import AdvisorError
from advisor.rules.optim_rules import WD_WIDTH_RULES, check_wd_rule
from calibration.analyze.lr_transfer import (LRRow, alias, final_loss, loss_cells, pow2,
                                             rows_by_arm, rows_from_cells)

RULE_ORDER = tuple(WD_WIDTH_RULES)      # mup, sqrt, none: the table and plot order
KNEE_NATS = 0.02


class WdRow(LRRow):
    """One (rule, width) cell: the loss-vs-weight-decay curve (``curve`` = ((wd, mean final
    val loss over seeds or inf), ...) sorted by wd) and its best point."""

    rule = alias("arm", "the weight-decay width rule (mup, sqrt or none)")
    width = alias("size", "the model width d_model (channels)")
    best_wd = alias("best_lr", "the best weight decay of the curve (the base value)")


def wd_rows(runs, base_width: int | None = None) -> list[WdRow]:
    """Rows sorted by (rule, width), the base width's curve repeated under every rule.

    All runs must share one base LR, one token budget and optimizer muadamw on a muP model
    (the comparison is at a fixed LR and equal tokens); failed runs and runs with weight
    decay 0 (no log scale) are left out. ``base_width``: read from the runs' model settings
    when None (the width at which every rule's multiplier is 1).
    """
    kept = [r for r in runs if r.status != "failed" and float(r.settings["weight_decay"]) > 0]
    if not kept:
        raise AdvisorError("no finished or diverged runs with weight decay > 0 to summarise")
    for key in ("lr", "tokens"):
        vals = {float(r.settings[key]) for r in kept}
        if len(vals) > 1:
            raise AdvisorError(f"runs of different {key} {sorted(vals)}: the comparison needs "
                               f"one {key}")
    bad = {(r.settings.get("optimizer", "muadamw"), r.settings.get("parameterization", "mup"))
           for r in kept} - {("muadamw", "mup")}
    if bad:
        raise AdvisorError(f"weight-decay rules are muP AdamW's: runs with optimizer/"
                           f"parameterization {sorted(bad)} cannot be summarised")
    if base_width is None:
        base_width = base_width_of(kept)
    rules_seen = {r.settings.get("wd_rule", "mup") for r in kept}
    for rule in sorted(rules_seen, key=str):
        check_wd_rule(rule, "a run")
    cells = loss_cells(kept, lambda s: (s.get("wd_rule", "mup"), int(s["width"])),
                       x="weight_decay")
    base_cells = [k for k in cells if k[1] == base_width]
    if not base_cells:
        raise AdvisorError(f"no runs at the base width {base_width}: nothing to compare with")
    base = defaultdict(list)
    for k in base_cells:
        for wd, v in cells.pop(k).items():
            base[wd] += v
    for rule in rules_seen:
        cells[(rule, base_width)] = base
    return rows_from_cells(cells, WdRow, order=lambda rule, width: (RULE_ORDER.index(rule), width))


def no_decay_losses(runs) -> dict:
    """width -> mean final held-out loss of the finished runs without weight decay (the
    reference every rule shares; diverged ones count as +inf)."""
    by_w = defaultdict(list)
    for r in runs:
        if r.status != "failed" and float(r.settings["weight_decay"]) == 0:
            by_w[int(r.settings["width"])].append(final_loss(r))
    return {w: float(np.mean(v)) for w, v in sorted(by_w.items())}


def base_width_of(runs) -> int:
    """The muP base width the runs share (their model settings' ``base_width``)."""
    bases = {int((r.settings.get("model") or {}).get("base_width", 0)) for r in runs}
    if len(bases) != 1 or 0 in bases:
        raise AdvisorError(f"cannot tell the base width from the runs' model settings "
                           f"({sorted(bases)})")
    return bases.pop()


def knee(row: WdRow, nats: float = KNEE_NATS) -> float:
    """log2 of the weight decay right of the best at which the loss first reaches best +
    ``nats`` (linear in log2 wd between grid points); NaN when it never does in the grid."""
    if not math.isfinite(row.best_loss):
        return math.nan
    target = row.best_loss + nats
    pts = [(math.log2(wd), loss) for wd, loss in row.curve if wd >= row.best_wd]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if y1 >= target:
            if not math.isfinite(y1):
                return x1
            return x0 + (x1 - x0) * (target - y0) / (y1 - y0) if y1 != y0 else x1
    return math.nan


@dataclass(frozen=True)
class WdRuleVerdict:
    """How one weight-decay width rule's best weight decay and knee move with width. Per
    width (ascending, ``widths``, channels): ``best_wd`` (torch coefficient at the base
    width) and ``best_loss`` (nats per token); ``shift_pow2`` (the best wd against the base
    width's, factors of 2, signed; NaN without a best); ``knee_log2`` (:func:`knee`) and
    ``knee_shift_pow2`` (against the base width's); ``predicted_pow2`` (log2 m^(1-e), what
    the decay-per-step hypothesis predicts). ``edge``: widths whose best is at an end of
    the grid."""

    widths: tuple[int, ...]
    best_wd: tuple[float, ...]
    best_loss: tuple[float, ...]
    shift_pow2: tuple[float, ...]
    knee_log2: tuple[float, ...]
    knee_shift_pow2: tuple[float, ...]
    predicted_pow2: tuple[float, ...]
    edge: tuple[int, ...]


def rule_verdicts(rows: list[WdRow], base_width: int) -> dict:
    """``{rule: WdRuleVerdict}``, rules in the rows' order."""
    out = {}
    for rule, rs in rows_by_arm(rows).items():
        ref = next(r for r in rs if r.width == base_width)
        e = WD_WIDTH_RULES[rule]
        knees = tuple(knee(r) for r in rs)
        k0 = knee(ref)
        out[rule] = WdRuleVerdict(
            widths=tuple(r.width for r in rs),
            best_wd=tuple(r.best_wd for r in rs),
            best_loss=tuple(r.best_loss for r in rs),
            shift_pow2=tuple(math.log2(r.best_wd / ref.best_wd) if math.isfinite(r.best_wd)
                             else math.nan for r in rs),
            knee_log2=knees,
            knee_shift_pow2=tuple(k - k0 for k in knees),
            predicted_pow2=tuple((1.0 - e) * math.log2(r.width / base_width) for r in rs),
            edge=tuple(r.width for r in rs if math.isfinite(r.best_wd)
                       and r.best_wd in (r.curve[0][0], r.curve[-1][0])))
    return out


def _signed(x: float, digits: int) -> str:
    """``+0.50``-style text of a shift; ``-`` when it is not finite (no knee, no best)."""
    return f"{x:+.{digits}f}" if math.isfinite(x) else "-"


def markdown_table(rows: list[WdRow], base_width: int, no_decay: dict | None = None) -> str:
    """Per rule and width: best wd and loss, its gain over weight decay 0 (``no_decay``:
    width -> loss, when run), the shift of the best and of the knee from the base width
    (factors of 2), and the shift the decay-per-step hypothesis predicts."""
    v = rule_verdicts(rows, base_width)
    no_decay = no_decay or {}
    lines = ["| rule | width | best wd | best loss | best - wd 0 (nats) | best moved (x2) | "
             "knee wd | knee moved (x2) | predicted if lr*wd per step sets it (x2) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for rule, d in v.items():
        for i, w in enumerate(d.widths):
            k = d.knee_log2[i]
            ref = no_decay.get(w)
            gain = "-" if ref is None else f"{d.best_loss[i] - ref:+.4f}"
            lines.append(f"| {rule} | {w} | {pow2(d.best_wd[i])} | {d.best_loss[i]:.4f} | "
                         f"{gain} | {_signed(d.shift_pow2[i], 1)} | "
                         f"{'-' if not math.isfinite(k) else f'{2 ** k:.3g}'} | "
                         f"{_signed(d.knee_shift_pow2[i], 2)} | {d.predicted_pow2[i]:+.1f} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[WdRow], path, base_width: int) -> None:
    """One panel per rule: final held-out loss against base-width weight decay, one line per
    width, best marked."""
    from advisor.cli.plots import lr_panels

    def moved(d):
        finite = [abs(x) for x in d.knee_shift_pow2 if math.isfinite(x)]
        return f"knee moves up to {max(finite):.2f} x2" if finite else "no knee in the grid"

    panels = [(f"wd rule {rule}: {moved(d)}",
               [(f"width {r.width}", r.curve, r.best_wd, r.best_loss)
                for r in rows if r.rule == rule])
              for rule, d in rule_verdicts(rows, base_width).items()]
    lr_panels(panels, path, span=0.4,
                   xlabel="weight decay (torch coefficient at the base width)")


@dataclass(frozen=True)
class WdSummary:
    """What the CLI prints and plots: the rows, the base width, the weight-decay-0 losses."""

    rows: list
    base_width: int
    no_decay: dict


def summarise(runs) -> WdSummary:
    """:class:`WdSummary` of a store's runs (failed ones left out)."""
    runs = [r for r in runs if r.status != "failed"]
    if not runs:
        raise AdvisorError("no finished or diverged runs to summarise")
    base = base_width_of(runs)
    return WdSummary(wd_rows(runs, base), base, no_decay_losses(runs))


def summary_lines(s: WdSummary) -> list[str]:
    """The summary's printed lines: the table and grid-edge notes."""
    from calibration.analyze.summary_cli import edge_note

    lines = [markdown_table(s.rows, s.base_width, s.no_decay).rstrip("\n")]
    for rule, d in rule_verdicts(s.rows, s.base_width).items():
        lines += edge_note(f"wd rule {rule}", "width(s)", d.edge)
    return lines
