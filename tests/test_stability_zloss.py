"""The log-partition with and without z-loss (issue 26; W23 section 3.1.2).

Specifications: the late trend of a probe is the least-squares slope over the late steps with
its 95% interval, called flat when the interval covers 0; a store's runs read back as
log-partition trajectories (a store without the probes is refused with the reason); a real
z-loss pulls log Z towards 0 relative to the same run without it, and the summary reports that
change, the trend and the loss, per (LR, width, coefficient); the shipped cpu-zloss plan has
the coefficients 0 and 1e-4 at several widths and two seeds; ``advisor results --by zloss``
prints the table, writes JSON with no NaN and a figure, and refuses a missing store.
"""
from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.errors import AdvisorError
from advisor.fit.stability import late_trend
from advisor.runs.stability_data import lse_trajectories

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "advisor.cli", *args], capture_output=True,
                          text=True, env=env)


def test_late_trend_recovers_a_planted_slope_from_the_late_steps_only():
    rng = random.Random(0)
    early = [(s, 9.0) for s in (50, 100, 150)]               # ignored: before from_step
    late = [(s, 6.0 - 1.5 * s / 1000 + 0.02 * rng.gauss(0, 1)) for s in range(200, 1001, 50)
            for _ in range(2)]                               # two seeds
    t = late_trend(early + late, from_step=200)
    assert t.from_step == 200 and t.to_step == 1000 and t.n == len(late)
    assert t.rate == pytest.approx(-1.5, abs=0.05) and t.rate_half_width < 0.1
    assert t.direction() == "falls"
    assert t.start == pytest.approx(5.7, abs=0.05) and t.end == pytest.approx(4.5, abs=0.05)


def test_a_trend_hidden_in_noise_is_flat_and_too_few_points_give_none():
    rng = random.Random(1)
    noisy = [(s, 5.0 + 0.01 * s / 1000 + rng.gauss(0, 1)) for s in range(500, 1001, 100)]
    assert late_trend(noisy, 500).direction() == "flat"
    assert late_trend([(500, 1.0), (1000, 2.0)], 500) is None          # 2 points: no interval
    assert late_trend([(1000, 1.0)] * 5, 500) is None                  # one step
    assert late_trend([(900, math.nan), (950, 1.0), (1000, 2.0)], 0) is None


def test_a_store_without_log_partition_probes_is_refused(tmp_path):
    from advisor.runs.store import ResultsStore
    from advisor.specs.runspec import RunSpec

    with ResultsStore.create(tmp_path / "old") as store:
        spec = RunSpec(width=32, depth=2)
        store.record(spec.run_id, spec.settings(), "finished", final_val_loss=2.0)
        with pytest.raises(AdvisorError, match="stab.lse_mean"):
            lse_trajectories(store)


torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def zloss_store(tmp_path_factory):
    """Real runs: width 32, 48 steps at LR 2^-5, z-loss 0 and 0.1, seeds 0 and 1, log Z
    probed every 12 steps."""
    from advisor.runs.store import ResultsStore
    from advisor.specs.runspec import RunSpec
    from calibration.train.data import load_data
    from calibration.train.group import train_stack

    torch.set_num_threads(1)
    data = load_data("stdlib")
    specs = [RunSpec(width=32, depth=2, seq_len=32, batch_size=4, tokens=4 * 32 * 48,
                     eval_interval=12, eval_sequences=8, parameterization="sp", lr=2 ** -5,
                     weight_decay=0.1, stack=True, compile="never", seed=seed,
                     model={"head_dim": 16, "base_width": 32, "z_loss": z})
             for seed in (0, 1) for z in (0.0, 0.1)]
    path = tmp_path_factory.mktemp("zloss") / "store"
    with ResultsStore.create(path) as store:
        for r in train_stack(specs, data):
            assert r.status == "finished"
            store.record_result(r)
    return path


def test_z_loss_pulls_log_z_towards_zero_and_the_summary_says_by_how_much(zloss_store):
    from advisor.runs.store import ResultsStore
    from calibration.analyze.zloss_trajectory import summarise

    with ResultsStore.open(zloss_store, readonly=True) as store:
        trajs = lse_trajectories(store)
    assert len(trajs) == 4 and all(t.steps == [12, 24, 36, 48] for t in trajs)
    final = {(t.z_loss, t.seed): t.lse_mean[-1] for t in trajs}
    for seed in (0, 1):                     # the pull, in every seed, not only on average
        assert abs(final[(0.1, seed)]) < abs(final[(0.0, seed)]) - 1.0
    s = summarise(trajs)
    rows = {r["z_loss"]: r for r in s["rows"]}
    assert rows[0.0]["change_vs_off"] is None and rows[0.0]["seeds"] == [0, 1]
    change = rows[0.1]["change_vs_off"]
    assert change == pytest.approx(sum(final[(0.1, k)] - final[(0.0, k)] for k in (0, 1)) / 2)
    assert change < -1.0
    assert rows[0.1]["trend"]["from_step"] == 24 and rows[0.1]["trend"]["to_step"] == 48
    assert s["per_z_loss"]["0.1"]["change_vs_off_mean"] == pytest.approx(change)
    assert all(math.isfinite(r["loss"]) for r in s["rows"])


def test_advisor_results_by_zloss_prints_the_table_writes_json_and_a_figure(zloss_store,
                                                                            tmp_path):
    png = tmp_path / "z.png"
    out = _cli("results", str(zloss_store), "--by", "zloss", "--format", "json",
               "--plot", str(png))
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)                    # strict JSON: no NaN/inf
    assert d["schema"] == "hp-advisor/zloss-trajectory/v1" and len(d["rows"]) == 2
    assert png.stat().st_size > 10_000
    table = _cli("results", str(zloss_store), "--by", "zloss")
    assert table.returncode == 0 and "| z-loss |" in table.stdout
    missing = _cli("results", str(tmp_path / "missing"), "--by", "zloss")
    assert missing.returncode == 2 and missing.stderr.startswith("error:")


def test_the_cpu_zloss_plan_compares_off_and_1e_4_at_several_widths_with_two_seeds():
    from advisor.specs.plan import load_plan

    runs = load_plan("cpu-zloss").specs
    zs = {float(dict(r.model or {}).get("z_loss", 0.0)) for r in runs}
    assert {0.0, 1e-4} <= zs
    assert len({r.width for r in runs}) >= 3 and {r.seed for r in runs} == {0, 1}
    assert {r.tokens // (r.batch_size * r.seq_len) for r in runs} == {1000}
