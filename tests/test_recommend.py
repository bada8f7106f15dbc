"""`recommend` gives a complete config whose numbers carry units and sources."""
import json

import pytest

from advisor import recommend
from advisor.errors import AdvisorError
from advisor.recommendation.core import adam_beta2, compute_optimal_tokens, round_batch
from advisor.laws.lawset import load_lawset
from advisor.specs.shapes import load_family, shape_for_params

STABLE_KEYS = {"learning_rate", "weight_decay", "batch_size_tokens", "batch_size_sequences",
               "warmup_steps", "total_steps", "schedule", "model", "predicted_loss", "law",
               "warnings"}


@pytest.fixture(scope="module")
def rec7b():
    return recommend(params=7e9)


def test_7b_recommendation_lies_where_published_7b_runs_were_trained(rec7b):
    # LLaMA 2 7B: lr 3e-4, 4M-token batches, wd 0.1; DeepSeek 7B: lr 4.2e-4, 9.4M tokens
    d = rec7b.to_dict()
    assert STABLE_KEYS <= set(d)
    assert 1e-4 <= d["learning_rate"]["value"] <= 1e-3
    assert 2.5e5 <= d["batch_size_tokens"]["value"] <= 1.6e7
    assert 0.01 <= d["weight_decay"]["value"] <= 0.3
    assert d["batch_size_tokens"]["value"] == d["batch_size_sequences"]["value"] * 4096
    assert d["total_steps"]["value"] * d["batch_size_tokens"]["value"] >= d["target"]["tokens"]["value"]
    assert 0 < d["warmup_steps"]["value"] < d["total_steps"]["value"]
    for key in ("learning_rate", "weight_decay", "batch_size_tokens", "warmup_steps",
                "total_steps", "predicted_loss"):
        assert d[key]["unit"] and d[key]["source"], key
    json.loads(rec7b.to_json())


def test_the_model_shape_matches_the_target_size(rec7b):
    m = rec7b.model
    # LLaMA 2 7B's shape (4096 x 32, 32 heads): 3.7% under 7e9, and the output says so
    assert m["params_total"] == pytest.approx(7e9, rel=0.04)
    assert m["size_error"]["value"] == pytest.approx(m["params_total"] / 7e9 - 1, abs=1e-4)
    assert m["d_model"] % m["head_dim"] == 0 and m["n_heads"] * m["head_dim"] == m["d_model"]
    assert m["params_for_laws"]["convention"] == "non_embedding"
    assert m["params_for_laws"]["value"] == m["params_non_embedding"]


def test_llama2_7b_shape_counts_as_published():
    s = load_family("llama").shape(4096, 32)
    assert s.ffn_hidden == 11008 and s.params_total == 6_738_415_616


def test_default_tokens_are_compute_optimal_and_said_so(rec7b):
    t = rec7b.target["tokens"]
    assert "compute-optimal" in t["source"]
    assert 15 < rec7b.target["tokens_per_param"] < 30     # Chinchilla's ~20 tokens/parameter


def test_step_law_values_are_what_the_formula_gives():
    rec = recommend(params=7e9, tokens=1.4e12, law="step-law")
    N = rec.model["params_non_embedding"]
    assert rec.learning_rate.value == pytest.approx(1.79 * N ** -0.713 * 1.4e12 ** 0.307,
                                                    rel=2e-3)
    assert rec.batch_size_tokens.value == pytest.approx(0.58 * 1.4e12 ** 0.571, rel=0.02)


def test_extrapolation_and_disagreement_are_warned_about(rec7b):
    text = " ".join(rec7b.warnings)
    assert "outside the fitted range" in text and "above" in text
    assert "disagree" in text


def test_in_range_target_has_no_range_warning_for_step_law():
    rec = recommend(params=6e8, tokens=2e10, law="step-law")
    assert not [w for w in rec.warnings if w.startswith("step-law") and "fitted range" in w]


def test_a_fitted_law_file_is_used_like_a_shipped_one(tmp_path):
    from advisor.laws.lawset import dump_lawset
    d = load_lawset("step-law").to_dict()
    d["name"] = "my-fit"
    d["laws"]["learning_rate"]["coefficient"] = 3.58   # twice step-law's
    dump_lawset(d, tmp_path / "fit.yaml")
    mine = recommend(params=1e9, tokens=2e10, laws_file=str(tmp_path / "fit.yaml"))
    ref = recommend(params=1e9, tokens=2e10, law="step-law")
    assert mine.law["name"] == "my-fit"
    assert mine.learning_rate.value == pytest.approx(2 * ref.learning_rate.value, rel=0.01)


