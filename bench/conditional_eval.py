"""The LR given the user's batch, judged on tuned optima held out by setup (CPU, ~40 s).

    python -m bench.conditional_eval [--external ../shared/data/external] [--write | --check]

(40 s of CPU on 2026-12-06, a 2-core shared machine: the surface ensemble's six fits.)

1. Fits the loss surface over (ln lr, ln B) on Step Law's grid (advisor/fit/surface.py, the
   ensemble `advisor fit` uses) and reads its ridge: the best LR at each batch offset from
   the optimum (advisor/fit/ridge.py), with the local slope per regime and the published rule
   it follows; the grid's own per-batch optima (parabola vertices) are the check.
2. Takes every tuned optimum (Wen et al. 2025's Marin sweep: recipes/published/configs.yaml,
   kind tuned_optimum; Step Law's grid: each cell's best run) at its own batch, tokens and
   sequence length, and for every shipped law and the law of optima (advisor/optima_law.py)
   predicts its LR unconditioned (at the law's own batch) and conditioned (moved along the
   ridge to the optimum's batch), leaving each setup out: the law of optima is refitted
   without it, the ridge is the square-root rule when Step Law's grid is the one left out
   (the ridge comes from it), and the 80% interval's spread comes from the training setups.
3. Prints the table of README / docs/conditional.md (median |log2 error|, 80% coverage, median
   80% width), and with --write writes recipes/laws/optima-fit.yaml,
   recipes/published/conditioning.yaml and docs/conditional_eval.json (what
   tests/test_conditional.py recomputes).
"""
from __future__ import annotations

import json
import math
from dataclasses import replace
from functools import partial
from pathlib import Path

from advisor.fit import evidence as ev
from advisor.fit import optima_law as ol
from advisor.laws.lawset import lawset_text, load_lawset, load_shipped
from advisor.laws.published import load_published
from advisor.recommendation.conditional import SCHEMA
from advisor.recommendation.core import DEFAULT_LOSS_LAW, law_table
from advisor.rules.lr_batch_rules import Z80
from bench import shipped

REPO = Path(__file__).resolve().parents[1]

LAWS = ("step-law", "deepseek-llm", "porian", "minicpm", "kaplan", "evidence-fit")
OPTIMA_LAW = "optima-fit"


def surface_and_ridge(csv_path):
    """(ridge dict with knots, median offsets and regime slopes; the grid-vertex check)."""
    import numpy as np
    from advisor.fit import ridge as rd
    from advisor.fit.surface import SurfaceOptions, ensemble_options, fit_surface
    from advisor.runs.table import load_runs
    table = load_runs(csv_path)
    idx, fin = table.cell_index, table.finished
    X = np.column_stack([np.log(table.lr[fin]), np.log(table.batch_tokens[fin])])
    cN = np.log([c[0] for c in table.cells])
    cD = np.log([c[1] for c in table.cells])
    fits = [fit_surface(X, idx[fin], cN, cD, table.loss[fin],
                        ("learning_rate", "batch_size"), options=o)
            for o in ensemble_options(SurfaceOptions())]
    ridge = rd.surface_ridge(fits, table.cells)
    regimes = rd.regime_slopes(ridge["knots_oct"], ridge["median"])
    # the check: per cell, the grid's best LR at each batch, relative to the cell's best run
    cells = ev.steplaw_cells(csv_path)
    opt = rd.grid_conditional_optima(cells)
    pairs = []
    for c in cells:
        best = min(c["runs"], key=lambda r: r["loss"])
        for o in opt:
            if o["n"] == c["n"] and o["d"] == c["d"]:
                pairs.append((math.log2(o["batch"] / best["batch"]),
                              math.log2(o["lr"] / best["lr"])))
    grid_regimes = []
    for name, lo, hi in (("small batch: B < B*/2", -9, -1.0), ("near the optimum", -1.0, 1.0),
                         ("large batch: B > 2 B*", 1.0, 9)):
        sel = [(u, g) for u, g in pairs if lo <= u <= hi]
        if len(sel) >= 3:
            s = float(np.polyfit([u for u, _ in sel], [g for _, g in sel], 1)[0])
            grid_regimes.append({"regime": name, "slope": round(s, 3), "points": len(sel),
                                 "rule": rd.rule_for_slope(s)})
    shipped = rd.join_grid_slopes(ridge["knots_oct"], ridge["median"], grid_regimes,
                                  rd.SURFACE_SUPPORT_OCT)
    return ({"knots_oct": ridge["knots_oct"], "lr_offset_oct": shipped,
             "surface_lr_offset_oct": ridge["median"],
             "regimes": rd.regime_slopes(ridge["knots_oct"], shipped),
             "surface_regimes": regimes, "grid_pairs": pairs}, grid_regimes, table)


