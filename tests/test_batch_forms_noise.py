"""Issue 14's leave-one-cell-out max target (<= 0.2%) sits at the dense grid's noise floor.

Figures from bench/bench_batch_forms.py (docs/batch-law-forms.md), on Step Law's released
dense grid (Li et al. 2025, arXiv:2503.04715), asserted with margins.
"""
import numpy as np
import pytest

from bench.bench_batch_forms import Fits, noise_floor, surface_residuals
from advisor.fit.surface import SurfaceOptions
from advisor.runs.table import load_runs


@pytest.fixture(scope="module")
def table(external_data):
    return load_runs(external_data / "steplaw_dense_lr_bs_loss.csv")


@pytest.fixture(scope="module")
def residuals(table):
    return surface_residuals(table)


def robust_sd_pct(res):
    r = res[np.isfinite(res)]
    return 100 * 1.4826 * np.median(np.abs(r - np.median(r)))


def test_runs_scatter_about_0_1_percent_and_each_cells_best_run_is_a_lucky_one(table,
                                                                             residuals):
    _, res = residuals
    assert 0.08 < robust_sd_pct(res) < 0.13          # measured 0.106%
    idx = table.cell_index
    best = []
    for c in range(len(table.cells)):
        fin = (idx == c) & table.finished
        best.append(100 * res[np.flatnonzero(fin)[np.argmin(table.loss[fin])]])
    assert np.mean(best) < -0.08                     # measured -0.125%
    # the cell every form misses by 0.215% (N=268M, D=25B): its best run is 0.2% below
    c6 = table.cells.index((268304384.0, 25e9))
    assert best[c6] < -0.15


def test_a_perfect_law_meets_the_max_target_only_by_luck(table, residuals):
    fit, res = residuals
    none = noise_floor(table, fit, res, 0.0)
    assert none[0, 1] < 0.05                         # grid spacing alone: max 0.014%
    sims = noise_floor(table, fit, res, robust_sd_pct(res) / 100, n_sim=100)
    assert np.mean(sims[:, 1] <= 0.2) < 0.25         # measured 0.07 (500 draws)
    assert np.median(sims[:, 1]) > 0.22              # measured 0.286%


def test_fixing_the_batch_n_exponent_by_change_of_variable_is_exact(table):
    """The bench's fixed-exponent surface at the free fit's own exponent is the free fit."""
    one = SurfaceOptions(ensemble=False)
    fits = Fits(table, one)
    cells = list(range(len(table.cells)))
    pred_free, laws = fits.surface(cells, ("N", "D"))
    pred_fixed, _ = fits.surface(cells, k=laws.batch.exponents["N"])
    for N, D in (table.cells[0], table.cells[-1], (2.15e9, 2e10)):
        for a, b in zip(pred_free(N, D), pred_fixed(N, D)):
            assert b == pytest.approx(a, rel=1e-3)   # measured 5e-5; 0.05 off in k: 1-9%
