"""Recommendations given the user's fixed choices (issue 23, part A): the LR at the user's batch
follows the ridge measured on Step Law's surface, the laws of optima meet the held-out goal,
a chosen LR is placed and priced, and contradictory input is refused before any work."""
from __future__ import annotations

import json
import math

import pytest
from advisor.cli.app import main as advisor_main
from advisor.errors import AdvisorError
from advisor.fit import evidence as ev
from advisor.fit import optima_law as ol
from advisor.laws.lawset import load_lawset
from advisor.laws.published import load_published
from advisor.recommendation import conditional as cnd
from advisor.recommendation.core import recommend
from advisor.rules.lr_batch_rules import ridge_offset_oct, rule_for_slope
from tests.conftest import REPO


def test_the_ridge_follows_the_linear_rule_at_small_batch_and_flattens_near_the_optimum():
    ridge = cnd.load_conditioning()["ridge"]
    regimes = {r["regime"].split(":")[0]: r for r in ridge["regimes"]}
    assert regimes["small batch"]["rule"] == "linear"
    assert 0.0 <= regimes["near the optimum"]["slope"] < 0.75
    assert ridge_offset_oct(0.0, ridge["knots_oct"], ridge["lr_offset_oct"]) == 0.0
    assert rule_for_slope(0.5) == "square root" and rule_for_slope(1.0) == "linear"
    assert rule_for_slope(0.0) == "none"


def test_a_fixed_batch_moves_the_lr_along_the_ridge_and_says_which_rule_holds():
    base = recommend(params=1e9, tokens=2e10, seq_len=4096)
    b_opt = base.given["batch"]["law_optimum_tokens"]
    small = recommend(params=1e9, tokens=2e10, seq_len=4096, batch_size=16)
    assert small.batch_size_tokens.value == 16 * 4096
    assert small.learning_rate.value < base.learning_rate.value   # less noise, smaller LR
    rule = small.given["batch"]["lr_rule_here"]
    assert rule["rule"] in ("linear", "square root") and small.given["batch"][
        "octaves_from_optimum"] < -2
    assert math.log2(small.batch_size_tokens.value / b_opt) == pytest.approx(
        small.given["batch"]["octaves_from_optimum"], abs=1e-3)
    lo80, hi80 = small.learning_rate.interval_80
    lo95, hi95 = small.learning_rate.interval_95
    assert lo95 < lo80 < small.learning_rate.value < hi80 < hi95
    d = small.to_dict()
    assert "interval_80" in d["learning_rate"] and "interval_80" in d["batch_size_tokens"]


def test_a_chosen_lr_is_placed_in_octaves_quantile_and_nats():
    rec = recommend(params=1e9, tokens=2e10, seq_len=4096, batch_tokens=1048576)
    opt = rec.given["lr_optimum_given_the_rest"]["value"]
    mine = recommend(params=1e9, tokens=2e10, seq_len=4096, batch_tokens=1048576,
                     lr=opt * 4)
    place = mine.given.lr                            # typed: read by attribute
    assert place.value == pytest.approx(opt * 4) and rec.given.lr is None
    assert place.octaves_from_optimum == pytest.approx(2.0, abs=0.01)
    assert place.quantile > 0.5 and not place.inside_80
    c = mine.expected_excess_loss.curvature_lr.value
    assert place.expected_cost_nats == pytest.approx(c * 4.0, rel=0.02)
    assert mine.to_dict()["given"]["lr"]["octaves_from_optimum"] == place.octaves_from_optimum
    assert mine.learning_rate.value == pytest.approx(opt * 4, rel=1e-3)


def test_placement_math():
    p = cnd.lr_placement(1e-3, 1e-3, 0.5, 0.01)
    assert p["octaves_from_optimum"] == 0 and p["quantile"] == 0.5
    assert p["expected_cost_nats"] == 0
    below = cnd.lr_placement(0.5e-3, 1e-3, math.log(2.0), 0.01)
    assert below["quantile"] == pytest.approx(0.1587, abs=1e-3)   # one sd below