def tuned_points(csv_path):
    """Every tuned optimum: Marin's (configs.yaml) and each Step Law cell's best run."""
    from bench.trust_evidence import shape_of
    marin = [p for p in ev.published_points(load_published()) if p.kind == "tuned_optimum"]
    cells = ev.steplaw_cells(csv_path)
    runs = {p.id: c["runs"] for p, c in zip(ev.steplaw_points(cells), cells)}
    grid = [replace(p, shape=shape_of(p, runs[p.id])) for p in ev.steplaw_points(cells)]
    return marin + grid, runs


def shipped_predictions(points, cell_runs):
    """{law: ({id: lr}, {id: batch tokens or None})} of the shipped law sets at each point."""
    from bench.trust_evidence import shape_of
    loss_ls = load_lawset(DEFAULT_LOSS_LAW)
    sets = [s for s in load_shipped() if s.name in LAWS]
    out = {s.name: ({}, {}) for s in sets}
    for p in points:
        shape = shape_of(p, cell_runs.get(p.id))
        loss = loss_ls.predict("loss", shape.params_total, p.d)
        for row in law_table(shape, p.d, p.seq_len, loss=loss, sets=sets):
            if row["learning_rate"]:
                out[row["law"]][0][p.id] = row["learning_rate"]
                out[row["law"]][1][p.id] = row["batch_size_tokens"]
    return out


def evaluate(points, ridge, preds):
    """{law: held-out result} for the law of optima and every shipped law (see module doc)."""
    def ridge_for(held):
        return ol.SQRT_RIDGE if held == "steplaw" else ridge

    full = ol.fit_optima_law(points, ridge)

    def fallback_batch(p):
        return ev.power_law_value(full["batch"], p.n, p.d)

    makers = {OPTIMA_LAW: (ol.optima_law_fn, points),
              f"{OPTIMA_LAW}, N form": (partial(ol.optima_law_fn, lr_var="N"), points)}
    for name in LAWS:
        vals, bats = preds[name]
        makers[name] = (ol.fixed_law_fn(vals, bats, fallback_batch),
                        [p for p in points if p.id in vals])
    results = {}
    for name, (make, pts) in makers.items():
        results[name] = ol.held_out(pts, make, ridge_for)
        # what recommend ships: the same construction with every setup as training
        results[name]["runtime_sd"] = ol.spread(make(pts, ridge), pts)
    batch_errors = {OPTIMA_LAW: ol.held_out_batch(points, ol.optima_batch_of)}
    for name in LAWS:
        bats = preds[name][1]
        batch_errors[name] = ol.held_out_batch(
            [p for p in points if bats.get(p.id)], lambda train, b=bats: (lambda p: b[p.id]))
    for name, res in results.items():
        res["batch_errors"] = batch_errors.get(name, batch_errors[OPTIMA_LAW]
                                               if name.startswith(OPTIMA_LAW) else {})
    return results, full


def by_setup(res, points):
    out = {}
    for g in sorted({p.group for p in points}):
        ids = {p.id for p in points if p.group == g}
        out[g] = {m: ol.summarise({i: e for i, e in res[m]["errors"].items() if i in ids},
                                  {i: s for i, s in res[m]["sds"].items() if i in ids})
                  for m in ("conditioned", "unconditioned")}
    return out


