"""The loss-law fit reproduces Epoch AI's refit of Chinchilla (Besiroglu et al. 2024).

Data: shared/data/external/epoch_chinchilla_svg_extracted.csv (245 points from Chinchilla's
Figure 4, recovered by Epoch AI); their notebook drops the 5 points of highest loss. The
95% intervals below are the paper's Table 1 (see shared/data/external/README.md).
"""
import csv

import numpy as np
import pytest

from advisor.errors import AdvisorError
from advisor.fit.loss_law import fit_loss_law


EPOCH_95 = {"E": (1.769, 1.871), "A": (285, 744), "B": (1042, 5810),
            "alpha": (0.317, 0.373), "beta": (0.331, 0.415)}
EPOCH_NOTEBOOK = {"E": 1.817, "A": 477.8, "B": 2143, "alpha": 0.3473, "beta": 0.3672}


def epoch_points(data_dir):
    with open(data_dir / "epoch_chinchilla_svg_extracted.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    N = np.array([float(r["Model Size"]) for r in rows])
    C = np.array([float(r["Training FLOP"]) for r in rows])
    L = np.array([float(r["loss"]) for r in rows])
    keep = np.argsort(L)[:-5]          # Epoch drops the 5 highest-loss points
    return N[keep], C[keep] / (6 * N[keep]), L[keep]


@pytest.fixture(scope="module")
def epoch_fit(external_data):
    N, D, L = epoch_points(external_data)
    return fit_loss_law(N, D, L, n_bootstrap=40, seed=1)


def test_epoch_estimates_within_their_95_intervals(epoch_fit):
    assert epoch_fit.n_points == 240
    for name, (lo, hi) in EPOCH_95.items():
        assert lo <= getattr(epoch_fit, name) <= hi, name


def test_epoch_notebook_optimum_reproduced(epoch_fit):
    for name, ref in EPOCH_NOTEBOOK.items():
        assert getattr(epoch_fit, name) == pytest.approx(ref, rel=2e-3), name


def test_bootstrap_intervals_bracket_estimate_and_resemble_epochs(epoch_fit):
    for name, (lo, hi) in epoch_fit.intervals.items():
        assert lo <= getattr(epoch_fit, name) <= hi
        e_lo, e_hi = EPOCH_95[name]
        # the intervals overlap Epoch's heavily (40 resamples here, 4,000 in the paper)
        assert max(lo, e_lo) < min(hi, e_hi)


def test_chinchilla_own_constants_are_outside_epochs_intervals(external_data):
    # Hoffmann et al.'s published beta = 0.28 and B = 410.7: the fit must not reproduce them
    N, D, L = epoch_points(external_data)
    fit = fit_loss_law(N, D, L)
    assert abs(fit.beta - 0.28) > 0.05 and fit.B > 1000


def test_too_few_points_is_a_clear_error():
    with pytest.raises(AdvisorError, match="at least 6"):
        fit_loss_law([1e8, 2e8, 4e8], [1e9, 2e9, 4e9], [3.0, 2.9, 2.8])
    with pytest.raises(AdvisorError, match="2 distinct model sizes"):
        fit_loss_law([1e8] * 8, np.geomspace(1e9, 1e11, 8), np.linspace(3, 2.5, 8))