def test_optimizer_settings_follow_batch_and_horizon():
    assert cnd.beta2_half_life_tokens(0.95, 1048576) == pytest.approx(
        1048576 * math.log(2) / -math.log(0.95))
    v = cnd.weight_decay_views(1e-3, 0.1, 1e6, 1e10, 10000)
    assert v["independent_per_step"] == pytest.approx(1e-4)
    assert v["timescale_steps"] == pytest.approx(1e4)
    assert v["timescale_fraction_of_run"] == pytest.approx(1.0)
    rec = recommend(params=1e9, tokens=2e10, batch_size=32, beta2=0.99, weight_decay=0.05)
    assert rec.optimizer.beta2 == 0.99 and rec.weight_decay.value == 0.05
    assert rec.given["beta2"]["recommended_for_this_batch"] > 0.95   # small batch: longer memory
    eps = rec.given["eps_per_group_mup"]
    m = rec.mup.width / rec.mup.base_width
    assert eps["value"]["hidden"] == pytest.approx(rec.optimizer.eps / m, rel=1e-2)
    assert eps["value"]["embedding"] == rec.optimizer.eps      # fan-in is the vocabulary


@pytest.mark.parametrize("args, words", [
    (["--batch-tokens", "1000000", "--seq-len", "4096"], "whole number of sequences"),
    (["--batch-tokens", "1048576", "--batch-size", "100", "--seq-len", "4096"], "contradicts"),
    (["--lr", "-3e-4"], "positive"),
    (["--lr", "3"], "not a peak AdamW LR"),
    (["--lr", "1e-9"], "too small to train"),
    (["--beta2", "1.0"], "between 0 and 1"),
])
def test_contradictory_or_absurd_choices_are_one_error_line_and_exit_2(args, words, capsys):
    with pytest.raises(SystemExit) as exc:
        advisor_main(["recommend", "--params", "1e9"] + args)
    out = capsys.readouterr()
    assert exc.value.code == 2 and out.out == ""
    lines = [ln for ln in out.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0]


def test_a_batch_far_outside_the_evidence_is_warned_about_with_its_range():
    rec = recommend(params=1e9, tokens=2e10, seq_len=2048, batch_size=1)
    assert any("far outside the evidence" in w and "tokens" in w for w in rec.warnings)


def test_the_default_meets_the_goal_on_tuned_optima_held_out_by_setup():
    """The shipped figures (recomputed by the next test where the Step Law grid is present):
    the default, on 35 tuned optima at their own batch, each setup held out."""
    figures = json.loads((REPO / "docs" / "conditional_eval.json").read_text())
    got = figures["optima-fit"]["conditioned"]
    assert got["n"] == 35
    assert got["median_abs_log2_error"] <= 0.75
    assert got["coverage_80"] >= 0.8
    assert got["median_width_80"] <= 4.0
    # conditioning on the batch helps the default, and the default beats every shipped law
    assert got["median_abs_log2_error"] < figures["optima-fit"]["unconditioned"][
        "median_abs_log2_error"]
    assert all(got["median_abs_log2_error"] < v["conditioned"]["median_abs_log2_error"]
               for k, v in figures.items() if k != "optima-fit")


