"""The depth view of `advisor recommend` (advisor/recommendation/depth_view.py) and what the exports carry."""
import json
import subprocess
import sys
import tomllib

import pytest

from advisor import recommend
from advisor.recommendation.depth_view import depth_view
from advisor.export import exporter
from advisor.export.common import depth_note
from advisor.errors import AdvisorError
from advisor.export import export


def cli(*args):
    return subprocess.run([sys.executable, "-m", "advisor.cli", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def rec7b():
    return recommend(params=7e9)


def test_7b_depth_view_states_base_and_target_depth_and_multipliers(rec7b):
    d = rec7b.to_dict()["depth"]
    assert d["base_depth"] == 4 and d["depth"] == rec7b.model["n_layers"]
    assert d["alpha"] == 1.0 and "CompleteP" in d["rule"]
    m_l = rec7b.model["n_layers"] / 4
    assert d["depth_multiplier"] == pytest.approx(m_l, rel=1e-3)
    assert d["residual_multiplier"] == pytest.approx(1 / m_l, rel=1e-3)
    groups = {g["group"]: g for g in d["groups"]}
    assert set(groups) == {"embedding", "hidden", "block_vector", "final_norm", "readout"}
    assert groups["hidden"]["lr_multiplier"] == 1.0                 # m_L^(alpha-1) = 1
    assert groups["hidden"]["eps_multiplier"] == pytest.approx(1 / m_l, rel=1e-3)
    # with the width rules: hidden LR x 1/m_N (as the muP view), readout output x 1/m_N
    m_n = rec7b.mup["width_multiplier"]
    assert groups["hidden"]["with_width"]["lr_multiplier"] == pytest.approx(1 / m_n, rel=1e-3)
    assert groups["readout"]["with_width"]["output_multiplier"] == pytest.approx(1 / m_n, rel=1e-3)
    assert f"{d['residual_multiplier']}" in d["apply"]


def test_depth_mup_view_scales_the_block_lrs():
    d = depth_view(32, base_depth=2, alpha=0.5)
    groups = {g["group"]: g for g in d["groups"]}
    assert d["residual_multiplier"] == pytest.approx(0.25)
    assert groups["hidden"]["lr_multiplier"] == pytest.approx(0.25)
    assert groups["block_vector"]["lr_multiplier"] == pytest.approx(0.25)
    assert groups["embedding"]["lr_multiplier"] == 1.0
    assert groups["hidden"]["decay_per_step_multiplier"] == pytest.approx(0.25)
    off = depth_view(32, base_depth=2, alpha=0)
    assert off["residual_multiplier"] == 1.0 and "not expected to transfer" in off["apply"]


@pytest.mark.parametrize("kw, msg", [(dict(depth=0), "depth"), (dict(depth=8, base_depth=-1), "base depth"),
                                     (dict(depth=8, alpha=2.0), "alpha")])
def test_bad_depth_input_is_refused(kw, msg):
    with pytest.raises(AdvisorError, match=msg):
        depth_view(**kw)


@pytest.mark.parametrize("args, msg", [(["--depth-alpha", "0.3"], "alpha"),
                                       (["--depth-alpha", "x"], "depth-alpha"),
                                       (["--base-depth", "0"], "base-depth")])
def test_cli_bad_depth_options_are_one_error_line(args, msg):
    r = cli("recommend", "--params", "7e9", *args)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error:") and msg in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""


def test_cli_depth_options_reach_the_view():
    r = cli("recommend", "--params", "7e9", "--format", "json", "--base-depth", "8",
            "--depth-alpha", "0.5")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)["depth"]
    assert d["base_depth"] == 8 and d["alpha"] == 0.5


def test_exports_say_what_their_trainers_cannot_express(rec7b):
    assert depth_note(rec7b.depth, exporter("yaml")) is None
    assert depth_note(rec7b.depth, exporter("json")) is None
    nano = export(rec7b, "nanogpt")
    assert "not expressible here" in nano
    env = {}
    exec(nano, {}, env)                       # still a valid nanoGPT config file
    assert env["n_layer"] == rec7b.depth["depth"]
    toml = export(rec7b, "torchtitan-0.2")
    assert "not expressible here" in toml
    assert tomllib.loads(toml)["optimizer"]["name"] == "AdamW"
    json.loads(export(rec7b, "hf"))           # JSON cannot carry a comment: the CLI says it
    r = cli("recommend", "--params", "7e9", "--format", "hf")
    assert r.returncode == 0 and "note: depth view" in r.stderr
