"""Bad sweeps give one clear line and exit code 2, never a fit of garbage.

Each case is cut from Step Law's released grid (shared/data/external) and damaged the way
real sweeps are: too few cells, everything diverged, one LR per cell, NaN losses, duplicate
rows, a batch column in the wrong unit.
"""
import csv
from pathlib import Path

import numpy as np
import pytest

from advisor.cli import main

@pytest.fixture(scope="module")
def grid(external_data):
    """Step Law's released dense grid (shared external data; skipped where absent)."""
    return external_data / "steplaw_dense_lr_bs_loss.csv"


def read_grid(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def cells_of(rows):
    return sorted({(float(r["N"]), float(r["D"])) for r in rows})


def write(tmp_path, rows, name="grid.csv"):
    p = tmp_path / name
    with open(p, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return str(p)


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    err = capsys.readouterr().err.strip().splitlines()
    return exc.value.code, err


def expect_error(capsys, path, *phrases, tmp_path):
    out = str(tmp_path / "laws.yaml")
    code, err = run_cli(capsys, "fit", path, "--out", out, "--bootstrap", "0")
    assert code == 2
    lines = [e for e in err if e.startswith("error:")]
    assert len(lines) == 1, err
    for ph in phrases:
        assert ph in lines[0], lines[0]
    assert not Path(out).exists()


@pytest.fixture(scope="module")
def rows(grid):
    return read_grid(grid)


def test_too_few_cells(rows, tmp_path, capsys):
    keep = set(cells_of(rows)[:3])
    sub = [r for r in rows if (float(r["N"]), float(r["D"])) in keep]
    expect_error(capsys, write(tmp_path, sub), "at least 4", "got 3", tmp_path=tmp_path)


def test_all_runs_diverged(rows, tmp_path, capsys):
    sub = [dict(r, status="diverged") for r in rows[:300]]
    expect_error(capsys, write(tmp_path, sub), "all 300 runs diverged", tmp_path=tmp_path)


def test_single_lr_per_cell(rows, tmp_path, capsys):
    # for each cell keep only the runs at one LR (the cell's most common one)
    by_cell = {}
    for r in rows:
        by_cell.setdefault((r["N"], r["D"]), []).append(r)
    sub = []
    for runs in by_cell.values():
        lrs = [r["lr"] for r in runs]
        top = max(set(lrs), key=lrs.count)
        sub += [r for r in runs if r["lr"] == top]
    expect_error(capsys, write(tmp_path, sub), "distinct LR", "at least 3 LRs",
                 tmp_path=tmp_path)


def test_nan_loss_without_status(rows, tmp_path, capsys):
    sub = [dict(r) for r in rows]
    sub[10]["smooth loss"] = "nan"
    sub[20]["smooth loss"] = ""
    expect_error(capsys, write(tmp_path, sub), "2 run(s)", "NaN or missing", "status",
                 tmp_path=tmp_path)


def test_duplicate_rows(rows, tmp_path, capsys):
    sub = rows + rows[:5]
    expect_error(capsys, write(tmp_path, sub), "5 duplicate run(s)", tmp_path=tmp_path)


def test_bs_tokens_column_holding_sequences(rows, tmp_path, capsys):
    sub = [dict(r, bs_tokens=r["bs"]) for r in rows]
    expect_error(capsys, write(tmp_path, sub), "bs_tokens", "looks like a batch in sequences",
                 "equals the bs column", tmp_path=tmp_path)
    # without a bs column to compare with: a median below 4096 tokens gives it away
    sub = [{k: v for k, v in r.items() if k not in ("bs", "ti")} for r in sub]
    expect_error(capsys, write(tmp_path, sub, "b.csv"), "bs_tokens",
                 "looks like a batch in sequences", "median", tmp_path=tmp_path)


def test_bs_column_holding_tokens(rows, tmp_path, capsys):
    sub = [dict(r, bs=str(float(r["bs"]) * 2048)) for r in rows]
    expect_error(capsys, write(tmp_path, sub), "looks like a batch in tokens",
                 tmp_path=tmp_path)


def test_steps_times_batch_must_match_tokens(rows, tmp_path, capsys):
    # bs given per 1024-token sequence while the file says 2048: steps x batch = D / 2
    sub = [dict(r, bs=str(float(r["bs"]) / 2)) for r in rows]
    expect_error(capsys, write(tmp_path, sub), "steps x batch is 0.5 x D", "wrong unit",
                 tmp_path=tmp_path)


def test_missing_columns_and_files(tmp_path, capsys):
    p = tmp_path / "x.csv"
    p.write_text("N,D,lr\n1,2,3\n")
    expect_error(capsys, str(p), "missing column", tmp_path=tmp_path)
    expect_error(capsys, str(tmp_path / "nope.csv"), "no such results store", tmp_path=tmp_path)


def test_evaluate_needs_a_law_or_cross_validation(capsys, grid):
    code, err = run_cli(capsys, "evaluate", "--grid", str(grid))
    assert code == 2 and err == ["error: give --law NAME|FILE, or --cross-validate"]


def test_diverged_runs_are_kept_and_cap_the_lr_optimum(rows):
    """A diverged run is evidence (LR too high): the cell optimum stays below it."""
    from advisor.fit.optima import cell_optimum
    from advisor.runs.table import table_from_rows

    N, D = cells_of(rows)[0]
    cell = [dict(r) for r in rows if (float(r["N"]), float(r["D"])) == (N, D)]
    t0 = table_from_rows(cell)
    o0 = cell_optimum(t0, np.ones(len(t0), bool), n_bootstrap=0)
    lr_opt = o0.optimum["learning_rate"]
    # as if every run with an LR above 0.8 x the optimum had blown up
    for r in cell:
        if float(r["lr"]) > 0.8 * lr_opt:
            r["status"] = "diverged"
            r["smooth loss"] = "nan"
        else:
            r["status"] = "finished"
    t1 = table_from_rows(cell)
    o1 = cell_optimum(t1, np.ones(len(t1), bool), n_bootstrap=0)
    assert o1.n_diverged > o0.n_diverged
    assert o1.optimum["learning_rate"] < 0.8 * lr_opt
    assert any("capped" in f or "edge" in f for f in o1.flags)
    # the table keeps them, marked as diverged
    assert len(t1) == len(cell) and t1.diverged.sum() == o1.n_diverged


def test_mixed_parameterizations_are_refused_until_one_is_selected(rows, tmp_path, capsys):
    sub = [dict(r, parameterization="mup" if i % 2 else "sp") for i, r in enumerate(rows)]
    path = write(tmp_path, sub)
    expect_error(capsys, path, "runs differ in parameterization", "--select",
                 tmp_path=tmp_path)
    from advisor.runs.table import load_runs
    t = load_runs(path, select=["parameterization=mup"])
    assert len(t) == len(rows) // 2
