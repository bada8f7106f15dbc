"""What a calibration plan buys (`advisor plan`, issue 24), as specifications:

- the expected excess loss at the target *before* calibration is exactly the figure
  `advisor recommend` prints for the target with the default laws;
- *after* is priced the same way with the LR sd the planned sweep is expected to give, from
  its design under the fitter's own noise model: the fitter's optimum really scatters as
  predicted, more seeds or more budget buy a narrower interval;
- a plan that identifies no D dependence, or whose target the default laws cannot price, is
  refused with one `error:` line (exit 2) before anything is written;
- a plan that buys nothing the default laws can price is still written (the user may
  calibrate for their own data or model), marked `worth_it: false` with a warning that says
  why, with the figures.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from advisor.errors import AdvisorError
from advisor.fit.design import Budget, make_plan, planned_lr_sd
from advisor.fit.plan_precision import law_sd_octaves, optimum_sd_octaves
from advisor.specs.hfarch import architecture_from_hf_config
from tests.conftest import LLAMA_GQA

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1")
TARGET_TOKENS = 1e7          # where the default laws still price this small target


@pytest.fixture
def config(tmp_path):
    p = tmp_path / "config.json"
    p.write_text(json.dumps(LLAMA_GQA))
    return p


def advisor(*args):
    return subprocess.run([sys.executable, "-m", "advisor.cli", *map(str, args)],
                          capture_output=True, text=True, env=ENV, cwd=REPO, timeout=300)


def one_error_line(r) -> str:
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def test_the_fitters_optimum_scatters_as_the_design_predicts():
    """Noisy parabolas in log2 LR (sigma/k = 0.9 octaves^2, the CPU profile's), 7 LRs an
    octave apart, fitted by the fitter itself (advisor.fit.optima.cell_optimum): the sd of
    its optimum is the design's prediction, within 25%, on and between grid points."""
    from advisor.fit.optima import cell_optimum
    from advisor.runs.table import table_from_rows

    rng = np.random.default_rng(0)
    k, sigma, L0 = 0.05, 0.045, 4.7            # nats/octave^2, nats, nats (the CPU sweep's)
    xs = np.arange(-9, -2)
    predicted = optimum_sd_octaves(sigma / k, len(xs), 1.0, seeds=1)
    for opt in (-6.0, -6.5):
        est = []
        for _ in range(150):
            rows = [{"lr": 2.0 ** x, "bs_tokens": 512, "seq_len": 64, "N": 1e4, "D": 1e5,
                     "loss": L0 + k * (x - opt) ** 2 + rng.normal(0, sigma)} for x in xs]
            t = table_from_rows(rows, loss="final")
            o = cell_optimum(t, np.ones(len(t), bool), n_bootstrap=0)
            est.append(math.log2(o.optimum["learning_rate"]))
        assert np.std(est) == pytest.approx(predicted, rel=0.25), opt
        assert abs(np.mean(est) - opt) < 0.05                # unbiased


def test_more_seeds_and_more_token_budgets_narrow_the_fitted_law():
    r = 0.9
    # a second seed per LR does not narrow a cell's optimum under the fitter's window rule:
    # 6 runs are 3 LRs x 2 seeds, so the window holds fewer LRs (the prediction follows)
    assert optimum_sd_octaves(r, 7, 1.0, seeds=2) > optimum_sd_octaves(r, 7, 1.0, seeds=1)
    assert optimum_sd_octaves(r, 7, 1.0, seeds=4) < optimum_sd_octaves(r, 7, 1.0, seeds=2)
    assert optimum_sd_octaves(r, 2, 1.0) == math.inf           # no quadratic from 2 LRs
    cell = optimum_sd_octaves(r, 7, 1.0)
    two = law_sd_octaves(cell, [1e5, 2e5] * 3, 1e7)
    assert law_sd_octaves(cell, [1e5, 2e5, 4e5] * 3, 1e7) < two
    assert law_sd_octaves(cell, [1e5, 2e5] * 3, 1.5e5) < two    # interpolation is cheaper
    assert law_sd_octaves(cell, [1e5] * 3, 1e7) == math.inf    # one budget: no D dependence


def test_a_plan_with_more_budget_buys_a_narrower_interval(config):
    from advisor.recommendation.core import recommend
    from advisor.recommendation.plan_value import planned_excess_loss
    from advisor.specs.modelspec import spec_from_hf_config

    arch = architecture_from_hf_config(config)
    before = recommend(model_spec=spec_from_hf_config(config),
                       tokens=TARGET_TOKENS).expected_excess_loss
    afters, sds = [], []
    for minutes in (120, 600, 3000):
        d = make_plan(arch, Budget.parse(cpu_minutes=minutes))
        sd = planned_lr_sd(d, TARGET_TOKENS)["law_sd_octaves"]
        Ds = d["estimate"]["D_tokens"]
        b = planned_excess_loss(before, sd, (min(Ds), max(Ds)), TARGET_TOKENS)
        assert b["before"]["value"] == before.value
        sds.append(b["after"]["lr_sd_octaves"])
        afters.append(b["after"]["value"])
    assert sds[0] > sds[1] > sds[2] and afters[0] > afters[1] > afters[2]
    assert afters[0] < before.value


def test_the_plan_states_before_as_recommend_prices_it_and_after(tmp_path, config):
    out = tmp_path / "plan.yaml"
    r = advisor("plan", "--hf-config", config, "--budget-cpu-minutes", 120,
                "--tokens", TARGET_TOKENS, "--out", out)
    assert r.returncode == 0, r.stderr
    buys = yaml.safe_load(out.read_text())["estimate"]["expected_excess_loss"]
    rec = json.loads(advisor("recommend", "--hf-config", config, "--tokens", TARGET_TOKENS,
                             "--format", "json").stdout)
    assert buys["before"]["value"] == rec["expected_excess_loss"]["value"]
    assert buys["before"]["lr_sd_octaves"] == rec["expected_excess_loss"]["sd_lr_octaves"]
    assert 0 < buys["after"]["value"] < buys["before"]["value"]
    assert buys["saves"] == pytest.approx(buys["before"]["value"] - buys["after"]["value"],
                                          rel=0.01)
    d = buys["design"]
    assert (d["cells"], d["lrs"], d["seeds"]) == (6, 7, 1) and d["law_sd_octaves"] > 0
    assert "buys: expected excess loss at the target (1e+07 tokens)" in r.stdout
    assert f"{buys['after']['value']:.3g} after" in r.stdout


def test_a_plan_that_buys_nothing_at_the_target_is_written_with_a_warning(tmp_path, config):
    """At the target's compute-optimal budget (recommend's default, ~1e8 tokens), proxies of
    a 120-minute CPU plan see 1,000x fewer tokens: the extrapolation costs more than the
    published laws' interval. The plan is still written, and says so."""
    out = tmp_path / "plan.yaml"
    r = advisor("plan", "--hf-config", config, "--budget-cpu-minutes", 120, "--out", out)
    assert r.returncode == 0, r.stderr
    warning = [ln for ln in r.stderr.splitlines() if ln.startswith("warning: ")]
    assert len(warning) == 1 and "buys nothing at the target's" in warning[0]
    assert "before calibration" in warning[0] and "--tokens" in warning[0]
    buys = yaml.safe_load(out.read_text())["estimate"]["expected_excess_loss"]
    assert buys["worth_it"] is False and buys["after"]["value"] >= buys["before"]["value"]
    assert buys["warning"] == warning[0].removeprefix("warning: ")
    out.unlink()
    # where the default laws cannot price the target at all, the plan says so too
    line = one_error_line(advisor("plan", "--hf-config", config, "--budget-cpu-minutes", 120,
                                  "--tokens", 3e5, "--out", out))
    assert "cannot price what the plan buys" in line and not out.exists()


def test_a_sweep_that_identifies_no_d_dependence_buys_nothing():
    from advisor.recommendation.core import recommend
    from advisor.recommendation.plan_value import planned_excess_loss

    before = recommend(params=1e8).expected_excess_loss
    with pytest.raises(AdvisorError, match="cannot fit the LR law's D dependence"):
        planned_excess_loss(before, law_sd_octaves(0.1, [1e5] * 3, 1e9), (1e5, 1e5), 1e9)
