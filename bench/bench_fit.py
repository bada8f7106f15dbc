"""Benchmark of `advisor fit` on Step Law's released grid (1,911 runs, 17 (N, D) cells).

Prints, per cell and in summary, the gap of the run nearest each law's prediction (in ln lr,
ln batch) relative to the cell's best run, smoothed loss (Li et al. 2025's measure):

- the published Step Law (in-sample: it was fitted on these runs and more);
- a plain log-linear refit of each cell's best run (lr ~ N, D; B ~ D), each cell held out;
- per-cell smooth optima, then power laws, each cell held out;
- our joint-surface fit (the default of `advisor fit`: the average over six window and
  robust-scale settings), each cell held out; and one surface at a single setting;

and the wall time to fit the full grid. Run: python -m bench.bench_fit [--json OUT]

With ``--extrapolation`` it instead scores every candidate form (method x batch-law
variables) three ways -- in-sample, leave-one-cell-out (interpolation) and the four
extrapolation folds of advisor.fit.lr_batch.holdout_folds (largest N, largest D, smallest N,
smallest D held out together) -- the table in docs/fitting.md the default is chosen by.
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import platform
import time
from pathlib import Path

from advisor.fit.lr_batch import (cross_validate, extrapolation_cv,
                                  extrapolation_summary, fit_lr_batch, in_sample)
from advisor.fit.gaps import cell_gap, lawset_gaps, summarize
from advisor.fit.pipeline import fit_sweep
from advisor.fit.surface import SurfaceOptions, ensemble_options
from advisor.laws.lawset import load_lawset
from advisor.runs.table import load_runs
from advisor.common.outputs import atomic_write_text

GRID = Path(__file__).resolve().parents[2] / "shared" / "data" / "external" / \
    "steplaw_dense_lr_bs_loss.csv"


def pct(s):
    return (f"mean {100 * s['mean_gap']:.3f}%  median {100 * s['median_gap']:.3f}%  "
            f"max {100 * s['max_gap']:.3f}%")


CANDIDATES = ensemble_options(SurfaceOptions())   # the settings the default fit averages


def nested_cv(table):
    """Outer leave-one-cell-out; ONE surface setting picked by inner LOO on the other cells.

    The alternative to averaging the settings (the default): this measures what choosing
    one costs when the choice, too, must be made without the held-out cell.
    """
    from advisor.fit.gaps import cell_gap

    idx = table.cell_index
    n = len(table.cells)
    out = []
    for c in range(n):
        train = [i for i in range(n) if i != c]
        best, best_opt = None, None
        for opt in CANDIDATES:
            g = []
            for h in train:
                laws = fit_lr_batch(table, "surface", [i for i in train if i != h], options=opt)
                g.append(cell_gap(table, idx == h, *laws.predict(*table.cells[h]))["gap"])
            score = sum(g) / len(g)
            if best is None or score < best:
                best, best_opt = score, opt
        laws = fit_lr_batch(table, "surface", train, options=best_opt)
        out.append(cell_gap(table, idx == c, *laws.predict(*table.cells[c])))
        print(f"  nested: held out {c + 1}/{n}: window {best_opt.window}, "
              f"f_scale {best_opt.f_scale}, gap {100 * out[-1]['gap']:.3f}%", flush=True)
    return out


# (label, method, batch-law variables, surface options or None)
FORMS = [
    ("best-point, B*(D) (Step Law's form)", "best-point", ("D",), None),
    ("best-point, B*(N,D)", "best-point", ("N", "D"), None),
    ("optima, B*(N,D)", "optima", ("N", "D"), None),
    ("optima, B*(D)", "optima", ("D",), None),
    ("surface, B*(N,D)", "surface", ("N", "D"), None),
    ("surface, B*(D)", "surface", ("D",), None),
    ("surface, B*(N)", "surface", ("N",), None),
]


def _pct(s):
    if "refused" in s:
        return {"refused": s["refused"]}
    return {k: (100 * v if k != "cells" else v) for k, v in s.items()}


def score_form(table, method, batch_vars, options):
    """In-sample, leave-one-cell-out and extrapolation gaps (percent) of one form."""
    kw = {"batch_vars": batch_vars}
    if options is not None:
        kw["options"] = options
    t = time.perf_counter()
    laws = fit_lr_batch(table, method, **kw)
    row = {"lr_law": [laws.lr.coefficient, laws.lr.exponents],
           "batch_law": (None if laws.batch is None
                         else [laws.batch.coefficient, laws.batch.exponents]),
           "in_sample": _pct(summarize(in_sample(table, laws))),
           "leave_one_cell_out": _pct(summarize(cross_validate(table, method, **kw)))}
    folds = extrapolation_cv(table, method, **kw)
    row["extrapolation"] = {k: _pct(v) for k, v in extrapolation_summary(folds).items()}
    row["held_out"] = {k: f["held_out"] for k, f in folds.items()}
    # the case: one model size beyond the fit (Step Law's MoE grid is 2x beyond the
    # dense grid's largest N): fit below the largest N, score the cells at it
    top = max(c[0] for c in table.cells)
    idx = table.cell_index
    train = [i for i, c in enumerate(table.cells) if c[0] < top]
    laws_top = fit_lr_batch(table, method, train, **kw)
    row["extrapolation"]["largest-N-only"] = _pct(summarize(
        [cell_gap(table, idx == c, *laws_top.predict(*table.cells[c]))
         for c, k in enumerate(table.cells) if k[0] == top]))
    row["seconds"] = time.perf_counter() - t
    return row


def extrapolation_table(table, out_json=None):
    results = {"grid": table.source, "cells": len(table.cells),
               "machine": f"{platform.machine()} {os.cpu_count()} CPU cores, "
                          f"{platform.python_implementation()} {platform.python_version()}",
               "published_step_law_in_sample": _pct(summarize(
                   lawset_gaps(table, load_lawset("step-law")))),
               "forms": {}}
    for label, method, bv, opts in FORMS:
        row = score_form(table, method, bv, opts)
        results["forms"][label] = row
        e, loo = row["extrapolation"], row["leave_one_cell_out"]
        print(f"{label:38s} in {row['in_sample']['mean_gap']:.3f} | LOO "
              f"{loo['mean_gap']:.3f}/{loo['max_gap']:.3f}"
              + "".join(f" | {k} " + (f"{v['mean_gap']:.3f}/{v['max_gap']:.3f}"
                                      if "mean_gap" in v else "refused")
                        for k, v in e.items())
              + f"  ({row['seconds']:.0f} s)", flush=True)
    if out_json:
        atomic_write_text(out_json, json.dumps(results, indent=1))
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default=str(GRID))
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--nested", action="store_true",
                    help="also run nested CV: the surface's window and robust scale chosen "
                         "by an inner leave-one-out on the 16 training cells (~10 min)")
    ap.add_argument("--extrapolation", action="store_true",
                    help="score every candidate form in-sample, leave-one-cell-out and on the "
                         "extrapolation folds (the table of docs/fitting.md, ~3 min)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    table = load_runs(args.grid)
    if args.extrapolation:
        print(table.summary())
        extrapolation_table(table, args.json)
        return
    t_load = time.perf_counter() - t0
    print(table.summary())
    results = {"grid": args.grid, "runs": len(table), "cells": len(table.cells),
               "machine": f"{platform.machine()} {os.cpu_count()} CPU cores, "
                          f"{platform.python_implementation()} {platform.python_version()}"}

    rows = {"step-law (published, in-sample)": lawset_gaps(table, load_lawset("step-law"))}
    timings = {}
    for method, label in [("best-point", "plain log-linear refit, held out"),
                          ("optima", "per-cell smooth optima + power law, held out"),
                          ("surface", "joint surface (ours), held out")]:
        t = time.perf_counter()
        rows[label] = cross_validate(table, method)
        timings[f"cross-validation {method} (17 refits)"] = time.perf_counter() - t
    single = SurfaceOptions(window=0.015, f_scale=0.001, ensemble=False)
    rows["one surface (window 1.5%, scale 0.1%), held out"] = cross_validate(
        table, "surface", options=single)

    print(f"\n{'cell':>22} " + " ".join(f"{k[:14]:>14}" for k in rows))
    for i, (N, D) in enumerate(table.cells):
        print(f"N={N:9.3g} D={D:8.3g} " + " ".join(f"{100 * v[i]['gap']:13.3f}%"
                                                   for v in rows.values()))
    print()
    results["gaps"] = {}
    for label, cells in rows.items():
        s = summarize(cells)
        results["gaps"][label] = {k: (100 * v if k != "cells" else v) for k, v in s.items()}
        print(f"{label:52s} {pct(s)}")

    if args.nested:
        t = time.perf_counter()
        s = summarize(nested_cv(table))
        timings["nested cross-validation"] = time.perf_counter() - t
        results["gaps"]["joint surface, options chosen by inner CV, held out"] = {
            k: (100 * v if k != "cells" else v) for k, v in s.items()}
        print(f"{'joint surface, options chosen by inner CV, held out':52s} {pct(s)}")

    t = time.perf_counter()
    fit_lr_batch(table, "surface")
    timings["surface fit of the full grid (LR + batch laws)"] = time.perf_counter() - t
    t = time.perf_counter()
    fit_sweep(table, n_bootstrap=50)
    timings["full `advisor fit` pipeline (optima + surface + loss law, 50 bootstraps)"] = \
        time.perf_counter() - t
    timings["loading the CSV"] = t_load
    print()
    for k, v in timings.items():
        print(f"{k:75s} {v:6.2f} s")
    results["seconds"] = timings
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
