"""Law forms tried and not adopted for issue 27's held-out-LR goal (docs/run.md, E and F).

Two families of variants of the schedule term, each next to a power law in LR area
``A S^-alpha`` (S = sum of u^rho, u = LR / peak LR, rho = 0.6), fitted on Schaipp et al.
2025's 124M runs (peak LR 5e-4 and 2e-3):

- **valley variants** (advisor/schedule/valley.py has q = 1, one relaxation time): the
  lagged LR m relaxes at a rate c u^q per step, q = 1 (per LR area, the shipped law),
  0.5, or 0 (per step); and a two-time variant ``K1 m_c1^p + K2 m_c2^p``.
- **the convex bound**: the noise terms of the last-iterate bound for SGD on convex
  Lipschitz functions (Defazio et al. 2023, arXiv 2310.07831; used to explain LLM
  schedules by Schaipp et al. 2025, arXiv 2501.18965), with the schedule's normalised
  LRs, as the schedule term ``B N^p``.

Every variant is linear in (L0, A, K or B) once its shape constants are fixed, so it is
fitted exactly on a grid of the shape constants (weighted least squares on relative
residuals, each curve the same total weight, points from step 600). It is then scored
on final losses as bench.bench_run_forecast does, in two settings: ``all`` (in sample,
fitted on every curve of the LR) and ``fitset`` (fitted on const + cos10 at 50k steps,
the other schedules predicted: table C's test).

    nice -n 10 python -m bench.schedule_form_variants [--data ../shared/data/external]

About 5 minutes on the 2-core development machine. The figures are quoted in docs/run.md.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from advisor.schedule.valley import forward_area, relaxed_lr
from bench import bench_run_forecast as brf

RHO = 0.6
FIRST_STEP = 600                           # fit from here: after warmup and its transient
C_GRID = np.logspace(-4, -0.5, 22)         # relaxation rate per unit of the clock below
P_GRID = np.arange(0.2, 1.21, 0.1)
ALPHA_GRID = np.arange(0.1, 1.2, 0.05)
BOUND_P_GRID = (1.0,) + tuple(np.round(np.arange(0.3, 2.01, 0.1), 2))
FLOOR = 1e-3          # LRs below this fraction of the peak count as it (the bound has 1/eta)


def relaxed_on_clock(u: np.ndarray, c: float, q: float) -> np.ndarray:
    """The valley law's lagged LR with relaxation rate c u^q per step (q = 1: the shipped
    law's LR-area clock; q = 0: per step)."""
    return relaxed_lr(u, c, clock=np.where(u > 0, u, 0.0) ** q)


def bound_noise(u: np.ndarray, steps) -> np.ndarray:
    """The noise part of the last-iterate bound at each of ``steps`` (the run ending there),
    in units of the peak LR: sum(eta^2) / (2 sum eta) + 1/2 sum_k eta_k / (R_{k+1} R_k)
    sum_{t >= k} eta_t^2, with R_k = sum_{t >= k} eta_t up to the step."""
    u = np.maximum(np.asarray(u, float), FLOOR * float(np.max(u)))
    S = np.concatenate([[0.0], np.cumsum(u)])
    Q = np.concatenate([[0.0], np.cumsum(u * u)])
    out = []
    for t in steps:
        k = np.arange(t)
        Rk, Rk1 = S[t + 1] - S[k], S[t + 1] - S[k + 1]
        out.append(Q[t + 1] / (2 * S[t + 1]) + 0.5 * np.sum(u[k] * (Q[t + 1] - Q[k]) / (Rk * Rk1)))
    return np.asarray(out)


def columns(c, variant, steps):
    """Shape-dependent columns of one curve at ``steps``: {shape key: regressor}."""
    u = c.lrs / c.lrs.max()
    if variant["kind"] == "bound":
        return {None: bound_noise(u, steps)}
    return {ci: relaxed_on_clock(u, cc, variant["q"])[steps] for ci, cc in enumerate(C_GRID)}


