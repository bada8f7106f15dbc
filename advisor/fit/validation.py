"""Held-out transfer validation, the pure part: which LRs to compare and how their gaps read.

``advisor validate`` trains one width at least 4x the largest calibrated width over an LR grid
around the recommendation and measures the loss each way of choosing the LR gives up against
the best LR measured there (calibration/analyze/validate.py trains; this module decides and
tabulates). All LRs here are in the calibration's convention: the muP **base-width** LR (``mup_base``; the hidden
matrices of a width-w model train at lr x base_width / w).

The ways of choosing (:func:`choices`):

- **law**: the fitted law set's LR at the held-out cell (under muP its LR law is in D only,
  so this is muP transfer plus the law's D dependence);
- **muP transfer alone**: the best grid LR of the same cell at the largest calibrated width,
  carried over unchanged (what muP promises);
- **SP-style transfer**: the same best LR kept as every group's *peak* LR, as one would in
  standard parameterisation (no 1/m on hidden matrices): base LR x m, m the width ratio of the
  held-out width to the largest calibrated one;
- **published law** (Step Law, Li et al. 2025, arXiv:2503.04715): its peak LR at the held-out
  model's N (non-embedding) and D, given to the hidden matrices: base LR = peak x width /
  base_width.

Units: LRs as above; losses in nats per token; gaps in nats and in percent of the best loss.
"""
from __future__ import annotations

import math

from advisor.errors import AdvisorError

GRID_STEPS = 2          # the grid: recommendation x 2^(k s), k = -GRID_STEPS .. GRID_STEPS
GRID_SPACING = 1.0      # s: octaves between neighbouring grid LRs
GOAL_GAP = 0.005        # the goal: the recommended LR's loss within 0.5% of the best measured


def best_lr(points: dict) -> tuple[float, float]:
    """(LR, loss) of the lowest finite loss in {lr: loss}; AdvisorError when none is finite."""
    finite = {lr: v for lr, v in points.items() if math.isfinite(v)}
    if not finite:
        raise AdvisorError("no finished run in this LR grid")
    lr = min(finite, key=finite.get)
    return lr, finite[lr]


def lr_grid(center: float, steps: int = GRID_STEPS,
            spacing: float = GRID_SPACING) -> list[float]:
    """``center`` x 2^(k spacing) for k = -steps .. steps (base LRs; spacing in octaves)."""
    if not (math.isfinite(center) and center > 0):
        raise AdvisorError(f"cannot centre an LR grid on {center!r}")
    if not (math.isfinite(spacing) and 0 < spacing <= 2):
        raise AdvisorError(f"the grid spacing must be in (0, 2] octaves, got {spacing!r}")
    return [center * 2.0 ** (k * spacing) for k in range(-steps, steps + 1)]


def seed_mean(losses: list[float]) -> float:
    """The loss of one LR measured with several seeds: their mean; a diverged seed (inf)
    makes the LR diverged; no seed measured: NaN (missing)."""
    if not losses or any(math.isnan(x) for x in losses):
        return math.nan
    if any(math.isinf(x) for x in losses):
        return math.inf
    return sum(losses) / len(losses)


def seed_noise(per_lr: dict) -> dict | None:
    """The seed-to-seed spread of the final loss at this width, from ``{lr: [loss per seed]}``
    (LRs with every seed finite and at least 2 seeds): the pooled within-LR standard deviation
    of one run's loss and the standard error of a seed mean, in nats; None without
    replicates. A gap smaller than about 2 standard errors of a difference is within noise."""
    sq, dof = 0.0, 0
    for losses in per_lr.values():
        if len(losses) < 2 or not all(math.isfinite(x) for x in losses):
            continue
        m = sum(losses) / len(losses)
        sq += sum((x - m) ** 2 for x in losses)
        dof += len(losses) - 1
    if dof == 0:
        return None
    sd = math.sqrt(sq / dof)
    n = max(len(v) for v in per_lr.values())
    return {"run_sd": sd, "mean_se": sd / math.sqrt(n), "seeds": n, "dof": dof,
            "gap_se": sd * math.sqrt(2.0 / n)}


def choices(law_lr: float, mup_best_lr: float, width: int, ref_width: int,
            base_width: int, published_peak: float | None) -> dict:
    """{name: base LR} of each way of choosing (see the module docstring)."""
    out = {"law (recommended)": law_lr,
           f"muP transfer alone (best at width {ref_width})": mup_best_lr,
           "SP-style transfer (same peak LR, no 1/m)": mup_best_lr * width / ref_width}
    if published_peak is not None:
        out["Step Law (published)"] = published_peak * width / base_width
    return out


def transfer_table(grid: dict, chosen: dict, chosen_losses: dict) -> list[dict]:
    """One row per way of choosing the LR: its LR, its measured loss, the gap to the best
    measured loss in nats and percent (``grid``: {lr: final held-out loss}, inf = diverged).
    The best is over every run at this width, the grid's and the choices' (a choice off the
    grid may beat it); it is the first row (gap 0 by definition)."""
    measured = dict(grid)
    for name, lr in chosen.items():
        if math.isfinite(chosen_losses.get(name, math.nan)):
            measured[lr] = chosen_losses[name]
    g_lr, g_loss = best_lr(measured)
    rows = [{"choice": "best measured", "lr": g_lr, "loss": g_loss, "gap": 0.0, "gap_pct": 0.0,
             "log2_lr_vs_best": 0.0}]
    for name, lr in chosen.items():
        loss = chosen_losses.get(name, math.nan)
        loss = loss if math.isfinite(loss) else math.inf
        rows.append({"choice": name, "lr": lr, "loss": loss, "gap": loss - g_loss,
                     "gap_pct": 100.0 * (loss - g_loss) / g_loss,
                     "log2_lr_vs_best": math.log2(lr / g_lr), "diverged": math.isinf(loss)})
    return rows


def markdown(rows: list[dict], header: str) -> str:
    out = [header, "", "| LR choice | base LR | held-out loss | gap to best measured | "
                       "LR / best (log2) |", "|---|---|---|---|---|"]
    for r in rows:
        loss = "diverged" if math.isinf(r["loss"]) else f"{r['loss']:.4f}"
        gap = ("inf" if math.isinf(r["gap"])
               else f"{r['gap']:+.4f} ({r.get('gap_pct', 0.0):+.2f}%)")
        out.append(f"| {r['choice']} | {r['lr']:.3g} | {loss} | {gap} | "
                   f"{r['log2_lr_vs_best']:+.2f} |")
    return "\n".join(out) + "\n"


def verdict(rows: list[dict], goal_gap: float = GOAL_GAP, noise: dict | None = None) -> dict:
    """Did the recommended LR meet the goal: within one factor of 2 of the best measured LR and
    a loss gap of at most ``goal_gap`` (relative)? With ``noise`` (:func:`seed_noise`) it also
    gives the gap in standard errors of a difference of two seed means (``gap_in_se``)."""
    rec = next(r for r in rows if r["choice"].startswith("law"))
    within_step = abs(rec["log2_lr_vs_best"]) <= 1.0 + 1e-9
    gap_ok = math.isfinite(rec["gap"]) and rec["gap_pct"] <= 100.0 * goal_gap
    out = {"lr_within_2x": bool(within_step), "gap_pct": rec["gap_pct"],
           "gap_within_goal": bool(gap_ok), "goal_gap_pct": 100.0 * goal_gap,
           "met": bool(within_step and gap_ok)}
    if noise is not None and noise["gap_se"] > 0 and math.isfinite(rec["gap"]):
        out["gap_in_se"] = rec["gap"] / noise["gap_se"]
    return out
