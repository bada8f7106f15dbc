"""Statistical verdicts, blame and the model zoo (issue 15): no correct zoo model fails,
every broken one fails with the right cause named first; the steady-state rule's arithmetic.

The zoo runs at one width triple and seed count here (CI); bench/bench_spectral_zoo.py runs
the rest (64/128/256 and 128/256/512, see docs/spectral-check.md)."""
import math

import numpy as np
import pytest

from calibration.spectral import verdict as V
from calibration.spectral.blame import blame, direct_cause
from calibration.spectral.invariance import CheckResult, Row

# --------------------------------------------------------------------------------------
# verdict.py: intervals and rules
# --------------------------------------------------------------------------------------


def test_noise_free_power_law_gives_a_point_interval():
    w = np.array([64, 128, 256])
    table = np.stack([3.0 * w ** 0.5, 5.0 * w ** 0.5], axis=1)
    fit = V.fit_slope(w, table)
    assert fit.slope == pytest.approx(0.5)
    assert fit.hi - fit.lo == pytest.approx(0.0, abs=1e-9)


def test_interval_covers_the_true_slope_at_about_its_confidence():
    rng = np.random.default_rng(0)
    w = np.array([64, 128, 256])
    hits, n = 0, 400
    for _ in range(n):
        table = np.exp(0.2 * np.log(w)[:, None] + rng.normal(0, 0.3, size=(3, 4)))
        fit = V.fit_slope(w, table, confidence=0.9)
        hits += fit.lo <= 0.2 <= fit.hi
    assert 0.85 <= hits / n <= 0.95


def test_identical_replicates_count_once():
    w = [64, 128, 256]
    col = np.array([1.0, 1.3, 1.2])
    fit = V.fit_slope(w, np.stack([col, col, col], axis=1))
    assert fit.n_replicates == 1 and fit.n_points == 3
    wider = V.fit_slope(w, np.stack([col, col * 1.01, col * 0.99], axis=1))
    assert wider.n_replicates == 3


@pytest.mark.parametrize("lo,hi,one_sided,expect", [
    (-0.2, 0.2, False, "pass"), (0.35, 0.6, False, "FAIL"), (-0.9, -0.4, False, "FAIL"),
    (0.1, 0.5, False, "inconclusive"), (-0.5, -0.1, False, "inconclusive"),
    (-0.9, -0.4, True, "pass"), (0.1, 0.5, True, "inconclusive"), (0.31, 0.5, True, "FAIL")])
def test_judge_against_the_band(lo, hi, one_sided, expect):
    fit = V.SlopeFit((lo + hi) / 2, lo, hi, 12, 4)
    assert V.judge(fit, 0.3, one_sided) == expect


def test_overall_and_seeds_to_settle():
    assert V.overall(["pass", "inconclusive", "pass"]) == "inconclusive"
    assert V.overall(["inconclusive", "FAIL"]) == "FAIL"
    assert V.overall(["pass"]) == "pass"
    # slope 0, half-width 0.4 against tol 0.3: the point estimates alone would say 2x the
    # replicates; at the 90% upper bound of the scatter and 80% of the margin it takes more
    n = V.seeds_to_settle(V.SlopeFit(0.0, -0.4, 0.4, 12, 4), 0.3, False)
    assert 8 < n <= 64
    assert V.seeds_to_settle(V.SlopeFit(0.3, 0.1, 0.5, 12, 4), 0.3, False) is None


# --------------------------------------------------------------------------------------
# blame.py
# --------------------------------------------------------------------------------------

def _row(layer, stat, kind, slope, verdict="FAIL"):
    return Row(layer, stat, slope, verdict, [1, 1, 1], "", slope - 0.1, slope + 0.1, kind)


def test_direct_causes_by_kind_and_statistic():
    assert direct_cause("head", "update_op", "readout") == "readout"
    assert direct_cause("logits", "act_rms", "logits") == "readout"
    assert direct_cause("wte", "update_op", "input") == "embedding"
    assert direct_cause("attn_logits[0]", "attn_scale", "attention") == "attention"
    assert direct_cause("b.0.fc", "update_op", "hidden") == "hidden-lr"
    assert direct_cause("b.0.fc", "weight_op", "hidden") == "hidden-init"
    assert direct_cause("b.0.fc", "act_rms", "hidden") == "activation"


