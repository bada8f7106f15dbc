"""Stability (issue 26): the probes runs record, the fits, the published evidence, the
recommendation's ``stability`` block, and ``advisor check-stability``.

Specifications: a run (single or stacked) records at every evaluation the max attention logit
of every layer, the log-partition and the gradient / Adam-direction RMS against eps of every
parameter group, and a stacked member records what the same run alone records; the LR
sensitivity is the paper's formula; a fitted line's prediction interval is ordinary least
squares'; every recommendation carries a stability block whose mitigations appear exactly
when the margin is small; a QK-norm config is recognised; growth of the attention logit with
width is flagged.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from advisor.errors import AdvisorError
from advisor.fit.stability import (fit_line, fit_linear, instability_level, lr_sensitivity,
                                   stability_edge)
from advisor.recommendation.stability import (Architecture, StabilityInputs, architecture_from_hf_config,
                               stability_block)

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, cwd=None):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "advisor.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd)


# ----------------------------------------------------------------------------- the math

def test_lr_sensitivity_is_the_papers_mean_of_min_loss_l0_minus_best():
    # l* = 2.0; points: 0.5, 0, 1.0, and a diverged run counted as l0 - l* = 3.0
    curve = ((2 ** -3, 2.5), (2 ** -2, 2.0), (2 ** -1, 3.0), (1.0, math.inf))
    assert lr_sensitivity(curve, loss_init=5.0) == pytest.approx((0.5 + 0 + 1 + 3) / 4)
    # a loss above l0 counts as l0
    assert lr_sensitivity(((0.1, 2.0), (0.2, 9.0)), 5.0) == pytest.approx(1.5)
    assert lr_sensitivity(((0.1, 2.0), (0.2, 2.0)), 5.0) == 0.0
    assert math.isnan(lr_sensitivity(((0.1, math.inf),), 5.0))


def test_stability_edge_interpolates_the_crossing_in_log_lr_and_reports_censoring():
    level = instability_level(2.0, 3.0)            # 2.5
    assert level == 2.5
    curve = ((2 ** -6, 2.2), (2 ** -5, 2.0), (2 ** -4, 2.2), (2 ** -3, 2.8), (2 ** -2, 3.0))
    e = stability_edge(curve, level)
    assert (e.last_stable, e.first_unstable, e.censored) == (2 ** -4, 2 ** -3, False)
    assert math.log2(e.crossing) == pytest.approx(-4 + 0.3 / 0.6)
    # a diverged first unstable point: the geometric mean
    e = stability_edge(((2 ** -5, 2.0), (2 ** -4, math.inf)), level)
    assert math.log2(e.crossing) == pytest.approx(-4.5)
    # a high loss below the optimum is not an instability; nothing unstable above: censored
    e = stability_edge(((2 ** -9, 2.9), (2 ** -5, 2.0), (2 ** -4, 2.1)), level)
    assert e.censored and math.isnan(e.crossing) and e.last_stable == 2 ** -4


def test_fit_linear_matches_least_squares_and_its_prediction_interval_covers():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = 1 + 2 * X[:, 0] - X[:, 1] + 0.1 * rng.standard_normal(40)
    line = fit_linear(X.tolist(), y.tolist())
    ref = np.linalg.lstsq(np.column_stack([np.ones(40), X]), y, rcond=None)[0]
    assert np.allclose(line.coef, ref)
    hits = 0
    for _ in range(400):
        x = rng.normal(size=2)
        yn = 1 + 2 * x[0] - x[1] + 0.1 * rng.standard_normal()
        c, half = line.predict(*x)
        hits += abs(yn - c) <= half
    assert 0.9 <= hits / 400 <= 0.995                  # a 95% interval, not a 50% or 100% one
    assert line.predict(0.0, 0.0)[1] > 0
    two = fit_line([1, 2], [3, 5])
    assert (two.a, two.b) == pytest.approx((1, 2)) and two.predict(3)[1] == math.inf
    with pytest.raises(AdvisorError):
        fit_line([1, 1], [2, 3])


# ----------------------------------------------------------------------------- the probes

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def data():
    from calibration.train.data import load_data
    return load_data("stdlib")


def _spec(**kw):
    from advisor.specs.runspec import RunSpec
    base = dict(width=32, depth=2, seq_len=32, batch_size=4, tokens=4 * 32 * 12,
                eval_interval=6, eval_sequences=8, parameterization="sp", lr=2 ** -6,
                weight_decay=0.1, stack=True, compile="never",
                model={"head_dim": 16, "base_width": 32})
    base.update(kw)
    return RunSpec(**base)


def _probes(result, step):
    return {n: v for s, n, v in result.diagnostics if s == step and n.startswith("stab.")}


def test_every_evaluation_records_the_probes_and_a_stack_member_records_what_it_alone_does(data):
    from calibration.train.group import train_stack
    from calibration.train.single import train_run

    torch.set_num_threads(1)
    specs = [_spec(), _spec(lr=2 ** -3, seed=1)]
    alone = train_run(specs[0], data)
    stacked = train_stack(specs, data)
    assert alone.status == stacked[0].status == "finished"
    groups = ("embedding", "hidden", "block_vector", "final_norm", "readout")
    for step in (6, 12):                                   # every curve point
        p = _probes(alone, step)
        assert {f"stab.attn_max.{i}" for i in range(2)} | {"stab.lse_mean", "stab.lse_max"} <= set(p)
        for g in groups:
            assert p[f"stab.eps.{g}"] == 1e-8
            assert p[f"stab.grad_rms.{g}"] > 0 and 0 < p[f"stab.update_rms.{g}"] < 1.01
        assert p["stab.lse_max"] >= p["stab.lse_mean"]
        q = _probes(stacked[0], step)
        assert set(q) == set(p)
        for n in p:                                         # fp32, 12 steps: rounding only
            assert q[n] == pytest.approx(p[n], rel=2e-3, abs=1e-6), n


def test_max_attention_logit_is_the_largest_causal_scaled_score():
    from calibration.model.proxy import max_attention_logit

    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 3, 5, 4, generator=g), torch.randn(2, 3, 5, 4, generator=g)
    k[1, 2, 4] = 100.0                      # a huge key at the last position: only the last
    q[1, 2, :4] = 1.0                       # query may see it; earlier ones must not
    best = -math.inf
    for b in range(2):
        for h in range(3):
            for i in range(5):
                for j in range(i + 1):
                    best = max(best, float(q[b, h, i] @ k[b, h, j]) * 0.5)
    assert float(max_attention_logit(q, k, 0.5)) == pytest.approx(best)


def test_qk_norm_bounds_the_attention_logits(data):
    """At a high LR, QK-norm keeps the max logit below d_head x scale x the norm gains'
    product (Cauchy-Schwarz); without it the logit is unbounded and much larger. (z-loss and
    log Z: tests/test_stability_zloss.py.)"""
    from calibration.train.single import train_run

    torch.set_num_threads(1)
    hi = dict(lr=2 ** -2, tokens=4 * 32 * 24, eval_interval=24)
    plain = _probes(train_run(_spec(**hi), data), 24)
    qk = _probes(train_run(_spec(**hi, model={"head_dim": 16, "base_width": 32,
                                              "qk_norm": True}), data), 24)
    assert max(qk[f"stab.attn_max.{i}"] for i in range(2)) < \
        max(plain[f"stab.attn_max.{i}"] for i in range(2)) / 4


def test_probes_can_be_turned_off_for_the_overhead_bench(data, monkeypatch):
    from calibration.train.single import train_run

    monkeypatch.setenv("ADVISOR_STABILITY_PROBES", "off")
    r = train_run(_spec(tokens=4 * 32 * 6), data)
    assert r.status == "finished" and not _probes(r, 6)


def test_independent_weight_decay_fixes_the_decay_per_step_whatever_the_lr():
    from advisor.specs.proxyspec import ProxyConfig
    from calibration.model.proxy import build_model, build_optimizer

    cfg = ProxyConfig.from_family("proxy-llama", 64, 2, parameterization="sp", head_dim=16,
                                  base_width=32, vocab_size=256)
    m = build_model(cfg, seed=0)
    for lr in (2 ** -8, 2 ** -3):
        opt = build_optimizer(m, cfg, lr, 2 ** -10, kind="adamw", wd_coupling="independent")
        decays = [g["lr"] * g["weight_decay"] for g in opt.param_groups if g["weight_decay"]]
        assert decays and decays == pytest.approx([2 ** -10] * len(decays))
    with pytest.raises(AdvisorError):
        _spec(wd_coupling="independent", optimizer="muon")


# ----------------------------------------------------------------------------- store, check

def _record_growth_sweep(store, slope):
    """Runs at widths 32-128 x 2 seeds x 2 LRs whose max attention logit is width^slope."""
    from advisor.specs.runspec import RunSpec
    rng = np.random.default_rng(1)
    for w in (32, 64, 128):
        for seed in (0, 1):
            for lr in (2 ** -6, 2 ** -4):
                spec = RunSpec(width=w, depth=2, lr=lr, seed=seed, parameterization="sp",
                               seq_len=64, batch_size=8, tokens=8 * 64 * 10)
                a = 3.0 * w ** slope * math.exp(0.05 * rng.standard_normal())
                store.record(spec.run_id, spec.settings(), "finished", final_val_loss=2.5,
                             diagnostics=[(10, "stab.attn_max.0", a), (10, "stab.attn_max.1", a / 2),
                                          (10, "stab.lse_mean", 6.0), (10, "other", 1.0)])


@pytest.mark.parametrize("slope, rc, verdict", [(1.0, 1, "GROWS"), (0.0, 0, "ok")])
def test_check_stability_flags_logits_that_grow_with_width(tmp_path, slope, rc, verdict):
    from advisor.runs.store import ResultsStore

    with ResultsStore.create(tmp_path / "s") as store:
        _record_growth_sweep(store, slope)
        probes = store.diagnostics_by_prefix("stab.")
        assert all(n.startswith("stab.") for rows in probes.values() for _, n, _ in rows)
    out = _cli("check-stability", str(tmp_path / "s"), "--format", "json")
    assert out.returncode == rc, out.stderr
    rows = json.loads(out.stdout)["rows"]
    assert len(rows) == 2 and {r["verdict"] for r in rows} == {verdict}
    assert all(abs(r["slope"] - slope) < 0.15 for r in rows)


def test_check_stability_refuses_a_store_without_probes(tmp_path):
    from advisor.specs.runspec import RunSpec
    from advisor.runs.store import ResultsStore

    with ResultsStore.create(tmp_path / "old") as store:
        spec = RunSpec(width=32, depth=2)
        store.record(spec.run_id, spec.settings(), "finished", final_val_loss=2.0)
    out = _cli("check-stability", str(tmp_path / "old"))
    assert out.returncode == 2 and out.stderr.startswith("error:") and "probes" in out.stderr


# ----------------------------------------------------------------------------- the block

def test_recommend_7e9_carries_a_stability_block_from_published_evidence():
    out = _cli("recommend", "--params", "7e9", "--format", "json")
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout)
    s = rec["stability"]
    assert s["evidence_kind"] == "published" and "Step Law" in s["evidence"]
    lo, hi = s["margin_interval_95"]
    assert lo < s["margin_octaves"] < hi
    assert s["margin_octaves"] == pytest.approx(
        math.log2(s["largest_stable_lr"] / rec["learning_rate"]["value"]), abs=0.02)
    assert s["max_attention_logit"] is None and "not predicted" in s["max_attention_logit_note"]
    assert s["architecture"]["qk_norm"] is None


def _hf(tmp_path, **extra):
    cfg = {"model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 16,
           "num_attention_heads": 16, "num_key_value_heads": 8, "intermediate_size": 5632,
           "vocab_size": 32000, "hidden_act": "silu", "tie_word_embeddings": False}
    cfg.update(extra)
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    return p


def test_hf_config_of_a_qk_norm_model_shows_in_the_block(tmp_path):
    p = _hf(tmp_path, model_type="qwen3", head_dim=128)
    out = _cli("recommend", "--hf-config", str(p), "--format", "json")
    assert out.returncode == 0, out.stderr
    arch = json.loads(out.stdout)["stability"]["architecture"]
    assert arch["qk_norm"] is True and "qwen3" in arch["source"]
    assert architecture_from_hf_config(_hf(tmp_path, qk_layernorm=True)).qk_norm is True
    assert architecture_from_hf_config(_hf(tmp_path)).qk_norm is False
    a = architecture_from_hf_config(_hf(tmp_path, model_type="gemma2",
                                        attn_logit_softcapping=50.0))
    assert a.qk_norm is False and a.attn_logit_softcap == 50.0


def test_mitigations_appear_exactly_when_the_margin_is_small():
    kw = dict(params_non_embedding=6.5e9, d_model=4096, warmup_steps=2000, total_steps=60000,
              eps=1e-8)
    far = stability_block(2e-4, **kw)
    assert far.verdict == "comfortable" and far.mitigations == ()
    near = stability_block(far.largest_stable_lr, **kw)
    assert near.verdict == "small" and near.margin_interval_95[0] < 1
    names = [m.name for m in near.mitigations]
    assert names == ["qk_norm", "z_loss", "longer_warmup", "lower_eps", "lower_lr"]
    assert all(m.cost for m in near.mitigations)
    lower = next(m for m in near.mitigations if m.name == "lower_lr")
    assert "x 2^-" in lower.action
    qk = stability_block(far.largest_stable_lr, **kw,
                         inputs=StabilityInputs(Architecture(True, "test")))
    assert "qk_norm" not in [m.name for m in qk.mitigations]
    assert any("QK-norm" in n for n in qk.notes)


def test_a_users_sweep_replaces_the_published_evidence(tmp_path):
    from advisor.fit.stability import fit_line as fl

    line = fl([5, 5, 6, 6, 7, 7], [-3.0, -3.1, -3.5, -3.4, -4.0, -3.9])
    joint = fit_linear([(5, -6), (6, -6), (7, -6), (5, -4), (6, -4), (7, -4)],
                       [3.0, 4.0, 5.1, 5.0, 6.1, 7.0])
    doc = {"schema": "hp-advisor/stability-sweep/v1", "arms": {
        "base": {"widths": [32, 64, 128], "law": {"line": line.to_dict()},
                 "attn_growth": {"joint": joint.to_dict()}}}}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc))
    out = _cli("recommend", "--params", "1e8", "--stability-sweep", str(path), "--format", "json")
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)["stability"]
    assert s["evidence_kind"] == "calibration" and str(path) in s["evidence"]
    assert s["max_attention_logit"] > 0 and s["max_attention_logit_interval_95"] is not None
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    out = _cli("recommend", "--params", "1e8", "--stability-sweep", str(bad))
    assert out.returncode == 2 and out.stderr.startswith("error:")


def test_shipped_published_evidence_is_what_steplaws_grid_gives(external_data):
    import csv

    from advisor.fit.stability_evidence import evidence_document, load_evidence

    with open(external_data / "steplaw_dense_lr_bs_loss.csv", newline="") as f:
        doc = evidence_document(list(csv.DictReader(f)))
    shipped = load_evidence()
    assert shipped["line"].coef == pytest.approx(doc["line"]["coef"], abs=1e-5)
    assert shipped["line"].n == doc["line"]["n"] == 13
    assert doc["line"]["coef"][1] < 0                  # the cliff falls with N


def test_the_cpu_stability_plan_has_every_arm():
    from advisor.specs.plan import load_plan
    from advisor.runs.stability_data import arm_of

    plan = load_plan("cpu-stability")
    arms = {arm_of(s.settings(), 10) for s in plan.specs}
    assert arms == {"base", "qk_norm", "z_loss 0.0001", "warmup 80", "indep_wd", "mup"}
    assert {s.width for s in plan.specs} == {16, 32, 64, 128}


@pytest.mark.parametrize("name, held_out", [("cpu-stability", None), ("gpu-stability", 1024)])
def test_the_stability_plans_run_every_arm_with_two_seeds(name, held_out):
    """Issue 26: two seeds per arm and width, so a seed's noise is seen, not read as an
    arm's effect; only the held-out width of the GPU plan (the law's check) has one."""
    from collections import defaultdict

    from advisor.specs.plan import load_plan
    from advisor.runs.stability_data import arm_of

    seeds = defaultdict(set)
    for s in load_plan(name).specs:
        seeds[(arm_of(s.settings(), 10), s.width)].add(s.seed)
    assert len({arm for arm, _ in seeds}) == 6
    for (arm, width), got in seeds.items():
        assert got == ({0} if width == held_out else {0, 1}), (arm, width)


def test_the_summary_recovers_a_planted_stability_law_and_checks_the_held_out_width():
    """Loss-vs-LR curves whose instability level is crossed at log2 LR = -2 - 0.5 log2(w/16):
    the summary's law has slope -0.5 and predicts width 128 from 16-64 within a grid step."""
    from calibration.analyze.stability_summary import summarise, summary_json
    from advisor.runs.stability_data import Point

    pts = []
    for w in (16, 32, 64, 128):
        cross = -2 - 0.5 * math.log2(w / 16)
        for seed in (0, 1):
            for k in range(-9, 1):
                # a bowl at 2^-7, then a ramp reaching the level (2.5 + 0.5 = 3.0) at `cross`
                loss = 2.0 + 0.02 * (k + 7) ** 2 if k <= -6 else 2.0 + (k + 6) / (cross + 6) * 1.0
                loss = math.inf if k == 0 and w == 128 else loss + 0.001 * seed
                attn = 4.0 * w ** 0.5 * 2 ** (0.3 * k)
                pts.append(Point("base", w, seed, 2.0 ** k, loss,
                                 {"stab.attn_max.0": attn, "stab.lse_mean": 6.0,
                                  "stab.grad_rms.hidden": 1e-3 / w, "stab.eps.hidden": 1e-8}))
    s = summarise(pts, context_free=4.0, loss_init=5.5, heldout_width=128)
    law = s["arms"]["base"]["law"]
    assert law["slope"] == pytest.approx(-0.5, abs=0.1)
    h = law["heldout"]
    assert h["width"] == 128 and h["fit_widths"] == [16, 32, 64] and h["within_one_grid_step"]
    joint = s["arms"]["base"]["attn_growth"]["joint"]["coef"]
    assert joint[1] == pytest.approx(0.5, abs=1e-6) and joint[2] == pytest.approx(0.3, abs=1e-6)
    assert s["arms"]["base"]["eps_trend"]["hidden"]["slope"] == pytest.approx(-1.0)
    row = s["arms"]["base"]["rows"][3]
    assert row["diverged"] == 2 and row["runs"] == 20
    doc = json.loads(summary_json(s))                  # what recommend reads back
    assert all(v is not None for v in doc["arms"]["base"]["law"]["line"]["coef"])
    assert "Infinity" not in summary_json(s) and "NaN" not in summary_json(s)


