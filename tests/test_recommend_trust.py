"""Values that must never come out, and what the recommendation says about its own trust."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from advisor import recommend
from advisor.errors import AdvisorError
from advisor.laws.lawforms import NotApplicable
from advisor.laws.lawset import load_lawset
from advisor.rules.plausibility import RANGES, check
from advisor.recommendation.core import DEFAULT_LAW

REPO = Path(__file__).resolve().parents[1]


def advisor(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "advisor.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def _law_file(tmp_path, name, **changes):
    d = load_lawset("step-law").to_dict()
    d["name"] = name
    d["laws"]["learning_rate"].update(changes)
    d["laws"]["learning_rate"].pop("uncertainty", None)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(d), encoding="utf-8")
    return str(path)


def test_kaplan_lr_is_not_applicable_above_its_zero_crossing_in_compare():
    r = advisor("compare", "--params", "70e9", "--format", "json")
    assert r.returncode == 0, r.stderr
    kaplan = next(row for row in json.loads(r.stdout)["laws"] if row["law"] == "kaplan")
    assert kaplan["learning_rate"] is None
    assert "negative for N above 1.21e+10" in kaplan["not_applicable"]["learning_rate"]
    table = advisor("compare", "--params", "70e9")
    line = next(l for l in table.stdout.splitlines() if l.startswith("kaplan"))
    assert " n/a " in line and "not applicable" in line and "-0.000" not in line.split("n/a")[0]


def test_kaplan_lr_is_still_a_number_below_its_zero_crossing():
    ls = load_lawset("kaplan")
    assert ls.predict("learning_rate", 1e9, 2e10) == pytest.approx(
        0.003239 - 0.0001395 * 20.7233, rel=1e-4)
    with pytest.raises(NotApplicable):
        ls.predict("learning_rate", 7e10, 1e12)


@pytest.mark.parametrize("params", ["13e9", "70e9", "405e9"])
def test_disagreement_warning_survives_a_negative_law_and_names_the_chosen_one(params):
    r = advisor("recommend", "--params", params, "--format", "json")
    assert r.returncode == 0, r.stderr
    warns = [w for w in json.loads(r.stdout)["warnings"] if "disagree on the peak LR" in w]
    assert warns, "the laws still differ by more than 2x without Kaplan"
    assert f"uses {DEFAULT_LAW}" in warns[0]
    assert "kaplan (not applicable" in warns[0]
    spread = warns[0].split(":")[1].split(";")[0]
    assert " -" not in spread and "kaplan" not in spread   # no negative value in the spread


def test_the_chosen_law_file_enters_the_spread(tmp_path):
    path = _law_file(tmp_path, "mine", coefficient=0.179)
    rec = recommend(params=7e9, laws_file=path)
    w = next(w for w in rec.warnings if "disagree on the peak LR" in w)
    assert "uses mine" in w and f"mine {rec.learning_rate.value:.3g}" in w


def test_a_law_with_an_absurd_exponent_is_refused_not_written(tmp_path):
    path = _law_file(tmp_path, "wild-exponent", exponents={"N": 2.1, "D": 0.307})
    r = advisor("recommend", "--params", "7e9", "--laws", path, "--format", "json")
    assert r.returncode == 2
    # refused when the file is read (advisor.laws.plausible), before any value is computed
    assert r.stderr.startswith("error: law set 'wild-exponent'") and "Traceback" not in r.stderr
    assert "exponent +2.1 on N" in r.stderr
    assert r.stdout == ""


def test_a_huge_coefficient_never_reaches_the_hf_export(tmp_path):
    path = _law_file(tmp_path, "wild-coefficient", coefficient=1e6)
    out = tmp_path / "args.json"
    r = advisor("recommend", "--params", "7e9", "--laws", path, "--format", "hf", "-o",
                str(out))
    assert r.returncode == 2 and "learning_rate" in r.stderr and "refusing" in r.stderr
    assert not out.exists()


def test_a_thousand_tokens_at_7b_is_refused():
    r = advisor("recommend", "--params", "7e9", "--tokens", "1e3", "--format", "json")
    assert r.returncode == 2
    assert "tokens_per_param" in r.stderr and r.stderr.count("\n") == 1


def test_unusual_but_possible_values_warn_with_a_reason():
    assert check({"learning_rate": 3e-4, "weight_decay": 0.1}) == []
    (w,) = check({"weight_decay": 3.0})
    assert "unusually high" in w and "0.01-0.1" in w
    for bad in ({"learning_rate": 4.9e24}, {"decay_per_step": 0.635 * 1.0},
                {"total_steps": 1}, {"learning_rate": float("nan")},
                {"batch_size_tokens": -5.0}):
        with pytest.raises(AdvisorError):
            check(bad)


def test_every_output_value_has_a_range():
    assert {"learning_rate", "weight_decay", "decay_per_step", "batch_size_tokens",
            "warmup_steps", "total_steps", "tokens_per_param"} <= set(RANGES)
    for r in RANGES.values():
        lo, hi = r.refuse
        ulo, uhi = r.usual
        assert lo is None or ulo is None or lo <= ulo
        assert hi is None or uhi is None or uhi <= hi


# --------------------------------------------------------------- published configurations
from advisor.laws.published import load_published, parse_published, shape_from_spec  # noqa: E402


def test_published_configs_load_with_sources_and_exact_counts():
    entries = load_published()
    assert len([e for e in entries if e.kind == "published"]) >= 23
    assert len([e for e in entries if e.kind == "tuned_optimum"]) >= 10
    for e in entries:
        assert e.source["citation"] and e.source["place"] and e.checked in ("config", "memory")
    by_id = {e.id: e for e in entries}
    # LLaMA 2 7B: 6.74e9 parameters (model card); 70B with GQA: 6.9e10
    assert by_id["llama2-7b"].shape.params_total == pytest.approx(6.74e9, rel=0.005)
    assert by_id["llama2-70b"].shape.params_total == pytest.approx(6.9e10, rel=0.01)
    assert by_id["llama2-7b"].eps == 1e-5 and by_id["stablelm-3b-4e1t"].eps == 1e-6


def test_published_configs_lie_inside_the_usual_ranges():
    for e in load_published():
        vals = {"learning_rate": e.peak_lr, "tokens_per_param": e.tokens / e.shape.params_total}
        if e.batch_tokens:
            vals["batch_size_tokens"] = e.batch_tokens
        if e.weight_decay:
            vals["weight_decay"] = e.weight_decay
            vals["decay_per_step"] = e.weight_decay * e.peak_lr
        assert check(vals) == [], e.id


def test_nearest_published_configs_are_in_the_recommendation():
    rec = recommend(params=7e9, tokens=2e12).to_dict()
    rows = rec["published_nearest"]
    assert {"published", "tuned_optimum"} == {r["kind"] for r in rows}
    ids = [r["id"] for r in rows if r["kind"] == "published"]
    assert {"llama2-7b", "olmo-7b", "deepseek-llm-7b"} & set(ids)
    r = rows[0]
    assert r["lr_ratio"] == pytest.approx(rec["learning_rate"]["value"] / r["peak_lr"], rel=0.01)


def test_compare_lists_published_rows():
    r = advisor("compare", "--params", "1.3e9")
    assert r.returncode == 0 and "pythia-1.4b" in r.stdout and "tuned_optimum" in r.stdout


def test_a_bad_published_entry_is_one_clear_error():
    with pytest.raises(AdvisorError, match="peak_lr"):
        parse_published({"schema": "hp-advisor/published/v1", "entries": [{
            "id": "x", "kind": "published", "checked": "memory", "tokens": 1e9, "seq_len": 2048,
            "peak_lr": -1, "source": {"citation": "c", "place": "p"},
            "shape": {"d_model": 64, "n_layers": 2, "n_heads": 2, "ffn_hidden": 128,
                      "vocab": 100}}]})
    with pytest.raises(AdvisorError, match="divisible"):
        shape_from_spec({"d_model": 100, "n_layers": 2, "n_heads": 3, "ffn_hidden": 8,
                         "vocab": 10})


# --------------------------------------------------------------- uncertainty and its cost
from advisor.recommendation import uncertainty as un  # noqa: E402


def test_the_interval_widens_with_extrapolation_beyond_the_fitted_range():
    inside = recommend(params=6e8, tokens=2e10, law="step-law").to_dict()["uncertainty"]
    far = recommend(params=4e11, tokens=1.5e13, law="step-law").to_dict()["uncertainty"]
    for key in ("learning_rate", "batch_size_tokens"):
        assert inside[key]["components_ln"]["extrapolation"] == 0
        assert far[key]["components_ln"]["extrapolation"] > 0.5
        assert far[key]["width_factor"] > inside[key]["width_factor"]


def test_interval_components_combine_as_documented():
    u = recommend(params=7e9).to_dict()["uncertainty"]["learning_rate"]
    c = u["components_ln"]
    sd = math.sqrt(c["fit"] ** 2 + max(c["setup_to_setup"], c["between_laws"]) ** 2
                   + c["extrapolation"] ** 2)
    assert u["sd_ln"] == pytest.approx(sd, rel=1e-3)
    lo, hi = u["interval_95"]
    assert hi / lo == pytest.approx(math.exp(2 * 1.96 * sd), rel=0.02)


def test_expected_excess_loss_is_stated_with_unit_source_and_cost():
    d = recommend(params=7e9).to_dict()
    e = d["expected_excess_loss"]
    assert e["unit"].startswith("nats") and "curvature" in e["source"]
    assert 0 < e["after_calibration"]["value"] < e["value"] < 0.5
    a = e["after_calibration"]
    p = a["proxy"]
    flops = 10 * 6 * p["params_non_embedding"] * p["tokens"]
    assert a["compute_flops"] == pytest.approx(flops, rel=0.01)
    assert a["gpu_hours"] == pytest.approx(flops / (989e12 * 0.4) / 3600, rel=0.01)


def test_sweep_error_formula_matches_a_simulation():
    import random
    rng = random.Random(0)
    sd, n, s = 1.5, 5, 1.0
    grid = [(i - (n - 1) / 2) * s for i in range(n)]
    sims = []
    for _ in range(20000):
        e = rng.gauss(0, sd)
        sims.append(min((e - g) ** 2 for g in grid))
    assert un.mean_sq_error_after_sweep(sd, n, s) == pytest.approx(sum(sims) / len(sims),
                                                                     rel=0.05)
    assert un.mean_sq_error_after_sweep(0.0, n, s) == 0.0


def test_shipped_trust_data_is_what_the_evidence_script_derives(external_data):
    from bench import trust_evidence
    sys.argv = ["trust_evidence.py", "--external", str(external_data)]
    out = trust_evidence.main()
    from advisor.recommendation.trust import load_trust
    shipped = load_trust()
    for law, qs in out["laws"].items():
        for q, v in qs.items():
            assert shipped["laws"][law][q]["setup_sd_ln"] == pytest.approx(v["setup_sd_ln"],
                                                                          abs=1e-3)
    # best on practice and optima together; the default (optima-fit) is chosen on tuned optima
    # held out by setup (docs/conditional.md, tests/test_conditional.py)
    assert shipped["ranking"][0]["law"] == "evidence-fit"
    fit = load_lawset("evidence-fit")
    from advisor.fit import evidence as ev
    from advisor.laws.published import load_published
    pts = ev.published_points(load_published()) + ev.steplaw_points(
        ev.steplaw_cells(external_data / "steplaw_dense_lr_bs_loss.csv"))
    lnc, a, b = ev.fit_power_law(pts, "lr")
    law = fit.laws["learning_rate"]
    assert law["coefficient"] == pytest.approx(math.exp(lnc), rel=1e-3)
    assert law["exponents"]["N"] == pytest.approx(a, abs=1e-3)
    # held-out coverage of the 95% interval, as docs/trust.md reports it
    assert out["coverage"]["learning_rate"]["evidence-fit"]["coverage"] >= 0.8


# --------------------------------------------------------------- warmup, schedule, citations
def test_warmup_is_safe_for_the_high_lrs_of_small_models():
    # the case: a 135M model at 2T tokens got 40 warmup steps at LR 0.025
    rec = recommend(params=135e6, tokens=2e12)
    assert rec.warmup_steps.value >= 2000
    assert "Wen et al. 2025" in rec.warmup_steps.source


def test_a_short_run_at_a_high_lr_gets_a_capped_warmup_and_a_reason():
    from advisor.recommendation.core import warmup_steps_for
    assert warmup_steps_for(3e-4, 100_000, 500.0, 0.95) == (2000, None)
    assert warmup_steps_for(3e-4, 100_000, 5000.0, 0.95)[0] == 5000    # N tokens
    steps, note = warmup_steps_for(4e-3, 2000, 100.0, 0.95)
    assert steps == 1000 and "shorter than the 2,000" in note and "4e-3" in note
    steps, note = warmup_steps_for(3e-4, 2000, 100.0, 0.95)
    assert steps == 1000 and "shorter" not in note


def test_eps_citation_matches_the_published_configs():
    src = recommend(params=7e9).optimizer["source"]
    assert "LLaMA 2 used 1e-5" in src and "StableLM-3B-4E1T 1e-6" in src
    by_id = {e.id: e for e in load_published()}
    assert by_id["llama2-7b"].eps == 1e-5 and by_id["pythia-160m"].eps == 1e-8


def test_the_schedule_block_says_the_lr_law_was_measured_under_another_schedule():
    s = recommend(params=7e9, law="step-law").schedule
    assert "1e-5" in s["law_schedule"]["measured_under"]
    assert "none" in s["law_schedule"]["conversion"]


# --------------------------------------------------------------- the user's real model
from advisor.specs.shapes import load_family, shape_for_params  # noqa: E402


@pytest.mark.parametrize("params,layers", [(7e9, 32), (13e9, 40), (70e9, None), (405e9, None)])
def test_derived_shapes_are_ones_people_train(params, layers):
    s = shape_for_params(load_family("llama"), params)
    assert s.n_heads % 8 == 0                      # not 71 or 127 heads
    assert s.n_layers % 2 == 0 and (s.n_layers <= 32 or s.n_layers % 4 == 0)
    if layers:
        assert s.n_layers == layers                # 7B: 32 layers, not 33
    rec = recommend(params=params).to_dict()
    err = rec["model"]["size_error"]
    assert err["value"] == pytest.approx(rec["model"]["params_total"] / params - 1, abs=1e-4)
    assert abs(err["value"]) < 0.06


def _hf(tmp_path, **c):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(c), encoding="utf-8")
    return str(path)


def test_hf_config_gives_the_exact_parameter_counts(tmp_path):
    llama7 = _hf(tmp_path, model_type="llama", hidden_act="silu", hidden_size=4096,
                 intermediate_size=11008, num_attention_heads=32, num_hidden_layers=32,
                 num_key_value_heads=32, tie_word_embeddings=False, vocab_size=32000)
    r = advisor("recommend", "--hf-config", llama7, "--tokens", "2e12", "--format", "json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)["model"]
    # Hugging Face counts 6,738,415,616 for Llama-2-7B, 266,240 of them RMSNorm gains
    assert m["params_total"] == 6_738_415_616
    assert m["shape_source"].startswith("given architecture (exact counts")


def test_gqa_and_tying_change_the_count_as_they_should(tmp_path):
    from advisor.specs.modelspec import spec_from_hf_config
    from advisor.laws.published import shape_from_spec
    base = dict(model_type="llama", hidden_act="silu", hidden_size=8192,
                intermediate_size=28672, num_attention_heads=64, num_hidden_layers=80,
                vocab_size=32000, tie_word_embeddings=False)
    gqa = shape_from_spec(spec_from_hf_config(_hf(tmp_path, num_key_value_heads=8, **base)))
    # Llama-2-70B: 68,976,648,192 in Hugging Face's count, 1,318,912 of them norm gains
    assert gqa.params_total == 68_976_648_192
    mha = shape_from_spec(spec_from_hf_config(_hf(tmp_path, num_key_value_heads=64, **base)))
    assert mha.params_total - gqa.params_total == 80 * 2 * 8192 * (8192 - 1024)
    base["tie_word_embeddings"] = True
    tied = shape_from_spec(spec_from_hf_config(_hf(tmp_path, num_key_value_heads=8, **base)))
    assert gqa.params_total - tied.params_total == 32000 * 8192


def test_model_options_and_their_errors(tmp_path):
    r = advisor("recommend", "--d-model", "576", "--n-layers", "30", "--n-heads", "9",
                "--n-kv-heads", "3", "--ffn", "1536", "--vocab", "49152", "--tied-embeddings",
                "--tokens", "2e12", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["model"]["params_total"] == pytest.approx(1.345e8, rel=0.002)
    for args in (["--d-model", "576"], ["--params", "7e9", "--d-model", "576", "--n-layers",
                                        "30", "--n-heads", "9"],
                 ["--hf-config", _hf(tmp_path, model_type="mixtral", hidden_size=4096,
                                     num_hidden_layers=32, num_attention_heads=32,
                                     num_local_experts=8, vocab_size=32000)],
                 ["--hf-config", str(tmp_path / "missing.json")]):
        r = advisor("recommend", *args, "--format", "json")
        assert r.returncode == 2 and r.stderr.startswith("error: "), (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_docs_trust_reports_the_shipped_figures():
    from advisor.recommendation.trust import load_trust
    text = (REPO / "docs" / "trust.md").read_text(encoding="utf-8")
    t = load_trust()
    for q in ("learning_rate", "batch_size"):
        q80 = t["held_out_abs_log2_quantiles"][q]["q80"]
        assert f"{2 ** (2 * q80):.1f}x" in text, q
    cov = t["coverage"]["batch_size"]["evidence-fit"]
    assert f"covers {cov['coverage']:.0%} of {cov['n']}" in text
    ranking = ", ".join(f"{r['law']} {r['rms_setup_sd_ln']:.2f}" for r in t["ranking"])
    assert ranking in text


def test_docs_trust_excess_loss_tables_are_what_recommend_prints():
    """docs/trust.md's expected-excess-loss tables, for the default law set and the former
    one, are what `python -m bench.trust_evidence --excess LAW` prints (recommend()'s own
    uncertainty and expected_excess_loss)."""
    from advisor.recommendation.core import DEFAULT_LAW
    from bench.trust_evidence import excess_table

    text = (REPO / "docs" / "trust.md").read_text(encoding="utf-8")
    assert DEFAULT_LAW == "optima-fit"
    for law in (DEFAULT_LAW, "evidence-fit"):
        assert excess_table(law) in text, f"docs/trust.md: rerun --excess {law}"


def test_docs_trust_coverage_row_is_what_recommend_prints(external_data):
    """docs/trust.md's in-sample coverage row is `recommend --law evidence-fit` run at each
    evidence point (bench.trust_evidence.recommend_coverage), not a figure kept by hand."""
    from bench.trust_evidence import coverage_row, evidence_points, recommend_coverage

    points, cells_by_id, _ = evidence_points(external_data)
    row = coverage_row("evidence-fit", recommend_coverage(points, cells_by_id, "evidence-fit"))
    text = (REPO / "docs" / "trust.md").read_text(encoding="utf-8")
    assert row in text, f"docs/trust.md: rerun python -m bench.trust_evidence\n{row}"


def test_a_chosen_law_that_is_not_applicable_is_refused_by_name(tmp_path):
    d = load_lawset("step-law").to_dict()
    d["name"] = "loglin"
    d["laws"]["learning_rate"] = {"form": "log_linear", "intercept": 0.003239,
                                  "coefficients": {"N": -0.0001395}}
    path = tmp_path / "loglin.yaml"
    path.write_text(yaml.safe_dump(d), encoding="utf-8")
    r = advisor("recommend", "--params", "70e9", "--laws", str(path), "--format", "json")
    assert r.returncode == 2
    assert "'loglin', learning_rate: not applicable" in r.stderr and r.stdout == ""


def test_a_short_warmup_is_flagged_as_unusual():
    (w,) = check({"warmup_steps": 40})
    assert "unusually low" in w and "8e-3 diverge" in w
    assert check({"warmup_steps": 2000}) == []


def test_the_committed_fitted_law_set_and_trust_data_regenerate_byte_identically(
        external_data):
    """recipes/laws/evidence-fit.yaml and recipes/published/trust.yaml are what their one
    command (python -m bench.trust_evidence --write) writes, fitted by the package's own
    power-law fitter (advisor.fit.powerlaw through advisor.fit.evidence)."""
    from bench import trust_evidence
    from advisor.fit import evidence as ev
    from advisor.laws.published import load_published

    sys.argv = ["trust_evidence.py", "--external", str(external_data)]
    out = trust_evidence.main()
    pts = ev.published_points(load_published()) + ev.steplaw_points(
        ev.steplaw_cells(external_data / "steplaw_dense_lr_bs_loss.csv"))
    files = trust_evidence.render_files(pts, out)
    assert len(files) == 2
    for path, text in files.items():
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: rerun --write"
    fit = load_lawset("evidence-fit")
    assert fit.provenance["command"] == "python -m bench.trust_evidence --write"
