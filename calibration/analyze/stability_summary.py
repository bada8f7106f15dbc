"""Stability sweep summary: LR sensitivity, largest stable LR and its width law, attention-logit
growth, log-partition and the AdamW-epsilon ratio, per arm, from a results store.

Reads a store made by a plan such as ``recipes/plans/cpu-stability.yaml`` (runs with the
stability probes of ``calibration.train.stability_probe``). An **arm** is what a run changes from the
base setup (SP, no QK-norm, no z-loss, the most common warmup, AdamW decay lr_t x wd):
"qk_norm", "z_loss 0.0001", "warmup 80", "indep_wd", "mup", or "base". Definitions (LR
sensitivity, unstable, largest stable LR) are ``advisor.fit.stability``'s; l0 = ln(vocab) (the
loss of a uniform prediction; it caps only diverged or worse-than-uniform runs) and l_cf = the
held-out unigram cross-entropy under the training data's byte frequencies (the loss of a model
that ignores context; :func:`context_free_loss`).

Outputs, through ``advisor results DIR --by stability`` (``calibration.analyze.by``):
Markdown tables, with ``--format json`` the summary that ``advisor recommend
--stability-sweep`` reads (per-arm width laws of the largest stable LR and of the max
attention logit), with ``--plot`` a PNG (``advisor.cli.plots.stability_sweep``: loss vs LR
per arm, one line per width, unstable points crossed).

    advisor results runs/cpu-stability --by stability --plot stability.png \\
        --format json > stability.json

Units: LRs are peak LRs (base LRs for the muP arm); losses in nats per token (here bytes);
widths in channels; slopes in log2 units (octaves per doubling of width).
"""
from __future__ import annotations

import math
from collections import defaultdict

from advisor.errors import AdvisorError
from advisor.runs.stability_data import Point, attn_max as _attn_max, points_from_store
from calibration.analyze.lr_transfer import pow2
from advisor.fit.stability import (fit_line, fit_linear, instability_level, lr_sensitivity,
                                   stability_edge)

SCHEMA = "hp-advisor/stability-sweep/v1"
EPS_BITE_RATIO = 10.0      # grad RMS / eps below which eps shrinks Adam's update by >= ~9%
MAX_BITE_WIDTH = 1e7       # a line's crossing beyond this width is reported as "not before"


def context_free_loss(data) -> float:
    """Held-out cross-entropy (nats/token) of the training data's unigram distribution (add-one
    smoothed): what a model that ignores context reaches."""
    import numpy as np

    counts = np.bincount(np.asarray(data.train), minlength=data.vocab_size).astype(float) + 1.0
    logp = np.log(counts / counts.sum())
    val = np.bincount(np.asarray(data.val), minlength=data.vocab_size).astype(float)
    return float(-(val * logp).sum() / val.sum())


def _curve(points) -> tuple:
    by_lr = defaultdict(list)
    for p in points:
        by_lr[p.lr].append(p.loss)
    return tuple((lr, (sum(v) / len(v)) if all(math.isfinite(x) for x in v) else math.inf)
                 for lr, v in sorted(by_lr.items()))


