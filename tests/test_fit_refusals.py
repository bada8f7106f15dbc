"""Degenerate data gets a refusal or a stated fallback, never a silent number (issue 14).

Each grid is cut from Step Law's released dense grid (shared external data) and made
degenerate the way real grids are: N spanning 0.26% (as Step Law's MoE grid does when N
counts total parameters), N and D both that narrow, a law file whose exponent overflows,
an optimizer run out of evaluations, several architectures at one N.
"""
import csv
import json

import numpy as np
import pytest
import yaml
from scipy.optimize import least_squares

from advisor.cli import main
from advisor.errors import AdvisorError
from advisor.fit.gaps import cell_gap
from advisor.fit.identify import MIN_FACTOR, span_reason
from advisor.fit.status import from_least_squares
from advisor.runs.table import load_runs

GRID_NAME = "steplaw_dense_lr_bs_loss.csv"
MOE_LIKE_N = (2150612992, 2156188672)      # total N of Step Law's MoE cells: a 0.26% span


@pytest.fixture(scope="module")
def rows(external_data):
    with open(external_data / GRID_NAME, newline="") as f:
        return list(csv.DictReader(f))


def write(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return str(path)


def squeeze(rows, col, lo, hi):
    """Map the column's distinct values, in order, onto [lo, hi] (geometrically)."""
    vals = sorted({float(r[col]) for r in rows})
    new = dict(zip(vals, np.geomspace(lo, hi, len(vals))))
    return [dict(r, **{col: repr(float(round(new[float(r[col])])))}) for r in rows]


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    cap = capsys.readouterr()
    return exc.value.code, cap.out, cap.err


@pytest.fixture(scope="module")
def narrow_n_grid(rows, tmp_path_factory):
    # a quarter of the cells keeps the test fast; N squeezed onto the MoE grid's 0.26% span
    keep = sorted({(r["N"], r["D"]) for r in rows})[::2]
    sub = [r for r in rows if (r["N"], r["D"]) in keep]
    return write(tmp_path_factory.mktemp("narrow") / "narrow_n.csv",
                 squeeze(sub, "N", *MOE_LIKE_N))


def test_identifiability_rule_in_one_place():
    assert span_reason([2.1506e9, 2.1562e9], "N").startswith("N spans only 0.26")
    assert span_reason([2.1e8, 2.1e8], "N") == "all cells have N=2.1e+08"
    assert span_reason([1e8, MIN_FACTOR * 1e8], "N") is None


@pytest.mark.parametrize("method,extra", [("surface", ["--no-extrapolation"]),
                                          ("best-point", []),
                                          ("optima", ["--batch-vars", "D"]),
                                          ("best-point", ["--batch-vars", "N,D"])])
def test_narrow_n_falls_back_to_a_law_in_d_and_says_so(narrow_n_grid, capsys, method, extra):
    code, out, err = run_cli(capsys, "evaluate", "--grid", narrow_n_grid, "--cross-validate",
                             "--method", method, *extra, "--format", "json")
    assert code == 0, err
    assert "internal error" not in err and "Traceback" not in err
    d = json.loads(out)
    notes = " ".join(d["notes"])
    assert "no N exponent" in notes and "N spans only 0.26%" in notes
    cells = d["cells"] + [c for f in (d["extrapolation_cells"] or {}).values() for c in f]
    for c in cells:
        assert np.isfinite(c["pred_lr"]) and 1e-5 < c["pred_lr"] < 0.1
        assert np.isfinite(c["pred_batch_tokens"]) and 1e4 < c["pred_batch_tokens"] < 1e8
        assert np.isfinite(c["gap"])
    assert np.isfinite(d["summary"]["mean_gap"])
    if "--no-extrapolation" not in extra:
        for name in ("largest-N", "largest-D", "smallest-N", "smallest-D"):
            assert np.isfinite(d["extrapolation"][name]["mean_gap"])
        assert len(cells) > len(d["cells"])


def test_narrow_n_and_d_is_refused_with_the_reason(rows, tmp_path, capsys):
    keep = sorted({(r["N"], r["D"]) for r in rows})[::3]
    sub = squeeze([r for r in rows if (r["N"], r["D"]) in keep], "N", *MOE_LIKE_N)
    # D squeezed too (without the steps column, which would no longer match D / batch)
    sub = [{k: v for k, v in r.items() if k != "ti"} for r in squeeze(sub, "D", 2.0e10,
                                                                      2.004e10)]
    path = write(tmp_path / "narrow_nd.csv", sub)
    for args in (["evaluate", "--grid", path, "--cross-validate"],
                 ["evaluate", "--grid", path, "--cross-validate", "--method", "best-point"],
                 ["fit", path, "--out", str(tmp_path / "l.yaml"), "--bootstrap", "0"]):
        code, out, err = run_cli(capsys, *args)
        assert code == 2, (args, err)
        lines = [e for e in err.splitlines() if e.startswith("error:")]
        assert len(lines) == 1 and "cannot be fitted" in lines[0], err
        assert "N spans only 0.26%" in lines[0] and "D spans only 0.2%" in lines[0]
    assert not (tmp_path / "l.yaml").exists()


def test_fit_on_narrow_n_writes_no_n_exponent_and_no_loss_law(narrow_n_grid, tmp_path, capsys):
    out = tmp_path / "laws.yaml"
    code, stdout, err = run_cli(capsys, "fit", narrow_n_grid, "--out", str(out),
                                "--bootstrap", "0", "--method", "best-point")
    assert code == 0, err
    d = yaml.safe_load(out.read_text())
    assert set(d["laws"]["learning_rate"]["exponents"]) == {"D"}
    assert "loss" not in d["laws"]          # alpha in N is not identified either
    notes = " ".join(d["provenance"]["notes"])
    assert "no N exponent" in notes and "loss law not fitted" in notes
    assert "note: the learning-rate law has no N exponent" in stdout


def test_non_finite_predictions_are_never_scored(external_data):
    table = load_runs(external_data / GRID_NAME)
    mask = table.cell_index == 0
    ok = cell_gap(table, mask, 1e-3, 5e5)
    assert np.isfinite(ok["gap"])
    for lr, b in ((float("nan"), 5e5), (float("inf"), 5e5), (0.0, 5e5), (1e-3, float("nan")),
                  (1e-3, float("inf"))):
        with pytest.raises(AdvisorError, match="not a finite positive number"):
            cell_gap(table, mask, lr, b)


def test_law_file_whose_prediction_overflows_is_refused(external_data, tmp_path, capsys):
    law = {"schema": "hp-advisor/lawset/v1", "name": "overflow", "title": "t",
           "source": {"citation": "test"}, "conventions": {"params": "non_embedding",
                                                           "batch_unit": "tokens"},
           "laws": {"learning_rate": {"form": "power_law", "coefficient": 1.0,
                                      "exponents": {"N": 400.0}},
                    "batch_size": {"form": "power_law", "coefficient": 1.0,
                                   "exponents": {"D": 0.5}}}}
    p = tmp_path / "overflow.yaml"
    p.write_text(yaml.safe_dump(law))
    code, out, err = run_cli(capsys, "evaluate", "--grid", str(external_data / GRID_NAME),
                             "--law", str(p))
    assert code == 2, err
    lines = [e for e in err.splitlines() if e.startswith("error:")]
    # refused when the file is read (advisor.laws.plausible), before any cell is scored
    assert len(lines) == 1 and "exponent +400 on N" in lines[0], err
    assert "internal error" not in err


def test_optimizer_that_runs_out_of_evaluations_is_reported(rows, tmp_path, capsys):
    keep = sorted({(r["N"], r["D"]) for r in rows})[::2]
    path = write(tmp_path / "g.csv", [r for r in rows if (r["N"], r["D"]) in keep])
    out = tmp_path / "laws.yaml"
    code, stdout, err = run_cli(capsys, "fit", path, "--out", str(out), "--bootstrap", "0",
                                "--max-nfev", "2")
    assert code == 0, err
    warns = [l for l in stdout.splitlines() if l.startswith("warning: surface fit")]
    assert len(warns) == 6 and all("did not converge" in w for w in warns)
    opt = yaml.safe_load(out.read_text())["provenance"]["optimizer"]
    assert opt["converged"] is False and opt["at_bounds"] == []
    surf = [c for c in opt["calls"] if c["what"].startswith("surface")]
    assert len(surf) == 6 and all(not c["converged"] and c["nfev"] <= 3 for c in surf)
    loss = [c for c in opt["calls"] if c["what"].startswith("loss-law")]
    assert len(loss) == 1 and loss[0]["converged"] and loss[0]["nfev"] > 0


def test_parameters_at_a_bound_are_named():
    # a real bounded least_squares call whose optimum (slope 2) lies beyond its bound (1)
    x = np.linspace(0, 1, 20)
    res = least_squares(lambda p: p[0] * x + p[1] - (2 * x + 0.5), [0.5, 0.0],
                        bounds=([0, -1], [1, 1]))
    st = from_least_squares(res, "test fit", names=["slope", "offset"],
                            bounds=([0, -1], [1, 1]))
    assert st.at_bounds == ["slope"] and not st.clean
    assert "slope" in st.warning() and "bound" in st.warning()
    assert st.as_dict()["at_bounds"] == ["slope"]


def test_in_sample_only_on_the_grid_the_law_was_fitted_on(rows, tmp_path, capsys):
    cells = sorted({(r["N"], r["D"]) for r in rows})
    a = write(tmp_path / "a.csv", [r for r in rows if (r["N"], r["D"]) in set(cells[::2])])
    b = write(tmp_path / "b.csv", [r for r in rows if (r["N"], r["D"]) in set(cells[1::2])])
    out = tmp_path / "laws.yaml"
    code, _, err = run_cli(capsys, "fit", a, "--out", str(out), "--bootstrap", "0",
                           "--method", "best-point")
    assert code == 0, err
    labels = {}
    for name, grid in (("a", a), ("b", b)):
        code, o, err = run_cli(capsys, "evaluate", "--grid", grid, "--law", str(out),
                               "--format", "json")
        assert code == 0, err
        labels[name] = json.loads(o)["evaluated"]
    assert "in-sample (fitted on this grid)" in labels["a"]
    assert "out-of-sample" in labels["b"] and "in-sample" not in labels["b"]
    code, o, _ = run_cli(capsys, "evaluate", "--grid", a, "--law", "step-law", "--format",
                         "json")
    assert "does not say" in json.loads(o)["evaluated"]


def test_cell_by_splits_architectures_that_share_n(rows, tmp_path, capsys):
    """Two dense models (N=429M, numl 10, and N=537M, numl 13) relabelled to one N: at
    D=50B both have a cell, which without --cell-by would silently merge."""
    keep = {"429260800", "536872960"}
    sub = [dict(r, N="429260800") for r in rows if r["N"] in keep]
    path = write(tmp_path / "shared_n.csv", sub)
    merged = load_runs(path)
    assert len(merged.cells) == 6
    assert any("mix architectures" in n and "--cell-by" in n for n in merged.notes)
    split = load_runs(path, cell_by="numl")
    assert len(split.cells) == 7 and split.cell_by == ("numl",)
    assert not any("mix architectures" in n for n in split.notes)
    assert "numl=13" in split.cell_label(6) or any("numl=13" in split.cell_label(c)
                                                    for c in range(7))
    # a repeat of one architecture's runs under another name is refused as duplicates
    # until --cell-by names the column that tells them apart
    cell = [r for r in sub if r["numl"] == "10" and r["D"] == "50000000000"]
    dup = write(tmp_path / "dup.csv", sub + [dict(r, numl="11") for r in cell])
    code, _, err = run_cli(capsys, "evaluate", "--grid", dup, "--law", "step-law")
    assert code == 2 and "duplicate run(s)" in err and "--cell-by" in err
    code, out, err = run_cli(capsys, "evaluate", "--grid", dup, "--law", "step-law",
                             "--cell-by", "numl", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["summary"]["cells"] == 8


def test_n_column_and_cell_by_errors(rows, tmp_path, capsys):
    keep = sorted({(r["N"], r["D"]) for r in rows})[::2]
    sub = [{("Na" if k == "N" else k): v for k, v in r.items()} for r in rows
           if (r["N"], r["D"]) in keep]
    path = write(tmp_path / "na.csv", sub)
    t = load_runs(path, n_column="Na")
    assert t.n_column == "Na" and len(t.cells) == len(keep)
    out = tmp_path / "l.yaml"
    code, _, err = run_cli(capsys, "fit", path, "--out", str(out), "--bootstrap", "0",
                           "--method", "best-point", "--n-column", "Na")
    assert code == 0, err
    assert yaml.safe_load(out.read_text())["provenance"]["n_column"] == "Na"
    for args, phrase in ((["--n-column", "Nx"], "no column(s) 'Nx'"),
                         (["--n-column", "Na", "--cell-by", "h,,numl"], "--cell-by takes"),
                         (["--n-column", "Na", "--cell-by", "D"], "N and D always define")):
        code, _, err = run_cli(capsys, "evaluate", "--grid", path, "--law", "step-law", *args)
        assert code == 2 and phrase in err, err
    code, _, err = run_cli(capsys, "evaluate", "--grid", path, "--law", "step-law")
    assert code == 2 and "missing column(s) N" in err


def test_a_law_that_would_overflow_refuses_to_predict():
    from advisor.fit.lr_batch import LRBatchLaws
    from advisor.fit.powerlaw import PowerLaw

    laws = LRBatchLaws(method="best-point", lr=PowerLaw(1.0, {"N": 480.0}),
                       batch=PowerLaw(1.0, {"D": float("nan")}), cells=[])
    with pytest.raises(AdvisorError, match="predicts inf"):
        laws.predict(2.15e9, 2e10)
    laws.lr = PowerLaw(1.0, {"N": -0.7})
    with pytest.raises(AdvisorError, match="batch size law predicts NaN"):
        laws.predict(2.15e9, 2e10)


def test_a_seq_len_column_converts_bs_per_run(rows):
    from advisor.runs.table import table_from_rows

    sub = [dict(r, seq_len="4096", bs=str(int(r["bs"]) // 2)) for r in rows[:300]]
    t = table_from_rows(sub)
    # sub's bs, halved; the table holds the runs in its own (canonical) order, so by name
    want = {r["exp_name"]: int(r["bs"]) * 4096 for r in sub}
    assert np.array_equal(t.batch_tokens, np.array([want[n] for n in t.names], float))
