"""Issue 14: can one LR/batch law both extrapolate and meet the leave-one-cell-out target?

On Step Law's released dense grid (1,911 runs, 17 (N, D) cells; Li et al. 2025,
arXiv:2503.04715) this bench

1. diagnoses the leave-one-cell-out (LOO) gaps of the two surface laws, B*(D) (the default)
   and B*(N, D): per cell, the gap of the run nearest the prediction, split into its LR part
   (batch held at the cell's best run) and its batch part (LR held at the best run's), and
   how much of each gap is run-to-run noise (residuals around the full-grid surface);
2. scores every candidate form by BOTH kinds of cross-validation, side by side: LOO (mean,
   max) and the extrapolation folds of advisor.fit.lr_batch.holdout_folds (largest N,
   largest D, smallest N, smallest D held out together) plus the 2-cell "largest N only"
   reach (fitted below 1.07B, scored at it: one model size beyond the fit).

Gaps are Step Law's measure (advisor.fit.gaps.cell_gap), in percent of the cell's best
smoothed loss. Forms beyond the product's own (fit_lr_batch) are built here from the product
fitter, not re-implemented:

- "N exponent fixed at k": the surface with B* = c N^k D^b and k given. Exact by a change of
  variable: the fit sees ln B - k ln N as its batch axis with B*(D) (the shape is a function of
  the offset from the optimum, so shifting data and optimum together changes nothing else).
- "prior on the N exponent": B*(N, D) fitted, its N exponent shrunk toward 0 by a Gaussian
  prior N(0, tau^2) against the fit's own cell-clustered standard error (posterior mean
  k = k_hat tau^2 / (tau^2 + se^2)), then the surface refitted with k fixed, so the LR law
  re-couples to the shrunk batch law.
- "hybrid": the LR law of one surface fit with the batch law of another.
- "valley LR": the batch of the B*(D) law, and the LR that the B*(N, D) surface finds best at
  that batch (the minimum of its quadratic part along ln lr at the offset in ln B).
- "optima, precision-weighted": per-cell quadratic optima (advisor.fit.optima), power laws
  through them weighted by 1 / (bootstrap variance of ln optimum).

Run: nice -n 10 python -m bench.bench_batch_forms [--json OUT] [--quick]
(~6-10 min of one core; --quick scores only the two surface laws and the diagnosis).
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from advisor.fit.lr_batch import fit_lr_batch, holdout_folds
from advisor.fit.gaps import cell_gap, summarize
from advisor.fit.optima import all_optima
from advisor.fit.powerlaw import fit_power_law
from advisor.fit.surface import SurfaceOptions, fit_surface
from advisor.runs.table import load_runs
from advisor.common.outputs import atomic_write_text

GRID = Path(__file__).resolve().parents[2] / "shared" / "data" / "external" / \
    "steplaw_dense_lr_bs_loss.csv"
TARGET_MEAN, TARGET_MAX = 0.07, 0.2          # issue 14's LOO target, percent


# ---------------------------------------------------------------- fitters (train cells -> predictor)

class Fits:
    """Memoised product fits, so forms that share a fit (hybrids) do not refit."""

    def __init__(self, table, options: SurfaceOptions = SurfaceOptions()):
        self.table = table
        self.options = options           # the surface settings (default: the product's)
        self._cache = {}

    def surface(self, cells, batch_vars=("D",), k=None):
        """fit_lr_batch('surface') on ``cells``; with ``k``, the batch N exponent fixed at k.

        Returns a predictor (N, D) -> (lr, B_tokens) and the laws.
        """
        key = ("surface", tuple(cells), tuple(batch_vars), k)
        if key not in self._cache:
            if k is None:
                laws = fit_lr_batch(self.table, "surface", cells, batch_vars=batch_vars,
                                    options=self.options)
                pred = laws.predict
            else:
                shifted = replace(self.table, batch_tokens=self.table.batch_tokens
                                  * self.table.N ** (-k))
                laws = fit_lr_batch(shifted, "surface", cells, batch_vars=("D",),
                                    options=self.options)

                def pred(N, D, _laws=laws, _k=k):
                    lr, b = _laws.predict(N, D)
                    return lr, b * N ** _k
            self._cache[key] = (pred, laws)
        return self._cache[key]

    def optima(self, with_bootstrap=False):
        key = ("optima", with_bootstrap)
        if key not in self._cache:
            self._cache[key] = all_optima(self.table, n_bootstrap=100 if with_bootstrap else 0)
        return self._cache[key]


def form_surface(batch_vars):
    return lambda fits, cells: fits.surface(cells, batch_vars)[0]


def form_fixed_k(k):
    return lambda fits, cells: fits.surface(cells, k=k)[0]


def shrunk_exponent(laws, tau):
    """Posterior mean of the batch law's N exponent under a N(0, tau^2) prior."""
    law = laws.batch
    i = 1 + list(law.exponents).index("N")
    se2 = float(np.asarray(law.log_covariance)[i, i])
    return law.exponents["N"] * tau ** 2 / (tau ** 2 + se2), np.sqrt(se2)


