"""Sweep summaries: best LR per width, its shift in factors of 2, best loss per arm."""
import math

import pytest

from advisor.runs.store import RunRecord
from advisor.cli.plots import lr_sweeps as plot_lr_sweeps
from advisor.runs.summary import best_by_width, best_lr_table, optimum_shift

BASE = dict(depth=2, batch_size=8, seq_len=64, tokens=1000, schedule="constant",
            weight_decay=0.0, optimizer="muadamw", data="stdlib", family="proxy-llama")


def run(par, width, k, loss, status="finished", seed=0, model=None):
    s = dict(BASE, parameterization=par, width=width, lr=2.0 ** k, seed=seed, model=model or {})
    return RunRecord(f"{par}{width}{k}{seed}", s, status, final_val_loss=loss)


def bowl(par, width, k_opt, floor, model=None):
    return [run(par, width, k, floor + 0.1 * (k - k_opt) ** 2, model=model) for k in range(-10, -3)]


def test_best_lr_and_its_shift():
    runs = (bowl("mup", 32, -6, 3.0) + bowl("mup", 256, -6, 2.5)
            + bowl("sp", 32, -6, 3.0) + bowl("sp", 256, -9, 2.7))
    best = {(b.parameterization, b.width): b for b in best_lr_table(runs)}
    assert best["mup", 256].best_lr == 2 ** -6 and best["sp", 256].log2_best_lr == -9
    shifts = {s.parameterization: s.log2_shift for s in optimum_shift(list(best.values()))}
    assert shifts == {"mup": 0, "sp": -3}
    assert best_by_width(runs)[256] == {"mup": pytest.approx(2.5), "sp": pytest.approx(2.7)}


def test_diverged_runs_count_as_infinite_and_seeds_average():
    runs = [run("mup", 64, -6, 2.0, seed=0), run("mup", 64, -6, 2.4, seed=1),
            run("mup", 64, -5, 2.1, seed=0), run("mup", 64, -5, math.nan, "diverged", seed=1),
            run("mup", 64, -7, 2.3, seed=0), run("mup", 64, -7, 2.3, seed=1),
            run("mup", 64, -8, 1.0, "failed")]
    (b,) = best_lr_table(runs)
    assert b.best_lr == 2 ** -6 and b.best_val_loss == pytest.approx(2.2)
    assert b.n_lrs == 3                       # the failed run is left out


def test_arms_are_named_by_what_differs_and_plotted(tmp_path):
    pytest.importorskip("matplotlib")
    runs = (bowl("mup", 32, -6, 3.0, {"head_dim": 16}) + bowl("sp", 32, -6, 3.1, {"head_dim": 16})
            + bowl("sp", 32, -7, 3.2, {"head_dim": 16, "init_std_hidden": 0.02}))
    assert set(best_by_width(runs)[32]) == {"mup", "sp", "sp (init_std_hidden=0.02)"}
    plot_lr_sweeps(runs, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000