def fit(curves, variant):
    """Grid fit; returns (shape, coef) of least weighted squared relative residual."""
    S, Y, W, cols = [], [], [], []
    for c in curves:
        st = c.steps[c.steps >= FIRST_STEP]
        S.append(np.maximum(forward_area(c.lrs / c.lrs.max(), RHO)[st], 1e-12))
        Y.append(c.loss[c.steps >= FIRST_STEP])
        W.append(np.full(len(st), 1.0 / len(st)))
        cols.append(columns(c, variant, st))
    S, Y, W = np.concatenate(S), np.concatenate(Y), np.concatenate(W)
    keys = list(cols[0])
    M = {k: np.maximum(np.concatenate([cc[k] for cc in cols]), 1e-300) for k in keys}
    sw = np.sqrt(W) / Y
    if variant["kind"] == "bound":
        pairs, p_grid = [(None, None)], BOUND_P_GRID
    elif variant.get("two"):
        pairs = [(i, j) for i in keys for j in keys if j >= i + 3 and (j - i) % 2 == 1]
        p_grid = P_GRID
    else:
        pairs, p_grid = [(i, None) for i in keys], P_GRID
    best = None
    for a in ALPHA_GRID:
        Sa = S ** -a
        for i, j in pairs:
            for p in p_grid:
                X = [np.ones_like(S), Sa, M[i] ** p] + ([M[j] ** p] if j is not None else [])
                X = np.stack(X, axis=1) * sw[:, None]
                coef, *_ = np.linalg.lstsq(X, Y * sw, rcond=None)
                if np.any(coef[1:] <= 0):
                    continue
                r = X @ coef - Y * sw
                if best is None or r @ r < best[0]:
                    best = (float(r @ r), (a, i, j, p), coef)
    if best is None:
        raise ValueError("no grid point with positive amplitudes")
    return best[1], best[2]


def predict_final(c, variant, shape, coef) -> float:
    a, i, j, p = shape
    t = int(c.steps[-1])
    col = columns(c, variant, np.array([t]))
    x = [1.0, forward_area(c.lrs / c.lrs.max(), RHO)[t] ** -a, col[i][0] ** p]
    if j is not None:
        x.append(col[j][0] ** p)
    return float(np.dot(coef, x))


VARIANTS = {"valley q=1 (shipped)": {"kind": "valley", "q": 1.0},
            "valley q=0.5": {"kind": "valley", "q": 0.5},
            "valley q=0 (per step)": {"kind": "valley", "q": 0.0},
            "valley two relaxation times": {"kind": "valley", "q": 1.0, "two": True},
            "convex bound": {"kind": "bound"}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(brf.DATA), help="shared/data/external")
    args = ap.parse_args(argv)
    brf.SCHAIPP = Path(args.data) / "schaipp_lr_schedules"
    brf.MP = Path(args.data) / "multipower_loss_curves"
    data = brf.datasets()
    print("| variant | LR | fitted on | other schedules: mean / max error, pairs wrong |")
    print("|---|---|---|---|")
    for name, v in VARIANTS.items():
        for ds in ("124M lr 0.0005", "124M lr 0.002"):
            curves = data[ds]
            held = {n: c for n, c in curves.items() if n not in brf.FIT_SET}
            for setting, fit_on in (("all", list(curves.values())),
                                    ("fitset", [curves[n] for n in brf.FIT_SET])):
                shape, coef = fit(fit_on, v)
                m = brf.metrics({n: predict_final(c, v, shape, coef) for n, c in held.items()},
                                {n: c.final_loss for n, c in held.items()})
                print(f"| {name} | {ds} | {setting} | {m['mean']:.2%} / {m['max']:.2%}, "
                      f"{m['wrong']} of {m['pairs']} |", flush=True)


if __name__ == "__main__":
    main()