def _cell(s):
    if not s.get("n"):
        return "-"
    return (f"{s['median_abs_log2_error']:.2f} / {100 * s['coverage_80']:.0f}% / "
            f"{s['median_width_80']:.1f}x")


def print_table(results, points, ridge, grid_regimes):
    print("Ridge of the Step Law surface (LR offset, octaves, at batch offsets, octaves):")
    print("  " + "  ".join(f"{k:+.1f}:{g:+.2f}" for k, g in zip(ridge["knots_oct"],
                                                              ridge["surface_lr_offset_oct"])))
    for r in ridge["surface_regimes"]:
        print(f"  surface {r['regime']}: slope {r['slope']:+.2f} ({r['rule']})")
    print("Shipped ridge (surface within +-2 octaves, the grid's per-batch optima beyond):")
    print("  " + "  ".join(f"{k:+.1f}:{g:+.2f}" for k, g in zip(ridge["knots_oct"],
                                                              ridge["lr_offset_oct"])))
    for r in ridge["regimes"]:
        print(f"  shipped {r['regime']}: slope {r['slope']:+.2f} ({r['rule']})")
    for r in grid_regimes:
        print(f"  grid vertices {r['regime']}: slope {r['slope']:+.2f} ({r['rule']}, "
              f"{r['points']} points)")
    n = len(points)
    print(f"\nHeld out by setup, {n} tuned optima at their own batch "
          "(median |log2 error| / 80% coverage / median 80% width):\n")
    print("| law | conditioned on the batch | unconditioned | conditioned, Marin | "
          "conditioned, Step Law grid |")
    print("|---|---|---|---|---|")
    for name, res in results.items():
        setups = by_setup(res, points)
        print(f"| {name} | {_cell(res['conditioned']['summary'])} | "
              f"{_cell(res['unconditioned']['summary'])} | "
              f"{_cell(setups.get('marin', {}).get('conditioned', {}))} | "
              f"{_cell(setups.get('steplaw', {}).get('conditioned', {}))} |")
    print("\nBatch, held out by setup: median |log2 error| (n)")
    for name, res in results.items():
        e = res.get("batch_errors") or {}
        if e:
            med = sorted(abs(x) for x in e.values())[len(e) // 2]
            print(f"  {name}: {med:.2f} ({len(e)})")


def shipped_sd(res, mode, points):
    """RMS (ln) of held-out errors, each setup weighted equally (the batch's runtime spread)."""
    groups = {p.id: p.group for p in points}
    errs = res["batch_errors"] if mode == "batch" else res[mode]["errors"]
    if not errs:
        return None
    per = {}
    for i, e in errs.items():
        per.setdefault(groups[i], []).append((e * math.log(2.0)) ** 2)
    return math.sqrt(sum(sum(v) / len(v) for v in per.values()) / len(per))


def optima_lawset(full, points):
    ws = [ol.width(p) for p in points]
    ns = [p.n for p in points]
    ds = [p.d for p in points]
    rng = {"N": [min(ns), max(ns)], "D": [min(ds), max(ds)]}

    def law(coef, unit, note):
        lnc, a, b = coef
        first = "W" if coef is full["lr"] else "N"
        r = {"W": [min(ws), max(ws)], "D": rng["D"]} if first == "W" else rng
        return {"form": "power_law", "coefficient": float(f"{math.exp(lnc):.5g}"),
                "exponents": {first: round(a, 4), "D": round(b, 4)}, "unit": unit,
                "fitted_range": r, "note": note}

    groups = sorted({p.group for p in points})
    return {
        "schema": "hp-advisor/lawset/v1", "name": OPTIMA_LAW,
        "title": "Laws of optima: tuned optima only, the LR moved along the Step Law ridge",
        "source": {"citation": "this repository: bench/conditional_eval.py on the tuned optima "
                               "of recipes/published/configs.yaml (Wen et al. 2025) and the "
                               "Step Law grid (Li et al. 2025)", "url": "docs/conditional.md",
                   "checked": "refit by `python -m bench.conditional_eval --write`; "
                              "tests/test_conditional.py checks the constants"},
        "conventions": {"params": "non_embedding", "compute": "6ND", "batch_unit": "tokens",
                        "weight_decay": "coupled",
                        "schedule": "mixed: to 0 (Marin), cosine to 1e-5 (Step Law)"},
        "laws": {
            "learning_rate": law(full["lr"], "peak LR", (
                "the LR optimum at the batch law's B*, in the width W = d_model (channels) "
                f"and D: least squares on ln lr over "
                f"{len(points)} tuned optima of {len(groups)} setups, each setup weighted "
                "equally, each optimum's LR first moved along the ridge from its own batch "
                "to B* (recipes/published/conditioning.yaml)")),
            "batch_size": law(full["batch"], "tokens", (
                f"least squares on ln batch over the same {len(points)} tuned optima, each "
                "setup weighted equally")),
        },
        "provenance": {"setups": groups, "points": len(points),
                       "command": "python -m bench.conditional_eval --write"},
        "notes": ("Only tuned optima enter (no published choices); published configurations "
                  "stay beside the answer as practice (published_nearest)."),
    }


def render_files(ridge, grid_regimes, results, full, points, batches, figures) -> dict:
    """{path: text} of the three files --write writes: the conditioning data (the ridge and
    each law's held-out spread), the optima-fit law set (fitted by the package's law of optima,
    advisor.fit.optima_law) and the figures of docs/conditional_eval.json."""
    import yaml

    ridge = {k: v for k, v in ridge.items() if k != "grid_pairs"}
    cond = {
        "schema": SCHEMA,
        "source": "bench/conditional_eval.py --write (docs/conditional.md)",
        "ridge": ridge | {"source": (
            "median over the Step Law grid's 17 cells of the surface ensemble's best LR "
            "at each batch offset (advisor/fit/ridge.py)"),
            "grid_check": grid_regimes},
        "laws": {name: {
            "lr_sd_ln_conditioned": round(res["runtime_sd"]["conditioned"], 4),
            "lr_sd_ln_unconditioned": round(res["runtime_sd"]["unconditioned"], 4),
            "batch_sd_ln": (None if shipped_sd(res, "batch", points) is None
                            else round(shipped_sd(res, "batch", points), 4))}
            for name, res in results.items()},
        "evidence_range": {"batch_tokens": [min(batches), max(batches)],
                           "N": [min(p.n for p in points), max(p.n for p in points)],
                           "D": [min(p.d for p in points), max(p.d for p in points)]},
        "z80": Z80,
    }
    return {
        REPO / "recipes" / "published" / "conditioning.yaml":
            "# Written by bench/conditional_eval.py --write; do not edit.\n"
            + yaml.safe_dump(cond, sort_keys=False, width=100),
        REPO / "recipes" / "laws" / f"{OPTIMA_LAW}.yaml":
            lawset_text(optima_lawset(full, points)),
        REPO / "docs" / "conditional_eval.json":
            json.dumps(figures, indent=1, sort_keys=True) + "\n",
    }


def main():
    ap = shipped.parser(__doc__.splitlines()[0])
    ap.add_argument("--plot", default=None, help="write the ridge plot (PNG) here")
    args = ap.parse_args()
    csv_path = Path(args.external) / "steplaw_dense_lr_bs_loss.csv"
    ridge, grid_regimes, table = surface_and_ridge(csv_path)
    points, cell_runs = tuned_points(csv_path)
    preds = shipped_predictions(points, cell_runs)
    results, full = evaluate(points, ridge, preds)
    print_table(results, points, ridge, grid_regimes)
    if args.plot:
        from advisor.cli.plots import batch_ridge
        batch_ridge(ridge, args.plot)
    figures = {name: {m: res[m]["summary"] for m in ("conditioned", "unconditioned")}
               | {"by_setup": by_setup(res, points)} for name, res in results.items()}
    batches = [p.batch for p in points if p.batch] + [float(b) for b in table.batch_tokens]
    files = render_files(ridge, grid_regimes, results, full, points, batches, figures)
    shipped.write_or_check(files, write=args.write, check=args.check)
    return figures


if __name__ == "__main__":
    main()