def test_readout_leads_and_what_it_feeds_is_grouped_after_it():
    rows = [_row("blocks.0.fc", "act_rms", "hidden", 0.9), _row("attn_logits[0]", "attn_rms",
            "attention", 0.8), _row("head", "update_op", "readout", 0.7),
            _row("wte", "act_rms", "input", 0.0, "pass")]
    causes = blame(CheckResult([64, 128, 256], 20, 0.3, rows))
    assert [c.name for c in causes] == ["readout", "attention", "activation"]
    assert not causes[0].follows and all(c.follows for c in causes[1:])
    assert "MuReadout" in causes[0].line() and "head" in causes[0].line()


def test_a_growing_q_k_update_is_blamed_before_the_attention_logits():
    rows = [_row("attn_logits[0]", "attn_rms", "attention", 1.5),
            _row("b.0.qkv", "weight_op", "hidden", 0.6), _row("b.0.qkv", "update_op", "hidden", 1.0)]
    causes = blame(CheckResult([64, 128, 256], 20, 0.3, rows))
    assert [c.name for c in causes] == ["hidden-lr", "attention"]   # weight level merged in


def test_an_input_layer_whose_own_weight_and_update_pass_is_not_blamed_first():
    # the MLP on plain Adam at 64/128/256: fc1's output shrinks (dead ReLU units from the
    # hidden layers' too-large updates) while fc1's own update is right
    rows = [_row("fc1", "act_delta", "input", -0.45), _row("fc1", "update_op", "input", 0.0, "pass"),
            _row("fc2", "update_op", "hidden", 0.9)]
    causes = blame(CheckResult([64, 128, 256], 20, 0.3, rows))
    assert [c.name for c in causes] == ["hidden-lr", "activation"]
    rows.append(_row("fc1", "weight_op", "input", -0.9))      # its own weight moves: embedding
    assert blame(CheckResult([64, 128, 256], 20, 0.3, rows))[0].name == "embedding"


def test_width_multipliers_all_one_blame_the_base_shapes():
    rows = [_row("head", "update_op", "readout", 0.7)]
    res = CheckResult([64, 128, 256], 20, 0.3, rows, width_mults={64: 1.0, 128: 1.0, 256: 1.0})
    assert blame(res)[0].name == "base-shapes"


# --------------------------------------------------------------------------------------
# steady.py: the rule's arithmetic and the weight-decay rules
# --------------------------------------------------------------------------------------

def test_fan_et_al_predicted_slopes_for_the_three_rules():
    from calibration.spectral.steady import predicted_slope, rule_name
    assert predicted_slope(-1.0, 0.0) == pytest.approx(0.25)     # lambda constant
    assert predicted_slope(-1.0, 1.0) == pytest.approx(-0.25)    # MuAdamW: lambda * m
    assert predicted_slope(-1.0, 0.5) == pytest.approx(0.0)      # sqrt(d): invariant
    assert rule_name(0.5, -1.0).startswith("sqrt")


def test_mup_adamw_multiplies_weight_decay_by_the_width_multiplier_and_rules_reset_it():
    torch = pytest.importorskip("torch")
    from calibration.spectral import zoo

    def hidden_lr_wd(spec, width):
        model, opt = zoo.build(spec, width, seed=0)
        p = model.blocks[0].mlp.fc.weight
        g = next(g for g in opt.param_groups if any(q is p for q in g["params"]))
        emb = next(g for g in opt.param_groups if any(q is model.wte.weight for q in g["params"]))
        return g["lr"], g["weight_decay"], emb["weight_decay"]

    plain = zoo.with_(zoo.CORRECT["issue15"], weight_decay=0.0)
    model, opt = zoo.build(plain, 256, seed=0)
    from mup import MuAdamW
    opt = MuAdamW(model.parameters(), lr=1e-2, weight_decay=0.1)      # mup 1.0.0 itself
    fc = model.blocks[0].mlp.fc.weight
    g = next(g for g in opt.param_groups if any(q is fc for q in g["params"]))
    assert g["lr"] == pytest.approx(1e-2 / 4) and g["weight_decay"] == pytest.approx(0.4)
    for rule, exp in (("none", 0.0), ("sqrt", 0.5), ("mup", 1.0)):
        spec = zoo.with_(zoo.CORRECT["issue15"], weight_decay=0.5, wd_rule=rule)
        lr, wd, emb_wd = hidden_lr_wd(spec, 256)
        assert wd == pytest.approx(0.5 * 4 ** exp) and emb_wd == 0.0
        assert lr == pytest.approx(1e-2 / 4)
    del torch


