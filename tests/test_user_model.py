"""Calibrating the user's own model on the user's own data (issue 24), piece by piece:

- an HF config.json of the llama / mistral / qwen2 / qwen3 families becomes proxy settings
  that keep head size, GQA ratio, MLP ratio, QK-norm, biases, tying, RoPE and vocabulary;
  any other family is one `error:` line and exit 2, before anything is written;
- the proxy model builds that architecture (GQA, q/k/v biases) with muP's rules, and muP and
  SP are still the same model at the base width;
- `advisor plan` writes a plan whose cells identify the law, within the budget, or refuses a
  budget that cannot buy one, with the reason;
- data whose vocabulary is larger than the config's is refused before any training;
- the muP fit has an LR law in D only, and measures the N exponent as the transfer check;
- a real BPE tokenizer's token files are read back as `tokens:DIR`.
"""
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from advisor.errors import AdvisorError
from advisor.fit.design import Budget, make_plan
from advisor.specs.hfarch import architecture_from_hf_config
from tests.conftest import LLAMA_GQA

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1")



def write_config(tmp_path, **changes) -> Path:
    p = tmp_path / "config.json"
    p.write_text(json.dumps({**LLAMA_GQA, **changes}))
    return p


def advisor(*args):
    return subprocess.run([sys.executable, "-m", "advisor.cli", *map(str, args)],
                          capture_output=True, text=True, env=ENV, cwd=REPO, timeout=300)


def assert_one_error_line(r):
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


# --------------------------------------------------------------------------------------
# The architecture
# --------------------------------------------------------------------------------------

def test_each_supported_family_keeps_what_a_proxy_must_keep(tmp_path):
    llama = architecture_from_hf_config(write_config(tmp_path))
    assert (llama.head_dim, llama.kv_group, llama.width_step) == (16, 4, 64)
    s = llama.proxy_settings()
    assert s == {"head_dim": 16, "kv_group": 4, "ffn_mult": 2.6875, "qk_norm": False,
                 "qkv_bias": False, "tied_embeddings": False, "rope_theta": 500000.0,
                 "norm_eps": 1e-5, "vocab_size": 512}
    qwen2 = architecture_from_hf_config(write_config(tmp_path, model_type="qwen2",
                                                     tie_word_embeddings=True))
    assert qwen2.qkv_bias and qwen2.tied and not qwen2.qk_norm
    qwen3 = architecture_from_hf_config(write_config(tmp_path, model_type="qwen3",
                                                     head_dim=32))
    assert qwen3.qk_norm and not qwen3.qkv_bias and qwen3.head_dim == 32
    mistral = architecture_from_hf_config(write_config(tmp_path, model_type="mistral",
                                                       sliding_window=4096))
    assert any("sliding_window" in n for n in mistral.notes)


@pytest.mark.parametrize("changes, says", [
    ({"model_type": "gpt2"}, "model_type 'gpt2' is not a family"),
    ({"model_type": "qwen2_moe", "num_experts": 8}, "is not a family"),
    ({"attention_bias": True}, "attention_bias"),
    ({"hidden_act": "gelu"}, "hidden_act"),
    ({"num_key_value_heads": 3}, "do not divide"),
])
def test_a_config_the_proxies_cannot_build_is_refused_before_anything(tmp_path, changes, says):
    cfg = write_config(tmp_path, **changes)
    out = tmp_path / "plan.yaml"
    line = assert_one_error_line(advisor("plan", "--hf-config", cfg, "--budget-cpu-minutes",
                                         "30", "--out", out))
    assert says in line
    assert not out.exists()