def form_prior(tau):
    def fit(fits, cells):
        _, laws = fits.surface(cells, ("N", "D"))
        k, _ = shrunk_exponent(laws, tau)
        return fits.surface(cells, k=round(k, 6))[0]
    return fit


def form_hybrid(lr_vars_of, batch_vars_of):
    def fit(fits, cells):
        p_lr, _ = fits.surface(cells, lr_vars_of)
        p_b, _ = fits.surface(cells, batch_vars_of)
        return lambda N, D: (p_lr(N, D)[0], p_b(N, D)[1])
    return fit


def valley_lr(laws, N, D, batch):
    """The LR the surface finds best at ``batch`` (tokens): its quadratic valley at N, D."""
    lr0, b0 = laws.predict(N, D)
    H = laws.detail.hessian(N, D)
    u_b = np.log(batch) - np.log(b0)
    return float(lr0 * np.exp(-H[0, 1] / H[0, 0] * u_b))


def form_valley(fits, cells):
    _, laws_nd = fits.surface(cells, ("N", "D"))
    p_d, _ = fits.surface(cells, ("D",))

    def pred(N, D):
        b = p_d(N, D)[1]
        return valley_lr(laws_nd, N, D, b), b
    return pred


def form_optima(batch_vars, weighted):
    def fit(fits, cells):
        opts = [fits.optima(weighted)[c] for c in cells]
        v = {"N": np.array([o.N for o in opts]), "D": np.array([o.D for o in opts])}
        laws = []
        for axis, var in (("learning_rate", ("N", "D")), ("batch_size", batch_vars)):
            y = np.array([o.optimum[axis] for o in opts])
            w = None
            if weighted:
                sd = np.array([o.log_sd.get(axis, np.nan) for o in opts])
                sd = np.where(np.isfinite(sd) & (sd > 0), sd, np.nanmedian(sd))
                w = 1.0 / np.maximum(sd, 0.02) ** 2     # floor: 2% in ln, one grid step/17
            laws.append(fit_power_law(y, {x: v[x] for x in var}, weights=w, what=axis))
        return lambda N, D: (laws[0].predict(N=N, D=D), laws[1].predict(N=N, D=D))
    return fit


# ---------------------------------------------------------------- scoring

def score(table, fits, fitter):
    """LOO and extrapolation gaps of one form.

    Returns ({fold: summary in percent}, {fold: [(cell label, gap %)]}); folds: LOO, the four
    of holdout_folds, "largest-N only", and the pooled "upward" and "downward".
    """
    idx = table.cell_index
    n = len(table.cells)

    def gaps(train, held):
        pred = fitter(fits, train)
        return [cell_gap(table, idx == c, *pred(*table.cells[c])) for c in held]

    per = {"LOO": [(c, gaps([i for i in range(n) if i != c], [c])[0]) for c in range(n)]}
    pooled = {"upward": [], "downward": []}
    for name, held in holdout_folds(table).items():
        per[name] = list(zip(held, gaps([i for i in range(n) if i not in held], held)))
        pooled["upward" if name.startswith("largest") else "downward"] += per[name]
    top = max(c[0] for c in table.cells)
    held = [i for i, c in enumerate(table.cells) if c[0] == top]
    per["largest-N only"] = list(zip(held, gaps([i for i in range(n) if i not in held], held)))
    per.update(pooled)
    out = {k: {m: (100 * x if m != "cells" else x) for m, x in summarize([g for _, g in v]).items()}
           for k, v in per.items()}
    out["worst upward mean"] = max(out[k]["mean_gap"]
                                   for k in ("largest-N", "largest-D", "largest-N only"))
    return out, {k: [(table.cell_label(c), 100 * g["gap"]) for c, g in v] for k, v in per.items()}


def paired(per_a, per_b, fold):
    """Mean gap difference a - b over the same held-out cells, and its standard error (%)."""
    d = np.array([ga - gb for (_, ga), (_, gb) in zip(per_a[fold], per_b[fold])])
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))), len(d)


