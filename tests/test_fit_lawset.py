"""`advisor fit` writes a law set that loads and predicts like a shipped one; the fitters
recover laws planted in synthetic sweeps; a results store reads like the CSV."""
import csv

import numpy as np
import pytest
import yaml

from advisor.cli import main
from advisor.fit.lr_batch import fit_lr_batch
from advisor.fit.pipeline import fit_sweep, lawset_dict
from advisor.laws.lawset import LawSet, load_lawset
from advisor.runs.table import load_runs, table_from_rows

@pytest.fixture(scope="module")
def grid(external_data):
    """Step Law's released dense grid (shared external data; skipped where absent)."""
    return external_data / "steplaw_dense_lr_bs_loss.csv"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, grid):
    out = tmp_path_factory.mktemp("fit") / "laws.yaml"
    with pytest.raises(SystemExit) as exc:
        main(["fit", str(grid), "--out", str(out), "--bootstrap", "10"])
    assert exc.value.code == 0
    return out


def test_fitted_lawset_loads_and_predicts_in_tokens(fitted):
    ls = load_lawset(str(fitted))
    assert ls.name == "fitted-steplaw-dense-lr-bs-loss"
    assert ls.conventions["params"] == "non_embedding" and ls.batch_unit == "tokens"
    assert {"learning_rate", "batch_size", "loss"} <= set(ls.laws)
    # inside the grid, the LR law lands within a factor 1.5 of Step Law's
    step = load_lawset("step-law")
    for N, D in [(2.68e8, 2.5e10), (5.37e8, 1e10), (1.07e9, 5.69e10)]:
        assert 1 / 1.5 < ls.predict("learning_rate", N=N, D=D) / step.predict(
            "learning_rate", N=N, D=D) < 1.5
        b = ls.predict("batch_size", N=N, D=D)
        assert 1e5 < b < 3e6                 # tokens, not sequences
        lo, hi = ls.interval("learning_rate", N=N, D=D)
        assert lo < ls.predict("learning_rate", N=N, D=D) < hi
        assert 2.0 < ls.predict("loss", N=N, D=D) < 2.7


def test_provenance_says_where_the_laws_come_from(fitted):
    d = yaml.safe_load(fitted.read_text())
    p = d["provenance"]
    assert p["runs"] == 1911 and p["cells"] == 17 and p["loss_column"] == "smooth loss"
    assert p["N_range"][0] == pytest.approx(2.147e8, rel=1e-3)
    assert p["D_range"] == [4e9, 1e11]
    assert len(p["per_cell"]) == 17
    assert p["fit_quality"]["in_sample_gap"]["mean_gap_pct"] < 0.096
    assert d["laws"]["learning_rate"]["fitted_range"]["D"] == [4e9, 1e11]


def synthetic_rows(rng, lr_law, b_law, cells, noise=3e-4):
    """A sweep whose loss is a tilted bowl around a planted optimum (ln lr, ln B)."""
    rows = []
    for N, D in cells:
        lr0, b0 = lr_law(N, D), b_law(N, D)
        for lr in lr0 * np.geomspace(1 / 8, 8, 9) * rng.uniform(0.9, 1.1):
            for b in b0 * np.geomspace(1 / 6, 6, 7):
                u, v = np.log(lr / lr0), np.log(b / b0)
                L = (2 + 30 / N ** 0.15) * (1 + 0.01 * u ** 2 + 0.003 * u ** 3 / 3 + 0.004 * v ** 2
                                            + 0.003 * u * v + 0.001 * u ** 4)
                rows.append({"N": N, "D": D, "lr": lr, "bs_tokens": b,
                             "loss": L * (1 + noise * rng.standard_normal())})
    return rows