def summarise(points: list[Point], context_free: float, loss_init: float,
              heldout_width: int | None = None) -> dict:
    """Everything the tables, plot and JSON show (see the module docstring).

    ``heldout_width``: a width left out of each arm's largest-stable-LR fit and predicted
    (default: the largest width of the base arm when it has 4 or more widths)."""
    cells = defaultdict(list)
    for p in points:
        cells[(p.arm, p.width, p.seed)].append(p)
    arms = sorted({p.arm for p in points}, key=lambda a: (a != "base", a))
    lrs_common = None              # the LR grid every (arm, width) has: sensitivities compare
    for key in {(p.arm, p.width) for p in points}:
        s = {p.lr for p in points if (p.arm, p.width) == key}
        lrs_common = s if lrs_common is None else lrs_common & s
    out = {"schema": SCHEMA, "context_free_loss": context_free, "loss_init": loss_init,
           "sensitivity_lrs": sorted(lrs_common), "arms": {}}
    for arm in arms:
        widths = sorted({p.width for p in points if p.arm == arm})
        rows = []
        for w in widths:
            seeds = sorted({p.seed for p in points if p.arm == arm and p.width == w})
            mean_curve = _curve([p for p in points if p.arm == arm and p.width == w])
            finite = [y for _, y in mean_curve if math.isfinite(y)]
            best = min(finite) if finite else math.nan
            level = instability_level(best, context_free)
            per_seed = []
            for s in seeds:
                c = _curve(cells[(arm, w, s)])
                sc = tuple(pt for pt in c if pt[0] in lrs_common)
                e = stability_edge(c, instability_level(min(y for _, y in c if math.isfinite(y)),
                                                        context_free))
                per_seed.append({"seed": s, "sensitivity": lr_sensitivity(sc, loss_init),
                                 "crossing": e.crossing, "first_unstable": e.first_unstable,
                                 "censored": e.censored})
            edge = stability_edge(mean_curve, level)
            unstable = {lr for lr, y in mean_curve if not math.isfinite(y) or y > level}
            rows.append({
                "width": w, "seeds": seeds, "curve": mean_curve, "best_loss": best,
                "best_lr": min(mean_curve, key=lambda q: q[1])[0] if finite else math.nan,
                "level": level, "unstable_lrs": sorted(unstable),
                "first_unstable": edge.first_unstable, "crossing": edge.crossing,
                "censored": edge.censored, "per_seed": per_seed,
                "sensitivity": _mean([d["sensitivity"] for d in per_seed]),
                "attn": {lr: _geo([_attn_max(p) for p in points if p.arm == arm and
                                   p.width == w and p.lr == lr]) for lr, _ in mean_curve},
                "lse_mean": {lr: _mean([p.probes.get("stab.lse_mean", math.nan) for p in points
                                        if p.arm == arm and p.width == w and p.lr == lr])
                             for lr, _ in mean_curve},
                "eps_ratio": _eps_ratios([p for p in points if p.arm == arm and p.width == w]),
                "diverged": sum(1 for p in points if p.arm == arm and p.width == w
                                and not math.isfinite(p.loss)),
                "runs": sum(1 for p in points if p.arm == arm and p.width == w),
            })
        out["arms"][arm] = {"widths": widths, "rows": rows,
                            "law": _stable_law(rows, heldout_width if arm == "base" else None),
                            "attn_growth": _attn_growth(points, arm),
                            "eps_trend": _eps_trend(rows)}
    return out


def _mean(v):
    v = [x for x in v if math.isfinite(x)]
    return sum(v) / len(v) if v else math.nan


def _geo(v):
    v = [x for x in v if math.isfinite(x) and x > 0]
    return 2 ** (sum(math.log2(x) for x in v) / len(v)) if v else math.nan


def _eps_ratios(points) -> dict:
    """{group: geometric mean over the finished runs of grad RMS / eps} at the last probe."""
    out = defaultdict(list)
    for p in points:
        for n, v in p.probes.items():
            if n.startswith("stab.grad_rms."):
                g = n[len("stab.grad_rms."):]
                eps = p.probes.get(f"stab.eps.{g}")
                if eps and v > 0:
                    out[g].append(v / eps)
    return {g: _geo(v) for g, v in sorted(out.items())}


def _eps_trend(rows) -> dict:
    """{group: {slope of log2(grad RMS / eps) on log2 width, width where the ratio would reach
    EPS_BITE_RATIO on that line (inf when it does not fall, or only beyond MAX_BITE_WIDTH)}}
    over the rows' widths (at least 3)."""
    out = {}
    groups = sorted({g for r in rows for g in r["eps_ratio"]})
    for g in groups:
        pts = [(math.log2(r["width"]), math.log2(r["eps_ratio"][g])) for r in rows
               if math.isfinite(r["eps_ratio"].get(g, math.nan))]
        if len({x for x, _ in pts}) < 3:
            continue
        line = fit_line([x for x, _ in pts], [y for _, y in pts])
        x = (math.log2(EPS_BITE_RATIO) - line.a) / line.b if line.b < 0 else math.inf
        bite = 2 ** x if x <= math.log2(MAX_BITE_WIDTH) else math.inf
        out[g] = {"slope": line.b, "bite_width": bite}
    return out