# --------------------------------------------------------------------------------------
# The zoo (CI size: one width triple, one seed count, the check's other defaults)
# --------------------------------------------------------------------------------------

CI_WIDTHS = (32, 64, 128)      # 64/128/256 and 128/256/512: bench/bench_spectral_zoo.py
CI_SEEDS = 4                   # the default
CI_SEQ = 32                    # ~5-15 s per model on the loaded 2-core CPU (39 models)


def _zoo_names():
    from calibration.spectral import zoo
    return list(zoo.CORRECT), list(zoo.BROKEN)


@pytest.fixture(scope="module")
def zoo_module():
    pytest.importorskip("mup")
    from calibration.spectral import zoo
    return zoo


@pytest.mark.parametrize("name", _zoo_names()[0])
def test_correct_zoo_model_passes(name, zoo_module, one_torch_thread):
    from calibration.spectral.invariance import run_check
    res = run_check(zoo_module.factory(zoo_module.CORRECT[name], name), CI_WIDTHS,
                    seeds=CI_SEEDS, contract=zoo_module.contract(name, seq_len=CI_SEQ))
    assert res.status == "pass", res.report()
    assert res.distinct_seeds == CI_SEEDS            # a self-seeding factory is re-seeded
    if name not in ("mlp",):
        assert res.attention, "attention not measured"      # every zoo transformer is seen


@pytest.mark.parametrize("name", _zoo_names()[1])
def test_broken_zoo_model_fails_with_the_right_cause_first(name, zoo_module, one_torch_thread):
    from calibration.spectral.invariance import run_check
    spec, cause = zoo_module.BROKEN[name]
    res = run_check(zoo_module.factory(spec, name), CI_WIDTHS, seeds=CI_SEEDS,
                    contract=zoo_module.contract(name, seq_len=CI_SEQ))
    assert res.status == "FAIL" and res.exit_code == 1, res.report()
    causes = res.causes()
    assert causes and causes[0].name == cause, res.report()
    assert res.report().splitlines()[1].lstrip().startswith("1. ")      # leads with the cause
    assert all(math.isfinite(r.slope) for r in res.rows)


# --------------------------------------------------------------------------------------
# Steady-state mode (tiny CPU size)
# --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_steady_state_follows_the_weight_decay_rule_in_order(zoo_module, one_torch_thread):
    from calibration.spectral.steady import run_steady
    medians = {}
    for rule in ("none", "mup"):
        spec = zoo_module.with_(zoo_module.CORRECT["issue15"], weight_decay=1.0, wd_rule=rule)
        res = run_steady(zoo_module.factory(spec), widths=(32, 64, 128), steps=120, seeds=1,
                         seq_len=32)
        assert res.exit_code in (0, 1, 3) and len(res.rows) == 8
        assert {round(r.predicted, 6) for r in res.rows} == {0.25 if rule == "none" else -0.25}
        assert "rule in use" in res.report()
        medians[rule] = float(np.median([r.slope for r in res.rows]))
    # constant lambda lets sigma_max grow with width faster than MuAdamW's lambda ~ d
    assert medians["none"] > medians["mup"] + 0.1, medians


def test_steady_state_refuses_a_model_without_weight_decay(zoo_module):
    from advisor.errors import AdvisorError
    from calibration.spectral.steady import run_steady
    with pytest.raises(AdvisorError, match="weight decay"):
        run_steady(zoo_module.factory(zoo_module.CORRECT["issue15"]), widths=(32, 64, 128),
                   steps=8, seeds=1, seq_len=16)


def test_cli_steady_state_on_the_family_and_inconclusive_exit_code(capsys):
    import json as _json

    from advisor.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["check-spectral", "--steady-state", "--widths", "32,64,128", "--steps", "20",
              "--seeds", "1", "--wd-rule", "sqrt", "--format", "json"])
    doc = _json.loads(capsys.readouterr().out)
    assert exc.value.code == doc["exit_code"] and doc["exit_code"] in (0, 1, 3)
    assert doc["weight_decay_rule"].startswith("sqrt") and doc["rows"]