def test_surface_recovers_a_planted_power_law():
    rng = np.random.default_rng(0)
    cells = [(N, D) for N in (1e8, 3e8, 1e9) for D in (5e9, 2e10, 8e10)]
    lr_law = lambda N, D: 2.0 * N ** -0.7 * D ** 0.3   # noqa: E731
    b_law = lambda N, D: 0.5 * D ** 0.55               # noqa: E731
    table = table_from_rows(synthetic_rows(rng, lr_law, b_law, cells), loss="final")
    # the default batch law is B*(D); B*(N, D) must find the planted N exponent of 0
    assert set(fit_lr_batch(table, "surface").batch.exponents) == {"D"}
    laws = fit_lr_batch(table, "surface", batch_vars=("N", "D"))
    exps = laws.lr.exponents
    assert exps["N"] == pytest.approx(-0.7, abs=0.05)
    assert exps["D"] == pytest.approx(0.3, abs=0.05)
    bexps = laws.batch.exponents
    assert bexps["D"] == pytest.approx(0.55, abs=0.05) and abs(bexps["N"]) < 0.05
    # and extrapolates to a 10x larger model within 15%
    lr, b = laws.predict(1e10, 1e11)
    assert lr == pytest.approx(lr_law(1e10, 1e11), rel=0.15)
    assert b == pytest.approx(b_law(1e10, 1e11), rel=0.15)


def test_weight_decay_law_recovers_a_planted_adamw_timescale():
    """tau* = 0.4 TPP^-0.5 planted (Power Lines form) on an LR x weight-decay grid."""
    rng = np.random.default_rng(1)
    rows = []
    B = 2 ** 19
    for N, D in [(1e8, 2e9), (1e8, 8e9), (3e8, 6e9), (3e8, 2.4e10), (1e9, 2e10)]:
        lr0 = 0.01 * N ** -0.2
        tau = 0.4 * (D / N) ** -0.5
        wd0 = B / (lr0 * tau * D)
        for lr in lr0 * np.geomspace(1 / 4, 4, 7):
            for wd in wd0 * np.geomspace(1 / 8, 8, 7):
                u, w = np.log(lr / lr0), np.log(wd / wd0)
                L = 2.5 * (1 + 0.01 * u ** 2 + 0.002 * w ** 2 + 0.001 * u * w)
                rows.append({"N": N, "D": D, "lr": lr, "bs_tokens": B, "weight_decay": wd,
                             "loss": L * (1 + 1e-4 * rng.standard_normal())})
    table = table_from_rows(rows, loss="final")
    fit = fit_sweep(table, method="optima", n_bootstrap=0)
    assert fit.weight_decay.exponents["TPP"] == pytest.approx(-0.5, abs=0.05)
    assert fit.weight_decay.coefficient == pytest.approx(0.4, rel=0.15)
    ls = LawSet.from_dict(lawset_dict(fit, name="wd-test"))
    assert "batch_size" not in ls.laws              # one batch per cell: no batch law
    N, D = 3e8, 2.4e10
    lr = ls.predict("learning_rate", N=N, D=D)
    wd = ls.predict("weight_decay", N=N, D=D, B_tokens=B)
    assert wd == pytest.approx(B / (lr * 0.4 * (D / N) ** -0.5 * D), rel=0.2)


def test_results_store_reads_like_the_csv(tmp_path, grid):
    store_mod = pytest.importorskip("advisor.runs.store")
    with open(grid, newline="") as f:
        rows = list(csv.DictReader(f))
    keep = {("214663680", "4000000000"), ("268304384", "5000000000")}
    rows = [r for r in rows if (r["N"], r["D"]) in keep]
    store = store_mod.ResultsStore.create(tmp_path / "sweep")
    for r in rows:
        settings = {"width": int(r["h"]), "depth": int(r["numl"]), "seq_len": 2048,
                    "batch_size": int(float(r["bs"])), "tokens": int(r["D"]),
                    "lr": float(r["lr"]), "weight_decay": 0.1, "seed": 0,
                    "schedule": "cosine", "arch": {"heads": int(r["numh"]),
                                                   "ffn_hidden": int(r["ffnh"])}}
        L = float(r["smooth loss"])
        store.record(r["exp_name"], settings, "finished", final_train_loss=float(r["loss"]),
                     n_params_non_embedding=int(r["N"]),
                     curve={"step": [1], "tokens": [int(r["D"])], "lr": [1e-5],
                            "train_loss": [L], "val_loss": [float("nan")]})
    store.close()
    from_store = load_runs(tmp_path / "sweep")
    assert len(from_store) == len(rows) and len(from_store.cells) == 2
    assert from_store.loss_column == "smooth loss"
    by_name = dict(zip(from_store.names, from_store.batch_tokens))
    for r in rows[:20]:
        assert by_name[r["exp_name"]] == float(r["bs"]) * 2048