def _stable_law(rows, heldout: int | None) -> dict:
    """log2 largest stable LR = a + b log2 width over seeds' crossings; with ``heldout``, also
    fitted without that width and checked against its observed crossing."""
    pts = [(math.log2(r["width"]), math.log2(d["crossing"])) for r in rows for d in r["per_seed"]
           if not d["censored"] and math.isfinite(d["crossing"])]
    censored = [r["width"] for r in rows if any(d["censored"] for d in r["per_seed"])]
    law = {"censored_widths": censored, "points": len(pts)}
    if len({x for x, _ in pts}) >= 2:
        line = fit_line([x for x, _ in pts], [y for _, y in pts])
        law["line"] = line.to_dict()
        law["slope"] = line.b
    if heldout is not None:
        train = [(x, y) for x, y in pts if x != math.log2(heldout)]
        test = [y for x, y in pts if x == math.log2(heldout)]
        if len({x for x, _ in train}) >= 2 and test:
            line = fit_line([x for x, _ in train], [y for _, y in train])
            pred, half = line.predict(math.log2(heldout))
            obs = sum(test) / len(test)
            row = next(r for r in rows if r["width"] == heldout)
            grid = [lr for lr, _ in row["curve"]]
            pred_first = next((lr for lr in grid if math.log2(lr) > pred), math.nan)
            law["heldout"] = {
                "width": heldout, "fit_widths": sorted({int(round(2 ** x)) for x, _ in train}),
                "slope": line.b, "predicted_log2": pred, "half_width_95": half,
                "observed_log2": obs, "error_octaves": pred - obs,
                "predicted_first_unstable": pred_first,
                "observed_first_unstable": row["first_unstable"],
                "within_one_grid_step": abs(pred - obs) <= 1.0}
    return law


def _attn_growth(points, arm) -> dict:
    """Max attention logit against width and LR over the arm's finished runs: the joint fit
    log2 attn = c + e_w log2 width + e_lr log2 lr, and the width slope at each LR."""
    pts = [p for p in points if p.arm == arm and math.isfinite(p.loss)
           and math.isfinite(_attn_max(p)) and _attn_max(p) > 0]
    out = {"per_lr_slope": {}}
    if len({p.width for p in pts}) >= 2 and len({p.lr for p in pts}) >= 2 and len(pts) > 4:
        line = fit_linear([(math.log2(p.width), math.log2(p.lr)) for p in pts],
                          [math.log2(_attn_max(p)) for p in pts])
        out["joint"] = line.to_dict()
    for lr in sorted({p.lr for p in pts}):
        sub = [p for p in pts if p.lr == lr]
        if len({p.width for p in sub}) >= 2:
            line = fit_line([math.log2(p.width) for p in sub], [math.log2(_attn_max(p)) for p in sub])
            out["per_lr_slope"][lr] = {"slope": line.b, "widths": sorted({p.width for p in sub})}
    return out


# --------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------

def _p2(lr: float) -> str:
    return pow2(lr, fractional=True)