def shrinkage_record(table, fits, tau):
    """Per training set of the folds: B*(N,D)'s N exponent, its se, and the shrunk value."""
    n = len(table.cells)
    out = {}
    sets = {"full grid": []} | holdout_folds(table)
    top = max(c[0] for c in table.cells)
    sets["largest-N only"] = [i for i, c in enumerate(table.cells) if c[0] == top]
    for name, held in sets.items():
        _, laws = fits.surface([i for i in range(n) if i not in held], ("N", "D"))
        k, se = shrunk_exponent(laws, tau)
        out[name] = {"N_exponent": laws.batch.exponents["N"], "se": se, "shrunk": k}
    return out


# ---------------------------------------------------------------- diagnosis

def surface_residuals(table, batch_vars=("N", "D"), window=0.025):
    """Per run: log-loss residual around ONE full-grid surface (window 2.5%, scale 0.1%).

    The surface is smooth in (ln lr, ln B) with a free level per cell, so its residuals are
    run-to-run scatter that no smooth law can predict (an upper bound on it where the
    surface misfits). Returns (mask of runs used, residual per run as a fraction, NaN else).
    """
    fin = table.finished
    X = np.column_stack([np.log(table.lr[fin]), np.log(table.batch_tokens[fin])])
    cN = np.log([c[0] for c in table.cells])
    cD = np.log([c[1] for c in table.cells])
    opt = SurfaceOptions(window=window, f_scale=0.001, ensemble=False, batch_vars=batch_vars)
    fit = fit_surface(X, table.cell_index[fin], cN, cD, table.loss[fin],
                      ("learning_rate", "batch_size"), options=opt)
    res = np.full(len(table), np.nan)
    ci = table.cell_index
    for c, (N, D) in enumerate(table.cells):
        opt_c = fit.optimum(N, D)
        mu = np.log([opt_c["learning_rate"], opt_c["batch_size"]])
        m = fin & (ci == c) & (table.loss <= table.loss[fin & (ci == c)].min() * (1 + window))
        u = np.column_stack([np.log(table.lr[m]), np.log(table.batch_tokens[m])]) - mu
        res[m] = np.log(table.loss[m]) - (fit.levels[c] + fit.shape_value(u, N, D))
    return fit, res


def noise_floor(table, fit, res, sd_frac, n_sim=200, seed=0):
    """Gaps a PERFECT law would score if runs scatter by ``sd_frac`` around a smooth truth.

    Truth: the full-grid surface ``fit`` (its per-cell level and shape). Each simulation
    replaces the loss of every run in the window (where ``res`` is defined) by the truth times
    exp(N(0, sd_frac^2)); runs outside the window keep their loss (they are more than 2.5%
    above the best and never become the best or the nearest). The law predicts the truth's
    optimum in every cell. Returns the mean and max gap (percent) of each simulation; with
    sd_frac = 0, one run: what the grid's spacing alone costs.
    """
    rng = np.random.default_rng(seed)
    idx = table.cell_index
    m = np.isfinite(res)
    smooth = table.loss[m] * np.exp(-res[m])          # truth at each in-window run
    opt = [fit.optimum(N, D) for N, D in table.cells]
    out = []
    for _ in range(n_sim if sd_frac > 0 else 1):
        loss = table.loss.copy()
        loss[m] = smooth * np.exp(rng.normal(0.0, sd_frac, m.sum()))
        t = replace(table, loss=loss)
        g = [cell_gap(t, idx == c, o["learning_rate"], o["batch_size"])["gap"]
             for c, o in enumerate(opt)]
        out.append((100 * float(np.mean(g)), 100 * float(np.max(g))))
    return np.array(out)


