"""The output log-partition over training, with and without z-loss: does z-loss keep it near 0?

Wortsman et al. 2023 (arXiv 2309.14322, section 3.1.2), after Chowdhery et al. 2022: the
log-partition log Z = logsumexp(output logits) of a token is invisible to the cross-entropy
(a common shift of the logits leaves every probability unchanged), so nothing but weight decay
holds it, and late in long high-LR runs the logits drift until the loss diverges; an auxiliary
z-loss c (log Z)^2 (c = 1e-4) keeps log Z near 0. This summary reads a sweep such as
``recipes/plans/cpu-zloss.yaml`` (z-loss coefficients, including 0, at a few LRs and widths,
the ``stab.lse_mean`` probe at every evaluation) and reports, per (LR, width, coefficient),
seed means of:

* log Z at the first and the last probe, and the last minus the z = 0 runs' (same LR, width,
  seed): what the z-loss moved;
* the **late trend** of log Z (``advisor.fit.stability.late_trend``: slope over the second
  half of the run, pooled over seeds, with its 95% interval) in nats per 1000 steps;
* whether log Z ends **near 0** (|log Z| <= :data:`NEAR_ZERO` nat) and the final held-out loss
  (what the z-loss cost).

    advisor results runs/cpu-zloss --by zloss --plot docs/figures/zloss_cpu.png \\
        --format json > docs/results/zloss_cpu.json

Units: log Z in nats; steps in optimizer steps; LRs are peak LRs; losses in nats per token.
"""
from __future__ import annotations

import math
from collections import defaultdict

from advisor.errors import AdvisorError
from advisor.fit.stability import late_trend
from advisor.runs.stability_data import Trajectory, lse_trajectories
from calibration.analyze.lr_transfer import pow2

SCHEMA = "hp-advisor/zloss-trajectory/v1"
NEAR_ZERO = 1.0           # nats: |log Z| at or below this counts as "near 0"
LATE_FRACTION = 0.5       # the late trend is fitted from this fraction of the run on


def _mean(xs):
    xs = [x for x in xs if math.isfinite(x)]
    return sum(xs) / len(xs) if xs else math.nan


def _mean_curve(trajs: list[Trajectory]):
    """(steps every trajectory has, seed-mean lse_mean at each)."""
    common = set(trajs[0].steps)
    for t in trajs[1:]:
        common &= set(t.steps)
    steps = sorted(common)
    return steps, [_mean([t.lse_mean[t.steps.index(s)] for t in trajs]) for s in steps]


def summarise(trajs: list[Trajectory]) -> dict:
    """Per (LR, width, z-loss) cell the numbers of the module docstring, and per coefficient
    the means over cells. Diverged runs are counted, not averaged."""
    cells = defaultdict(list)
    for t in trajs:
        cells[(t.lr, t.width, t.z_loss)].append(t)
    final_of = {(t.lr, t.width, t.z_loss, t.seed): t.lse_mean[-1] for t in trajs
                if t.status == "finished" and t.lse_mean}
    rows = []
    for (lr, w, z), ts in sorted(cells.items()):
        ok = [t for t in ts if t.status == "finished" and t.steps]
        row = {"lr": lr, "width": w, "z_loss": z, "seeds": sorted(t.seed for t in ok),
               "diverged": sum(t.status == "diverged" for t in ts)}
        if not ok:
            rows.append(row)
            continue
        steps, curve = _mean_curve(ok)
        last = max(steps)
        tr = late_trend([(s, v) for t in ok for s, v in zip(t.steps, t.lse_mean)],
                        int(math.ceil(LATE_FRACTION * last)))
        gaps = [final_of[(lr, w, z, t.seed)] - final_of[(lr, w, 0.0, t.seed)] for t in ok
                if (lr, w, 0.0, t.seed) in final_of] if z > 0 else []
        row.update({
            "steps": steps, "lse_mean": curve,
            "per_seed": [{"seed": t.seed, "steps": t.steps, "lse_mean": t.lse_mean} for t in ok],
            "first": curve[0], "final": curve[-1], "final_step": last,
            "change_vs_off": _mean(gaps) if gaps else None,
            "near_zero": abs(curve[-1]) <= NEAR_ZERO,
            "trend": None if tr is None else {
                "rate_per_1k_steps": tr.rate, "half_width_95": tr.rate_half_width,
                "from_step": tr.from_step, "to_step": tr.to_step, "direction": tr.direction()},
            "loss": _mean([t.loss for t in ok]),
        })
        rows.append(row)
    per_z = {}
    for z in sorted({r["z_loss"] for r in rows}):
        rs = [r for r in rows if r["z_loss"] == z and "final" in r]
        if not rs:
            continue
        per_z[f"{z:g}"] = {
            "cells": len(rs), "final_mean": _mean([r["final"] for r in rs]),
            "final_range": [min(r["final"] for r in rs), max(r["final"] for r in rs)],
            "change_vs_off_mean": (_mean([r["change_vs_off"] for r in rs])
                                   if z > 0 and all(r["change_vs_off"] is not None for r in rs)
                                   else None),
            "rate_mean": _mean([r["trend"]["rate_per_1k_steps"] for r in rs if r["trend"]]),
            "near_zero": sum(r["near_zero"] for r in rs),
            "loss_mean": _mean([r["loss"] for r in rs]),
        }
    return {"schema": SCHEMA, "near_zero_nats": NEAR_ZERO, "late_fraction": LATE_FRACTION,
            "rows": rows, "per_z_loss": per_z}