def tables(summary: dict) -> str:
    """The Markdown tables of a summary."""
    grid = summary["sensitivity_lrs"]
    lines = [f"l_cf (context-free loss) = {summary['context_free_loss']:.3f}, "
             f"l0 (loss at init) = {summary['loss_init']:.3f} nats; LR sensitivity over "
             f"{_p2(grid[0])}..{_p2(grid[-1])} ({len(grid)} LRs, the grid every row has)", "",
             "| arm | width | seeds | best LR, loss | LR sensitivity (seed mean) | largest stable LR "
             "(seeds) | first unstable LR | diverged runs | max attn logit at best LR | log Z at "
             "best LR |", "|---|---|---|---|---|---|---|---|---|---|"]
    for arm, a in summary["arms"].items():
        for r in a["rows"]:
            crossings = ", ".join("> top" if d["censored"] else _p2(d["crossing"])
                                  for d in r["per_seed"])
            attn = r["attn"].get(r["best_lr"], math.nan)
            lse = r["lse_mean"].get(r["best_lr"], math.nan)
            lines.append(f"| {arm} | {r['width']} | {len(r['seeds'])} | {_p2(r['best_lr'])}, "
                         f"{r['best_loss']:.3f} | {r['sensitivity']:.3f} | {crossings} | "
                         f"{_p2(r['first_unstable'])} | {r['diverged']}/{r['runs']} | {attn:.3g} | "
                         f"{lse:.2f} |")
    lines += ["", "| arm | largest stable LR law (log2 LR per doubling of width) | held-out "
              "check |", "|---|---|---|"]
    for arm, a in summary["arms"].items():
        law = a["law"]
        slope = f"{law['slope']:+.2f}" if "slope" in law else "not fitted"
        if law.get("censored_widths"):
            slope += f" (no instability in the grid at width {law['censored_widths']})"
        h = law.get("heldout")
        check = "-" if not h else (
            f"width {h['width']} from {h['fit_widths']}: predicted {_p2(2 ** h['predicted_log2'])}"
            f" (+-{h['half_width_95']:.2f} oct), observed {_p2(2 ** h['observed_log2'])}; error "
            f"{h['error_octaves']:+.2f} octaves -> "
            f"{'within' if h['within_one_grid_step'] else 'NOT within'} one grid step")
        lines.append(f"| {arm} | {slope} | {check} |")
    lines += ["", "| arm | max attn logit slope vs width at each LR (log2 per doubling) | joint "
              "fit: e_width, e_lr |", "|---|---|---|"]
    for arm, a in summary["arms"].items():
        g = a["attn_growth"]
        per = ", ".join(f"{_p2(float(lr))}: {d['slope']:+.2f}"
                        for lr, d in sorted(g["per_lr_slope"].items(), key=lambda kv: float(kv[0])))
        joint = g.get("joint")
        jt = f"{joint['coef'][1]:+.2f}, {joint['coef'][2]:+.2f}" if joint else "-"
        lines.append(f"| {arm} | {per or '-'} | {jt} |")
    lines += ["", "| arm | width | grad RMS / eps per group (geometric mean over runs) |",
              "|---|---|---|"]
    for arm, a in summary["arms"].items():
        for r in a["rows"]:
            lines.append(f"| {arm} | {r['width']} | " + ", ".join(
                f"{g} {v:.3g}" for g, v in r["eps_ratio"].items()) + " |")
    lines += ["", f"| arm | grad RMS / eps: slope per doubling of width (log2), and the width "
              f"where the line reaches {EPS_BITE_RATIO:g} |", "|---|---|"]
    for arm, a in summary["arms"].items():
        if a["eps_trend"]:
            lines.append(f"| {arm} | " + ", ".join(
                f"{g} {t['slope']:+.2f} ({_bite(t['bite_width'])})"
                for g, t in a["eps_trend"].items()) + " |")
    return "\n".join(lines) + "\n"


def _bite(width: float) -> str:
    return (f"not before width {MAX_BITE_WIDTH:.0e}" if not math.isfinite(width)
            else f"width {width:.2g}")


def summary_json(summary: dict) -> str:
    """The JSON ``advisor recommend --stability-sweep`` reads (non-finite numbers -> null)."""
    from advisor.common.yamlio import json_text
    return json_text(summary, indent=1)


def build(store, heldout_width: int | None = None) -> dict:
    """The summary of a results store's stability sweep (:func:`summarise`): its runs as
    points, l_cf and l0 from the one data set they trained on. ``heldout_width`` defaults to
    the largest width of the base arm where it has 4 or more widths."""
    from calibration.train.data import load_data

    pts = points_from_store(store)
    datas = {r.settings.get("data", "stdlib") for r in store.runs()}
    if len(datas) != 1:
        raise AdvisorError(f"runs on {len(datas)} data sets; summarise one at a time")
    data = load_data(datas.pop())
    if heldout_width is None:
        base_w = sorted({p.width for p in pts if p.arm == "base"})
        heldout_width = base_w[-1] if len(base_w) >= 4 else None
    return summarise(pts, context_free_loss(data), math.log(data.vocab_size), heldout_width)


def lines(summary: dict) -> list[str]:
    """The printed lines of a summary: its Markdown tables."""
    return tables(summary).splitlines()


def plot(summary: dict, path) -> None:
    """The summary's figure (``advisor.cli.plots.stability_sweep``)."""
    from advisor.cli.plots import stability_sweep

    stability_sweep(summary, path)