def test_a_mup_store_is_fitted_under_the_convention_its_runs_record(tmp_path, capsys,
                                                                    record_mup_sweep):
    from advisor.runs.store import ResultsStore

    with ResultsStore.create(tmp_path / "sweep") as store:
        record_mup_sweep(store, np.random.default_rng(1))
    table = load_runs(tmp_path / "sweep")
    assert (table.lr_convention, table.mup_base_width) == ("mup_base", 32)
    laws = {}
    for name, extra in (("plain", []), ("told", ["--lr-convention", "mup_base"])):
        out = tmp_path / f"{name}.yaml"
        with pytest.raises(SystemExit) as exc:
            main(["fit", str(tmp_path / "sweep"), "--out", str(out), "--method", "best-point",
                  "--bootstrap", "0", *extra])
        assert exc.value.code == 0
        laws[name] = yaml.safe_load(out.read_text())
    for d in laws.values():
        assert d["conventions"]["learning_rate"] == "mup_base"
        assert d["mup"] == {"base_width": 32, "wd_rule": "mup"}   # the runs' rule
    assert laws["plain"]["laws"] == laws["told"]["laws"]
    # a convention that contradicts the runs is one clear error, not a mislabelled law
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["fit", str(tmp_path / "sweep"), "--out", str(tmp_path / "peak.yaml"),
              "--method", "best-point", "--bootstrap", "0", "--lr-convention", "peak"])
    assert exc.value.code == 2
    assert "record lr_convention mup_base" in capsys.readouterr().err
    assert not (tmp_path / "peak.yaml").exists()
    # recommend reads the base width from the law set: no --base-width needed
    from advisor.recommendation.core import recommend
    rec = recommend(params=1e7, tokens=2e8, laws_file=str(tmp_path / "plain.yaml"))
    assert rec.mup["base_width"] == 32


def test_the_library_writes_the_law_set_the_cli_writes(tmp_path):
    """`advisor fit` only parses and formats: FitRequest + fit_lawset give the same law set
    (provenance, muP conventions and LR-law variables included) as the command's file."""
    from advisor.errors import AdvisorError
    from advisor.fit.pipeline import FitRequest, fit_lawset
    from pathlib import Path

    src = str(Path(__file__).parent / "data" / "user_model_cpu_sweep.csv")
    out = tmp_path / "cli.yaml"
    with pytest.raises(SystemExit) as exc:
        main(["fit", src, "--out", str(out), "--method", "optima", "--bootstrap", "3"])
    assert exc.value.code == 0
    _, d = fit_lawset(FitRequest(results=src, out=str(out), method="optima", n_bootstrap=3))
    assert yaml.safe_load(out.read_text()) == yaml.safe_load(yaml.safe_dump(d))
    # the runs record a muP base LR: its law is in D only, and the set says muP's base width
    assert d["conventions"]["learning_rate"] == "mup_base" and d["mup"]["base_width"] == 16
    assert "--lr-vars D" in d["provenance"]["command"]
    with pytest.raises(AdvisorError, match="--bootstrap"):
        FitRequest(results=src, out=str(out), n_bootstrap=-1)