def build(store) -> dict:
    """The summary of a results store's runs (:func:`summarise` of their trajectories)."""
    return summarise(lse_trajectories(store))


def summary_json(s: dict) -> str:
    """The summary as strict JSON (a non-finite number is null: ``advisor.common.yamlio``)."""
    from advisor.common.yamlio import json_text

    return json_text(s, indent=1)


def _f(x, fmt="{:.2f}"):
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else fmt.format(x)


def tables(s: dict) -> str:
    """Markdown: one row per (LR, width, coefficient), then the per-coefficient means."""
    from advisor.common.outputs import md_table

    rows = []
    for r in s["rows"]:
        if "final" not in r:
            rows.append([pow2(r["lr"]), r["width"], f"{r['z_loss']:g}", 0,
                         f"all {r['diverged']} diverged", "", "", "", ""])
            continue
        tr = r["trend"]
        trend = "-" if tr is None else (f"{tr['rate_per_1k_steps']:+.2f} +- "
                                        f"{tr['half_width_95']:.2f} ({tr['direction']})")
        rows.append([pow2(r["lr"]), r["width"], f"{r['z_loss']:g}", len(r["seeds"]),
                     f"{r['first']:.2f} -> {r['final']:.2f} (step {r['final_step']})",
                     _f(r["change_vs_off"], "{:+.2f}"), trend,
                     "yes" if r["near_zero"] else "no", f"{r['loss']:.3f}"])
    means = [[z, v["cells"], f"{v['final_mean']:.2f} [{v['final_range'][0]:.2f}, "
              f"{v['final_range'][1]:.2f}]", _f(v["change_vs_off_mean"], "{:+.2f}"),
              _f(v["rate_mean"], "{:+.2f}"), f"{v['near_zero']}/{v['cells']}",
              f"{v['loss_mean']:.3f}"] for z, v in s["per_z_loss"].items()]
    return (md_table(["LR", "width", "z-loss", "seeds", "log Z first -> last",
                      "minus z-loss off", "late trend (nats / 1000 steps, 95%)", "near 0",
                      "final loss"], rows) + "\n"
            + md_table(["z-loss", "cells", "mean last log Z [range]", "mean minus off",
                        "mean late trend", "cells near 0", "mean final loss"], means))


def lines(s: dict) -> list[str]:
    """The printed summary, line by line."""
    return tables(s).splitlines()


def plot(s: dict, path) -> None:
    """log Z against step: one panel per (LR, width), one line per coefficient (seed mean,
    seeds thin), via the plotting module."""
    from advisor.cli.plots import log_partition_trajectories

    panels = []
    for lr in sorted({r["lr"] for r in s["rows"]}):
        for w in sorted({r["width"] for r in s["rows"]}):
            series = [{"label": "off" if r["z_loss"] == 0 else f"z-loss {r['z_loss']:g}",
                       "steps": r["steps"], "values": r["lse_mean"],
                       "seeds": [(p["steps"], p["lse_mean"]) for p in r["per_seed"]]}
                      for r in s["rows"] if r["lr"] == lr and r["width"] == w and "final" in r]
            if series:
                panels.append({"title": f"LR {pow2(lr)}, width {w}", "series": series})
    if not panels:
        raise AdvisorError("no finished run with log-partition probes to plot")
    log_partition_trajectories(panels, path, near_zero=s["near_zero_nats"])
