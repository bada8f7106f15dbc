"""Laws per optimizer: a sweep's optimizer travels from the store to the fitted law set, and
`recommend --optimizer muon` uses a Muon-fitted law as a fit, not a conversion."""
import numpy as np
import pytest

from advisor.errors import AdvisorError
from advisor.fit.pipeline import fit_sweep, lawset_dict
from advisor.laws.lawset import LawSet, dump_lawset
from advisor.recommendation.muon_view import CONVERSION_WARNING, with_muon
from advisor.recommendation.core import recommend
from advisor.runs.table import table_from_rows


def rows(optimizer, seed=0):
    """A planted bowl around lr* = 2 N^-0.7 D^0.3, B* = 0.5 D^0.55 (tokens)."""
    rng = np.random.default_rng(seed)
    out = []
    for N in (1e8, 3e8, 1e9):
        for D in (5e9, 2e10, 8e10):
            lr0, b0 = 2.0 * N ** -0.7 * D ** 0.3, 0.5 * D ** 0.55
            for lr in lr0 * np.geomspace(1 / 8, 8, 9):
                for b in b0 * np.geomspace(1 / 6, 6, 7):
                    u, v = np.log(lr / lr0), np.log(b / b0)
                    L = (2 + 30 / N ** 0.15) * (1 + 0.01 * u ** 2 + 0.004 * v ** 2 + 0.003 * u * v)
                    out.append({"N": N, "D": D, "lr": lr, "bs_tokens": b, "optimizer": optimizer,
                                "loss": L * (1 + 3e-4 * rng.standard_normal())})
    return out


def test_runs_of_two_optimizers_are_not_fitted_together():
    with pytest.raises(AdvisorError, match="--select optimizer="):
        table_from_rows(rows("muadamw") + rows("muon-spectral", seed=1), loss="final")


@pytest.fixture(scope="module")
def muon_laws(tmp_path_factory):
    table = table_from_rows(rows("muon-spectral"), loss="final")
    assert table.optimizer == "muon-spectral"
    d = lawset_dict(fit_sweep(table, method="optima", n_bootstrap=0), name="muon-test")
    assert d["conventions"]["optimizer"] == "muon-spectral"
    LawSet.from_dict(d)                                  # a valid law set
    path = tmp_path_factory.mktemp("laws") / "muon.yaml"
    dump_lawset(d, path)
    return path


def test_a_muon_fitted_law_is_used_as_a_fit(muon_laws):
    rec = recommend(7e9, laws_file=str(muon_laws))
    m = with_muon(rec, "spectral")
    mu = m.optimizer["muon"]
    assert mu["lr"]["value"] == rec.learning_rate.value and mu["lr"]["note"] == "a fit"
    assert CONVERSION_WARNING not in m.warnings and m.optimizer["conversion_warning"] is None
    with pytest.raises(AdvisorError, match="--muon-convention spectral"):
        with_muon(rec, "match_rms_adamw")


def test_adamw_laws_are_converted_with_the_warning():
    m = with_muon(recommend(7e9), "spectral")
    assert CONVERSION_WARNING in m.warnings and m.optimizer["muon"]["lr"]["note"].startswith(
        "a conversion")