def report_noise_floor(table, fit, res, sd_pct):
    rows = {}
    levels = [("no scatter (grid spacing only)", 0.0)] + [
        (f"scatter {100 * sd:.3f}%" + (" (measured)" if sd == sd_pct / 100 else ""), sd)
        for sd in (sd_pct / 200, 0.0007, 0.0008, 0.0009, sd_pct / 100)]
    for label, sd in levels:
        sims = noise_floor(table, fit, res, sd, n_sim=500)
        r = {"sd_pct": 100 * sd, "simulations": len(sims),
             "mean_gap_median": float(np.median(sims[:, 0])),
             "max_gap_median": float(np.median(sims[:, 1])),
             "max_gap_p10_p90": [float(np.percentile(sims[:, 1], 10)),
                                 float(np.percentile(sims[:, 1], 90))],
             "p_mean_le_target": float(np.mean(sims[:, 0] <= TARGET_MEAN)),
             "p_max_le_target": float(np.mean(sims[:, 1] <= TARGET_MAX)),
             "p_both": float(np.mean((sims[:, 0] <= TARGET_MEAN) & (sims[:, 1] <= TARGET_MAX)))}
        rows[label] = r
        print(f"perfect law, {label:34s}: mean gap {r['mean_gap_median']:.3f}%, max "
              f"{r['max_gap_median']:.3f}% (10-90%: {r['max_gap_p10_p90'][0]:.3f}-"
              f"{r['max_gap_p10_p90'][1]:.3f}); P(max <= {TARGET_MAX}) = "
              f"{r['p_max_le_target']:.2f}, P(both targets) = {r['p_both']:.2f}")
    return rows


def diagnose(table, fits):
    idx = table.cell_index
    n = len(table.cells)
    fit, res = surface_residuals(table)
    rows = []
    print("\nLeave-one-cell-out, per cell (gap %; LR part = batch at the best run's, "
          "batch part = LR at the best run's):")
    print(f"{'cell':>20} | {'B*(D)':>6} {'LRpart':>6} {'Bpart':>6} | {'B*(N,D)':>7} "
          f"{'LRpart':>6} {'Bpart':>6} | noise: sd  best-run resid  nearest-resid (B*(D))")
    for c in range(n):
        train = [i for i in range(n) if i != c]
        row = {"cell": table.cell_label(c)}
        parts = []
        for bv in (("D",), ("N", "D")):
            pred = fits.surface(train, bv)[0]
            lr, b = pred(*table.cells[c])
            g = cell_gap(table, idx == c, lr, b)
            g_lr = cell_gap(table, idx == c, lr, None)
            g_b = cell_gap(table, idx == c, g["best_lr"], b)
            key = "B(D)" if bv == ("D",) else "B(N,D)"
            row[key] = {"gap": 100 * g["gap"], "lr_part": 100 * g_lr["gap"],
                        "batch_part": 100 * g_b["gap"], "pred_lr": lr, "pred_batch": b,
                        "nearest": (g["nearest_lr"], g["nearest_batch_tokens"]),
                        "best": (g["best_lr"], g["best_batch_tokens"])}
            parts += [100 * g["gap"], 100 * g_lr["gap"], 100 * g_b["gap"]]
        m = (idx == c) & np.isfinite(res)
        sd = 100 * 1.4826 * np.median(np.abs(res[m] - np.median(res[m])))
        fin = (idx == c) & table.finished
        i_best = np.flatnonzero(fin)[np.argmin(table.loss[fin])]
        nb = row["B(D)"]["nearest"]
        i_near = np.flatnonzero((idx == c) & np.isclose(table.lr, nb[0])
                                & np.isclose(table.batch_tokens, nb[1]))[0]
        row["noise_sd"] = sd
        row["best_run_residual"] = 100 * res[i_best]
        row["nearest_residual_BD"] = 100 * res[i_near] if np.isfinite(res[i_near]) else None
        row["near_optimal_runs_0.2pct"] = int((table.loss[fin] <= table.loss[i_best] * 1.002)
                                              .sum())
        rows.append(row)
        nr = row["nearest_residual_BD"]
        print(f"{row['cell']:>20} | {parts[0]:6.3f} {parts[1]:6.3f} {parts[2]:6.3f} | "
              f"{parts[3]:7.3f} {parts[4]:6.3f} {parts[5]:6.3f} | {sd:.3f}  "
              f"{row['best_run_residual']:+.3f}  "
              + (f"{nr:+.3f}" if nr is not None else "n/a"))
    allres = res[np.isfinite(res)]
    sd_all = 100 * 1.4826 * np.median(np.abs(allres - np.median(allres)))
    best_res = np.array([r["best_run_residual"] for r in rows])
    print(f"run-to-run scatter around the smooth surface (robust sd, all {len(allres)} runs "
          f"in window): {sd_all:.3f}%; each cell's best run lies {np.mean(best_res):+.3f}% "
          f"(mean; min {best_res.min():+.3f}%) from it")
    # an oracle: each cell's OWN smoothed optimum (per-cell quadratic), never a law
    oracle = []
    for c, o in enumerate(fits.optima(False)):
        oracle.append(cell_gap(table, idx == c, o.optimum["learning_rate"],
                               o.optimum.get("batch_size")))
    so = summarize(oracle)
    print(f"oracle (each cell's own quadratic optimum, fitted on that cell): mean "
          f"{100 * so['mean_gap']:.3f}%  max {100 * so['max_gap']:.3f}% (cell "
          f"{table.cell_label(int(np.argmax([g['gap'] for g in oracle])))})")
    floor = report_noise_floor(table, fit, res, sd_all)
    return {"cells": rows, "noise_sd_pct": sd_all, "noise_floor": floor,
            "best_run_residual_mean_pct": float(np.mean(best_res)),
            "oracle_own_quadratic_optimum": {k: (100 * v if k != "cells" else v)
                                             for k, v in so.items()},
            "oracle_per_cell": [100 * g["gap"] for g in oracle]}


