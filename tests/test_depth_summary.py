"""calibration/analyze/depth_summary.py: best LR per depth and per alpha, read from a results store."""
import math
import subprocess
import sys

import pytest

from calibration.analyze.depth_summary import depth_rows, markdown_table, plot, transfer_verdicts
from advisor.runs.store import ResultsStore

LRS = [2.0 ** k for k in range(-9, -3)]


def _loss(alpha, depth, lr):
    # a bowl in log2(lr) whose bottom drifts 1 factor of 2 per doubling of depth when alpha = 0
    # and stays at 2^-6 otherwise; deeper is a little better
    centre = -6 - (math.log2(depth / 2) if alpha == 0 else 0)
    return 2.5 - 0.01 * math.log2(depth) + 0.05 * (math.log2(lr) - centre) ** 2


@pytest.fixture
def store(tmp_path):
    with ResultsStore.create(tmp_path) as st:
        i = 0
        for alpha in (0.0, 1.0):
            for depth in (2, 4, 8, 16):
                for lr in LRS:
                    s = {"width": 32, "depth": depth, "lr": lr, "model": {"depth_alpha": alpha}}
                    diverged = alpha == 0 and depth == 2 and lr == LRS[-1]
                    st.record(f"r{i}", s, "diverged" if diverged else "finished",
                              final_val_loss=None if diverged else _loss(alpha, depth, lr))
                    i += 1
        st.record("fail", {"width": 32, "depth": 2, "lr": 0.5, "model": {"depth_alpha": 1.0}},
                  "failed", error="boom")
    return tmp_path


def test_best_lr_per_depth_and_verdicts(store):
    with ResultsStore.open(store) as st:
        rows = depth_rows(st.runs())
    v = transfer_verdicts(rows)
    assert v[1.0].best_lr == (2 ** -6,) * 4 and v[1.0].ok and v[1.0].max_shift == 0
    assert v[0.0].best_lr == (2 ** -6, 2 ** -7, 2 ** -8, 2 ** -9)
    assert not v[0.0].ok and v[0.0].max_shift == 3
    assert v[0.0].edge == (16,)                   # 2^-9 is the grid's end
    r = next(r for r in rows if r.alpha == 0.0 and r.depth == 2)
    assert r.curve[-1][1] == math.inf                # diverged = +inf, failed left out
    table = markdown_table(rows)
    assert "| 16 | 2^-9, " in table and "no (max shift 3)" in table and "yes (max shift 0)" in table


def test_plot_and_cli(store, tmp_path):
    pytest.importorskip("matplotlib")
    with ResultsStore.open(store) as st:
        plot(depth_rows(st.runs()), tmp_path / "fig" / "d.png")
    assert (tmp_path / "fig" / "d.png").stat().st_size > 1000
    png = tmp_path / "cli.png"
    r = subprocess.run([sys.executable, "-m", "advisor.cli", "results", str(store), "--by",
                        "depth", "--plot", str(png)], capture_output=True, text=True)
    assert r.returncode == 0 and "alpha 1: best LR, loss" in r.stdout, r.stderr
    assert png.read_bytes()[:4] == b"\x89PNG"
    r = subprocess.run([sys.executable, "-m", "advisor.cli", "results", str(tmp_path / "none"),
                        "--by", "depth"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr


def test_mixed_widths_are_refused(tmp_path):
    from advisor.errors import AdvisorError
    with ResultsStore.create(tmp_path) as st:
        for w in (32, 64):
            st.record(f"w{w}", {"width": w, "depth": 2, "lr": 0.01}, "finished", final_val_loss=2.0)
        with pytest.raises(AdvisorError, match="one width"):
            depth_rows(st.runs())