def test_advisor_results_by_stability_summarises_a_store_as_tables_json_and_a_plot(tmp_path):
    """The summary through ``advisor results --by stability``: a stored sweep (SP base arm,
    widths 16-128, 2 seeds) whose instability level is crossed at log2 LR = -2 - 0.5
    log2(w/16), losses placed against the training data's own context-free loss. The tables
    print, ``--format json`` is what ``advisor recommend --stability-sweep`` reads (with the
    largest width held out by default), ``--plot`` writes the figure."""
    from advisor.recommendation.stability import load_stability_sweep
    from advisor.runs.store import ResultsStore
    from advisor.specs.runspec import RunSpec
    from calibration.analyze.stability_summary import context_free_loss
    from calibration.train.data import load_data

    cf = context_free_loss(load_data("stdlib"))
    store = tmp_path / "sweep"
    with ResultsStore.create(store) as st:
        for w in (16, 32, 64, 128):
            cross = -2 - 0.5 * math.log2(w / 16)
            for seed in (0, 1):
                for k in range(-9, 1):
                    loss = 2.0 + 0.02 * (k + 7) ** 2 if k <= -6 else \
                        2.0 + (k + 6) / (cross + 6) * 1.0
                    loss += cf - 4.0 + 0.001 * seed        # level: halfway to cf
                    spec = RunSpec(width=w, depth=2, lr=2.0 ** k, parameterization="sp",
                                   seed=seed, model={"head_dim": 16})
                    probes = [(10, "stab.attn_max.0", 4.0 * w ** 0.5 * 2 ** (0.3 * k)),
                              (10, "stab.lse_mean", 6.0)]
                    st.record(spec.run_id, spec.settings(), "finished", final_val_loss=loss,
                              diagnostics=probes)
    png, js = tmp_path / "s.png", tmp_path / "s.json"
    r = _cli("results", str(store), "--by", "stability")
    assert r.returncode == 0, r.stderr
    assert "| arm | width | seeds | best LR, loss | LR sensitivity" in r.stdout
    r = _cli("results", str(store), "--by", "stability", "--format", "json", "--plot", str(png))
    assert r.returncode == 0, r.stderr
    assert png.stat().st_size > 10_000 and f"plot: {png}" in r.stderr
    js.write_text(r.stdout)
    doc = load_stability_sweep(js)
    law = doc["arms"]["base"]["law"]
    assert law["slope"] == pytest.approx(-0.5, abs=0.1)
    assert law["heldout"]["width"] == 128 and law["heldout"]["within_one_grid_step"]
    r = _cli("results", str(store), "--by", "stability", "--format", "json",
             "--heldout-width", "64")
    assert json.loads(r.stdout)["arms"]["base"]["law"]["heldout"]["fit_widths"] == [16, 32, 128]
    for bad, msg in ((["--by", "depth", "--heldout-width", "64"], "--heldout-width goes with"),
                     (["--by", "stability", "--format", "csv"], "--format csv")):
        r = _cli("results", str(store), *bad)
        assert r.returncode == 2 and r.stderr.startswith("error: ") and msg in r.stderr