# ---------------------------------------------------------------- main

FORMS = [
    ("surface, B*(D) (default)", form_surface(("D",))),
    ("surface, B*(N,D)", form_surface(("N", "D"))),
    ("surface, B*(N,D), prior N exponent ~ N(0, 0.1^2)", form_prior(0.1)),
    ("surface, B*(N,D), prior N exponent ~ N(0, 0.2^2)", form_prior(0.2)),
    ("hybrid: LR of surface B*(N,D), batch of surface B*(D)",
     form_hybrid(("N", "D"), ("D",))),
    ("valley LR: batch of B*(D), LR best at it on the B*(N,D) surface", form_valley),
    ("optima (per-cell quadratic), B*(N,D)", form_optima(("N", "D"), False)),
    ("optima, B*(D)", form_optima(("D",), False)),
    ("optima precision-weighted, B*(N,D)", form_optima(("N", "D"), True)),
    ("optima precision-weighted, B*(D)", form_optima(("D",), True)),
    ("profile: surface, N exponent fixed at -0.1", form_fixed_k(-0.1)),
    ("profile: surface, N exponent fixed at -0.2", form_fixed_k(-0.2)),
    ("profile: surface, N exponent fixed at -0.3", form_fixed_k(-0.3)),
]
COLUMNS = ["LOO", "largest-N", "largest-D", "largest-N only", "upward", "smallest-N",
           "smallest-D", "downward"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default=str(GRID))
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--quick", action="store_true", help="the two surface laws only")
    args = ap.parse_args()
    table = load_runs(args.grid)
    print(table.summary())
    fits = Fits(table)
    results = {"grid": args.grid, "diagnosis": diagnose(table, fits), "forms": {}}
    per_form = {}
    print(f"\nmean / max gap, %  (target LOO <= {TARGET_MEAN:.2f} / {TARGET_MAX:.2f})")
    print(f"{'form':66s} " + " ".join(f"{c:>13s}" for c in COLUMNS) + "  worst-up")
    for label, fitter in (FORMS[:2] if args.quick else FORMS):
        t = time.perf_counter()
        s, per_cell = score(table, fits, fitter)
        s["per_cell"] = per_cell
        per_form[label] = per_cell
        s["seconds"] = time.perf_counter() - t
        s["meets_loo_target"] = (s["LOO"]["mean_gap"] <= TARGET_MEAN
                                 and s["LOO"]["max_gap"] <= TARGET_MAX)
        results["forms"][label] = s
        print(f"{label[:66]:66s} " + " ".join(
            f"{s[c]['mean_gap']:6.3f}/{s[c]['max_gap']:.3f}" for c in COLUMNS)
            + f"  {s['worst upward mean']:.3f}  ({s['seconds']:.0f} s)", flush=True)
    base = FORMS[0][0]
    print(f"\npaired difference from {base!r} over the same held-out cells "
          "(mean +- standard error, %; negative = better):")
    results["paired_vs_default"] = {}
    for label in list(per_form)[1:]:
        row = {f: paired(per_form[label], per_form[base], f) for f in ("LOO", "upward",
                                                                        "downward")}
        results["paired_vs_default"][label] = row
        print(f"{label[:66]:66s} " + "  ".join(f"{f} {m:+.3f} +- {e:.3f}"
                                              for f, (m, e, _) in row.items()))
    for tau in (0.1, 0.2):
        rec = shrinkage_record(table, fits, tau)
        results[f"shrinkage_tau_{tau}"] = rec
        print(f"prior N(0, {tau}^2) on the batch law's N exponent: " + "; ".join(
            f"{k}: {v['N_exponent']:.3f} (se {v['se']:.3f}) -> {v['shrunk']:.3f}"
            for k, v in rec.items()))
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