def test_minicpm_base_lr_is_scaled_to_the_target_width():
    rec = recommend(params=7e9, law="minicpm")
    assert rec.learning_rate.value == pytest.approx(0.01 * 256 / rec.model["d_model"], rel=0.01)
    assert "muP base LR" in rec.learning_rate.note


def test_mup_view_scales_hidden_lr_and_readout_by_the_width_multiplier(rec7b):
    m = rec7b.mup["width_multiplier"]
    groups = {g["group"]: g for g in rec7b.mup["groups"]}
    hidden = next(g for k, g in groups.items() if k.startswith("hidden"))
    assert hidden["lr_multiplier"] == pytest.approx(1 / m, rel=1e-3)
    assert groups["readout (unembedding)"]["output_multiplier"] == pytest.approx(1 / m, rel=1e-3)


@pytest.mark.parametrize("params", [-5, 0, "abc", "nan", "inf", 1e30, "1e-3"])
def test_bad_sizes_are_refused(params):
    with pytest.raises(AdvisorError):
        recommend(params=params)


def test_laws_without_lr_cannot_drive_a_recommendation():
    with pytest.raises(AdvisorError, match="no learning_rate law"):
        recommend(params=7e9, law="chinchilla")


def test_batch_rounding_moves_the_batch_by_at_most_half_a_granule():
    for seqs in [1.3, 7.7, 40.2, 331.96, 1220.7, 9999.0]:
        r, g = round_batch(seqs)
        assert r % g == 0 and abs(r - seqs) <= g / 2
        assert g == 1 or g <= seqs / 32          # so large batches move by <= 1/64


def test_beta2_keeps_the_token_half_life_below_a_million_tokens():
    assert adam_beta2(4e6) == 0.95
    assert adam_beta2(2 ** 19) == pytest.approx(0.95 ** 0.5)
    assert adam_beta2(1e3) == 0.999


def test_compute_optimal_tokens_minimise_loss_at_fixed_compute():
    ls = load_lawset("epoch-chinchilla")
    N = 1e9
    D = compute_optimal_tokens(N, ls)
    C = 6 * N * D
    loss = lambda n: ls.predict("loss", n, C / (6 * n))
    assert loss(N) < loss(N * 1.1) and loss(N) < loss(N / 1.1)


def test_shapes_cover_small_and_huge_targets():
    fam = load_family("llama")
    for p in (3e7, 1e9, 7e10, 1e12):
        # heads a multiple of 8 (or under 8) and published depths cost up to ~6% in size
        assert shape_for_params(fam, p).params_total == pytest.approx(p, rel=0.06)
    with pytest.raises(AdvisorError, match="smaller than the smallest"):
        shape_for_params(fam, 1e6)


def test_an_absurd_token_budget_is_refused_not_silently_answered():
    with pytest.raises(AdvisorError, match="tokens_per_param"):
        recommend(params=7e9, tokens=1e3)
    rec = recommend(params=7e9, tokens=1e9)          # unusual but possible: a warning
    assert any("tokens_per_param" in w and "unusually low" in w for w in rec.warnings)


def test_a_fitted_schedule_law_chooses_the_schedule_block_and_says_so(tmp_path, external_data):
    import subprocess
    import sys
    law = tmp_path / "schedule-law.yaml"
    subprocess.run([sys.executable, "-m", "advisor.cli", "schedule", "fit",
                    str(external_data / "multipower_loss_curves" / "25M"), "--law", "multipower",
                    "--out", str(law)], check=True, capture_output=True)
    rec = recommend(params=1e9, schedule_law=str(law))
    s = rec.schedule
    assert "fitted schedule law" in s["source"]
    assert s["warmup_steps"] == rec.warmup_steps.value
    assert s["gain_over_cosine_nats"] >= 0
    lo, hi = s["predicted_final_loss_interval"]          # never a bare predicted loss
    assert lo < s["predicted_final_loss"] < hi and s["interval_reason"]
    assert s["branch_points"][-1]["total_steps"] == rec.total_steps.value
    from advisor.rules.lr_schedule import parse_schedule
    assert parse_schedule(s["spec"]).decay_start(rec.total_steps.value) == s["decay_start_step"]