def test_the_proxy_model_builds_gqa_and_biases_under_mup(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("mup")
    from calibration.model.proxy import (ProxyConfig, build_model, build_optimizer,
                                         compute_loss)

    arch = architecture_from_hf_config(write_config(tmp_path, model_type="qwen2",
                                                    tie_word_embeddings=True))
    kw = {**arch.proxy_settings(), "depth": 2, "seq_len": 16, "base_width": 64}
    cfg = ProxyConfig(width=128, **kw)
    model = build_model(cfg, seed=0)
    attn = model.blocks[0].attn
    assert attn.q.weight.shape == (128, 128)
    assert attn.k.weight.shape == attn.v.weight.shape == (32, 128)   # 2 kv heads of 16
    assert attn.o.bias is None and float(attn.q.bias.detach().abs().sum()) == 0.0
    lr = 0.01
    opt = build_optimizer(model, cfg, lr)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lr_of[id(attn.k.weight)] == pytest.approx(lr * 64 / 128)   # hidden: lr / m
    assert lr_of[id(attn.q.bias)] == pytest.approx(lr)                 # vector-like: lr
    # muP and SP are one model at the base width, GQA and biases included
    torch.manual_seed(0)
    x = torch.randint(0, 512, (2, 17))
    losses = []
    for par in ("mup", "sp"):
        c = ProxyConfig(width=64, parameterization=par, **kw)
        m = build_model(c, seed=0)
        o = build_optimizer(m, c, lr)
        for _ in range(2):
            loss, _ = compute_loss(m(x[:, :-1]), x[:, 1:])
            o.zero_grad()
            loss.backward()
            o.step()
        losses.append(loss.item())
    assert math.isfinite(losses[0]) and losses[0] == pytest.approx(losses[1], rel=1e-5)


# --------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------

def test_the_plan_identifies_the_law_within_the_budget(tmp_path):
    from advisor.fit.identify import MIN_CELLS, MIN_FACTOR
    from advisor.specs.plan import load_plan

    arch = architecture_from_hf_config(write_config(tmp_path))
    budget = Budget.parse(cpu_minutes=120)
    d = make_plan(arch, budget)
    g, est = d["grid"], d["estimate"]
    assert g["width"] == [64, 128, 256]                  # whole kv heads: multiples of 16 x 4
    assert len(g["width"]) * len(g["tokens"]) >= MIN_CELLS
    assert max(est["N_non_embedding"]) / min(est["N_non_embedding"]) >= MIN_FACTOR
    assert max(g["tokens"]) / min(g["tokens"]) >= MIN_FACTOR
    assert 0 < est["seconds"] <= budget.seconds
    assert d["settings"]["base_width"] == 64 and d["settings"]["kv_group"] == 4
    p = tmp_path / "plan.yaml"
    p.write_text(yaml.safe_dump(d))
    plan = load_plan(p)
    assert len(plan.specs) == est["runs"]
    cfg = plan.specs[-1].model_config(vocab_size=256)        # the data's vocab fits in 512
    assert (cfg.vocab_size, cfg.kv_heads, cfg.head_dim) == (512, 4, 16)


def test_a_budget_that_cannot_buy_an_identified_plan_is_refused(tmp_path):
    out = tmp_path / "plan.yaml"
    line = assert_one_error_line(advisor("plan", "--hf-config", write_config(tmp_path),
                                         "--budget-cpu-minutes", "1", "--out", out))
    assert "cannot buy an identified plan" in line and "minutes at the estimated rate" in line
    assert not out.exists()


def test_data_with_a_larger_vocabulary_than_the_config_is_refused_before_training(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("mup")
    data = tmp_path / "tokens"
    data.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("train.bin", 20000), ("val.bin", 4000)):
        rng.integers(0, 600, n).astype("<u2").tofile(data / name)   # ids up to 599 > 512
    d = make_plan(architecture_from_hf_config(write_config(tmp_path)),
                  Budget.parse(cpu_minutes=120), data=f"tokens:{data}")
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump(d))
    line = assert_one_error_line(advisor("calibrate", plan, "--out", tmp_path / "runs",
                                         "--device", "cpu"))
    assert "vocabulary (600 tokens) is larger than the model's (512" in line
    assert not (tmp_path / "runs" / "results.sqlite").exists()