def test_a_law_of_optima_fitted_on_three_sizes_predicts_the_fourth():
    """No external data needed: within Wen et al.'s sweep, the law of optima fitted without
    one model size predicts that size's optima at their own batch within 0.75 octaves
    (median), with the shipped ridge."""
    cond = cnd.load_conditioning()
    ridge = {k: cond["ridge"][k] for k in ("knots_oct", "lr_offset_oct")}
    marin = [p for p in ev.published_points(load_published()) if p.kind == "tuned_optimum"]
    errors = ol.leave_one_size_out(marin, ridge)
    assert len(errors) == 18
    assert sorted(abs(e) for e in errors.values())[len(errors) // 2] <= 0.75


def test_the_full_table_is_what_the_bench_derives(external_data):
    from bench import conditional_eval as ce
    cond = cnd.load_conditioning()
    ridge = {k: cond["ridge"][k] for k in ("knots_oct", "lr_offset_oct")}
    points, runs = ce.tuned_points(external_data / "steplaw_dense_lr_bs_loss.csv")
    preds = ce.shipped_predictions(points, runs)
    results, _ = ce.evaluate(points, ridge, preds)
    figures = json.loads((REPO / "docs" / "conditional_eval.json").read_text())
    for law, res in results.items():
        for mode in ("conditioned", "unconditioned"):
            assert res[mode]["summary"] == figures[law][mode], (law, mode)


def test_the_readme_table_is_the_shipped_figures():
    """Every row of README's conditional table is docs/conditional_eval.json, as printed."""
    import re
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- conditional-table -->", 1)[1].split("\n\n", 1)[0]
    figures = json.loads((REPO / "docs" / "conditional_eval.json").read_text())
    rows = [r for r in block.strip().splitlines()[2:]]
    assert len(rows) == 7
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        name = re.sub(r"\*|\s*\(.*\)", "", cells[0]).strip()
        for cell, mode in zip(cells[1:], ("conditioned", "unconditioned")):
            s = figures[name][mode]
            assert cell == (f"{s['median_abs_log2_error']:.2f} / {100 * s['coverage_80']:.0f}% / "
                            f"{s['median_width_80']:.1f}x"), (name, mode)


def test_a_fixed_schedule_and_warmup_are_used_and_a_short_warmup_at_a_high_lr_is_warned():
    rec = recommend(params=350e6, tokens=7e9, schedule="cosine:final=0.1", warmup=500)
    assert rec.schedule.family == "cosine" and rec.schedule.source == "given (--schedule)"
    assert rec.warmup_steps.value == 500 and rec.schedule.warmup_steps == 500
    assert rec.learning_rate.value >= 1e-3
    assert any(w.startswith("warmup: 500 steps") for w in rec.warnings)
    with pytest.raises(AdvisorError, match="cannot parse schedule"):
        recommend(params=350e6, schedule="bogus")


def test_the_shipped_ridge_is_the_surface_fitted_to_step_laws_grid(external_data):
    """Refit the surface ensemble on Step Law's grid (a real fit, ~30 s of CPU) and read its
    ridge: the shipped ridge and its rules are what it gives."""
    from bench import conditional_eval as ce
    ridge, grid_regimes, _ = ce.surface_and_ridge(external_data / "steplaw_dense_lr_bs_loss.csv")
    shipped = cnd.load_conditioning()["ridge"]
    assert ridge["lr_offset_oct"] == pytest.approx(shipped["lr_offset_oct"], abs=2e-3)
    assert [r["rule"] for r in ridge["regimes"]] == [r["rule"] for r in shipped["regimes"]]
    assert {r["regime"]: r["rule"] for r in grid_regimes}["small batch: B < B*/2"] == "linear"


def test_the_committed_optima_fit_and_conditioning_regenerate_byte_identically(
        external_data, monkeypatch, capsys):
    """recipes/laws/optima-fit.yaml, recipes/published/conditioning.yaml and
    docs/conditional_eval.json are what their one command (python -m bench.conditional_eval
    --write) writes: the ridge from the package's surface fitter (advisor.fit.surface,
    advisor.fit.ridge), the law of optima from advisor.fit.optima_law. `--check` recomputes
    them and exits 1 naming any file that differs."""
    import sys
    from bench import conditional_eval as ce

    monkeypatch.setattr(sys, "argv", ["conditional_eval.py", "--external", str(external_data),
                                      "--check"])
    ce.main()
    assert ": what --write gives" in capsys.readouterr().out
    assert load_lawset("optima-fit").provenance["command"] == \
        "python -m bench.conditional_eval --write"