def test_fit_refuses_the_implausible_laws_of_a_real_cpu_sweep(tmp_path):
    """42 real CPU runs of the CI-sized user-model plan (tests/data/user_model_cpu_sweep.md):
    two token budgets a factor of 2 apart identify neither the loss law's D exponent (its fit
    says D^-12.2) nor the muP base LR's (D^-1.64, where published LR laws have -0.32 to
    +0.31 on D). `advisor fit` refuses both with the reason; with no law left it writes no
    law set and exits 2 with one error line after its progress. The same loss law written in by hand into a law
    set is refused on load."""
    out = tmp_path / "fitted.yaml"
    r = advisor("fit", REPO / "tests" / "data" / "user_model_cpu_sweep.csv", "--out", out,
                "--bootstrap", 10, "--method", "surface")
    assert r.returncode == 2, r.stderr            # after the fit's progress lines, one error
    errors = [x for x in r.stderr.splitlines() if x.startswith("error: ")]
    assert len(errors) == 1 and r.stderr.strip().endswith(errors[0]), r.stderr
    line = errors[0]
    assert "no law survives the plausibility checks" in line
    assert re.search(r"learning_rate law's exponent -1\.6\d on D is outside \[-1\.1, \+0\.5\]",
                     line)
    assert "loss: exponent beta = 12.2 is outside [0.02, 1]" in line
    assert not out.exists()
    law = yaml.safe_load((REPO / "recipes" / "laws" / "porian.yaml").read_text())
    law["laws"]["loss"] = {"form": "chinchilla", "E": 1.69, "A": 406.4, "B": 410.7,
                           "alpha": 0.34, "beta": 12.2}
    bad = tmp_path / "by-hand.yaml"
    bad.write_text(yaml.safe_dump(law))
    line = assert_one_error_line(advisor("recommend", "--laws", bad, "--params", "1e8"))
    assert "the loss law's exponent beta" in line


def test_the_default_fit_falls_back_to_the_per_cell_optima_and_says_so(tmp_path):
    """The same sweep with the default `--method auto`: the surface's LR law is refused, so
    the LR law is fitted to the per-cell optima instead (plausible), the law set records the
    method it used, and a note says why."""
    out = tmp_path / "fitted.yaml"
    r = advisor("fit", REPO / "tests" / "data" / "user_model_cpu_sweep.csv", "--out", out,
                "--bootstrap", 10)
    assert r.returncode == 0, r.stderr
    assert "method auto: the surface method's learning-rate law was refused" in r.stdout
    law = yaml.safe_load(out.read_text())
    assert law["provenance"]["method"] == "optima"
    assert -1.1 <= law["laws"]["learning_rate"]["exponents"]["D"] <= 0.5
    assert "loss" not in law["laws"]


# --------------------------------------------------------------------------------------
# The law: D only under muP, the N exponent measured
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("planted, holds", [(0.0, True), (-0.5, False)])
def test_the_transfer_check_measures_the_base_lrs_n_exponent(tmp_path, record_mup_sweep,
                                                             planted, holds):
    from advisor.runs.store import ResultsStore

    store = ResultsStore.create(tmp_path / "sweep")
    record_mup_sweep(store, np.random.default_rng(1), widths=(32, 64, 128), lr_span=4.0,
                     n_lrs=5, lr_n_exponent=planted)
    store.close()
    out = tmp_path / "laws.yaml"
    r = advisor("fit", tmp_path / "sweep", "--out", out, "--bootstrap", "0", "--method",
                "optima")
    assert r.returncode == 0, r.stderr
    law = yaml.safe_load(out.read_text())
    assert set(law["laws"]["learning_rate"]["exponents"]) == {"D"}     # width: muP's rules
    tc = law["provenance"]["transfer_check"]
    lo, hi = tc["interval_95"]
    assert lo <= tc["exponent"] <= hi and hi - lo < 0.5
    assert abs(tc["exponent"] - planted) < 0.15
    assert tc["holds"] is holds
    assert "transfer check: muP base LR ~ N^" in r.stdout


# --------------------------------------------------------------------------------------
# Validation tables
# --------------------------------------------------------------------------------------

def test_the_validation_verdict_reads_the_recommended_rows_gap():
    from advisor.fit.validation import choices, lr_grid, transfer_table, verdict

    grid = dict(zip(lr_grid(0.01), [3.30, 3.10, 3.00, 3.02, math.inf]))
    chosen = choices(0.01, 0.005, 256, 64, 16, published_peak=0.001)
    assert chosen["SP-style transfer (same peak LR, no 1/m)"] == pytest.approx(0.02)
    assert chosen["Step Law (published)"] == pytest.approx(0.016)
    losses = {"law (recommended)": 3.00, "muP transfer alone (best at width 64)": 3.10,
              "SP-style transfer (same peak LR, no 1/m)": 3.02, "Step Law (published)": 3.01}
    rows = transfer_table(grid, chosen, losses)
    assert rows[0]["lr"] == 0.01 and verdict(rows)["met"]
    # a choice off the grid that beats it sets the best: the recommendation is judged by it
    losses["Step Law (published)"] = 2.97
    rows = transfer_table(grid, chosen, losses)
    assert rows[0]["lr"] == pytest.approx(0.016) and rows[0]["loss"] == 2.97
    v = verdict(rows)
    assert v["lr_within_2x"] and not v["gap_within_goal"] and not v["met"]
    assert v["gap_pct"] == pytest.approx(100 * 0.03 / 2.97)


def test_the_validation_grid_can_be_half_octaves_and_each_lr_a_mean_over_seeds():
    from advisor.fit.validation import lr_grid, seed_mean, seed_noise, verdict, transfer_table

    assert lr_grid(0.02, 2, 0.5) == pytest.approx([0.01, 0.02 / 2 ** 0.5, 0.02,
                                                   0.02 * 2 ** 0.5, 0.04])
    with pytest.raises(AdvisorError):
        lr_grid(0.02, 2, 0.0)
    assert seed_mean([3.0, 3.2]) == pytest.approx(3.1)
    assert seed_mean([3.0, math.inf]) == math.inf          # a diverged seed: the LR diverged
    assert math.isnan(seed_mean([3.0, math.nan]))          # a seed missing: not measured
    # two LRs, two seeds each: pooled within-LR sd; a gap's standard error is sd x sqrt(2/2)
    noise = seed_noise({0.01: [3.00, 3.02], 0.02: [2.90, 2.94], 0.04: [math.inf, 3.5]})
    assert noise["dof"] == 2 and noise["seeds"] == 2
    assert noise["run_sd"] == pytest.approx(math.sqrt((0.0002 + 0.0008) / 2))
    assert noise["gap_se"] == pytest.approx(noise["run_sd"])
    assert seed_noise({0.01: [3.0], 0.02: [2.9]}) is None  # one seed: no noise measured
    rows = transfer_table({0.01: 3.01, 0.02: 2.92}, {"law (recommended)": 0.01},
                          {"law (recommended)": 3.01})
    v = verdict(rows, noise=noise)
    assert v["gap_in_se"] == pytest.approx(0.09 / noise["gap_se"])


@pytest.mark.parametrize("args, message", [
    (("--seeds", 5), "--seeds must be 1 to 4, got 5"),
    (("--grid-spacing", 0), "--grid-spacing must be in (0, 2] octaves, got 0.0")])
def test_validate_refuses_a_bad_seed_count_or_grid_spacing_before_any_work(tmp_path, args,
                                                                          message):
    r = advisor("validate", tmp_path / "none", "--laws", tmp_path / "none.yaml", "--out",
                tmp_path / "v", *args)
    assert assert_one_error_line(r) == f"error: {message}"
    assert not (tmp_path / "v").exists()


def test_the_validation_json_holds_no_inf_or_nan(tmp_path):
    pytest.importorskip("torch")
    from calibration.analyze.validate import write_json

    write_json({"rows": [{"loss": math.inf}], "per_seed": {"0.1": [3.0, math.inf]},
                "x": math.nan}, tmp_path / "v.json")
    doc = json.loads((tmp_path / "v.json").read_text())    # strict JSON: a diverged loss is null
    assert doc == {"rows": [{"loss": None}], "per_seed": {"0.1": [3.0, None]}, "x": None}


# --------------------------------------------------------------------------------------
# A real tokenizer
# --------------------------------------------------------------------------------------

def test_a_trained_bpe_writes_token_files_read_back_as_tokens_dir(tmp_path):
    pytest.importorskip("tokenizers")
    from calibration.train.data import load_data
    from calibration.train.tokenize import train_bpe, write_token_dir

    src = tmp_path / "text"
    src.mkdir()
    words = [f"def function_{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(400)]
    for j in range(40):
        (src / f"part{j}.txt").write_text("".join(words[j * 10:(j + 1) * 10]) * 5)
    tok = train_bpe(str(src), 300, tmp_path / "tok.json")
    assert tok.get_vocab_size() == 300
    meta = write_token_dir(str(src), tmp_path / "tok.json", tmp_path / "bin")
    data = load_data(f"tokens:{tmp_path / 'bin'}")
    assert data.vocab_size == 300 and len(data.train) == meta["train_tokens"] > 0
    assert len(data.val) == meta["val_tokens"] > 0
    # fewer tokens than bytes: the BPE merges
    assert meta["train_tokens"] < sum(f.stat().st_size for f in src.glob("*.txt"))
    text = load_data(f"text:{src},tokenizer=hf:{tmp_path / 'tok.json'}")
    assert text.vocab_size == 300 and int(max(text.train.max(), text.val.max())) < 300


# --------------------------------------------------------------------------------------
# The user's own module: --factory / factory: in a plan
# --------------------------------------------------------------------------------------

FACTORY_PLAN = {"name": "factory", "settings": {
    "data": "stdlib", "parameterization": "mup", "depth": 2, "seq_len": 32, "batch_size": 4,
    "tokens": 4 * 32 * 12, "eval_interval": 6, "eval_sequences": 8, "base_width": 64,
    "head_dim": 16}, "grid": {"width": [64, 128], "lr": [2 ** -8, 2 ** -6]}}


def test_a_factory_that_fails_at_one_width_is_refused_before_training(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("mup")
    (tmp_path / "my_models.py").write_text(
        "from calibration.spectral.example_factory import build as _build\n"
        "def build(width, *, lr, vocab=256, seq_len=64):\n"
        "    if width > 64:\n"
        "        raise ValueError('no kernel for this width')\n"
        "    return _build(width, lr=lr, vocab=vocab, seq_len=seq_len)\n")
    plan = tmp_path / "plan.yaml"
    d = json.loads(json.dumps(FACTORY_PLAN))
    d["settings"]["factory"] = "my_models:build"
    plan.write_text(yaml.safe_dump(d))
    r = subprocess.run([sys.executable, "-m", "advisor.cli", "calibrate", str(plan), "--out",
                        str(tmp_path / "runs"), "--device", "cpu"], capture_output=True,
                       text=True, cwd=REPO, timeout=300,
                       env=dict(ENV, PYTHONPATH=f"{REPO}{os.pathsep}{tmp_path}"))
    line = assert_one_error_line(r)
    assert "factory my_models:build failed at width 128: ValueError" in line
    assert not (tmp_path / "runs" / "results.sqlite").exists()


def test_a_factory_whose_mup_base_width_is_not_the_plans_is_refused_before_training(
        tmp_path):
    """The runs record the plan's base width and recommend scales every group's LR from it,
    so a factory built by mup against another base width would mislabel every LR."""
    pytest.importorskip("torch")
    pytest.importorskip("mup")
    plan = tmp_path / "plan.yaml"
    d = json.loads(json.dumps(FACTORY_PLAN))
    d["settings"].update(factory="calibration.spectral.example_factory:build", base_width=32)
    plan.write_text(yaml.safe_dump(d))
    r = advisor("calibrate", plan, "--out", tmp_path / "runs", "--device", "cpu")
    line = assert_one_error_line(r)
    assert "muP base width (mup's set_base_shapes) is 64, the plan's base_width 32" in line
    assert not (tmp_path / "runs" / "results.sqlite").exists()


def test_a_factory_model_trains_in_a_sweep_and_records_its_lr_convention(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("mup")
    from advisor.runs.store import ResultsStore

    plan = tmp_path / "plan.yaml"
    d = json.loads(json.dumps(FACTORY_PLAN))
    d["settings"]["factory"] = "calibration.spectral.example_factory:build"
    plan.write_text(yaml.safe_dump(d))
    r = advisor("calibrate", plan, "--out", tmp_path / "runs", "--device", "cpu",
                "--threads", 1, "--no-progress")
    assert r.returncode == 0, r.stderr
    with ResultsStore.open(tmp_path / "runs") as st:
        runs = st.runs()
    assert len(runs) == 4 and {x.status for x in runs} == {"finished"}
    by_width = {x.settings["width"]: x for x in runs}
    # the example's model: its embeddings and readout are not counted in N
    assert 0 < by_width[64].n_params_non_embedding < by_width[128].n_params_non_embedding
    assert by_width[64].n_params_non_embedding < by_width[64].n_params
    assert all(math.isfinite(x.final_val_loss) for x in runs)
