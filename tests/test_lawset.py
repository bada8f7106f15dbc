"""Law sets are data: every shipped set loads, and bad or hostile files are refused cleanly."""
import math

import pytest

from advisor.errors import AdvisorError
from advisor.laws.lawset import (LawSet, dump_lawset, load_lawset, load_shipped, parse_yaml_text,
                            shipped_names, validate_lawset_dict)

REQUIRED_SETS = {"step-law", "deepseek-llm", "porian", "power-lines", "kaplan", "chinchilla",
                 "epoch-chinchilla", "minicpm"}


def minimal(**laws):
    return {"schema": "hp-advisor/lawset/v1", "name": "mine", "source": {"citation": "me"},
            "conventions": {"params": "non_embedding"},
            "laws": laws or {"learning_rate": {"form": "power_law", "coefficient": 1.0,
                                               "exponents": {"N": -0.5}}}}


def test_every_required_law_set_ships_with_a_source_and_units():
    assert REQUIRED_SETS <= set(shipped_names())
    for ls in load_shipped():
        assert ls.source.get("citation") and ls.source.get("checked"), ls.name
        assert ls.conventions["params"] in ("non_embedding", "total", "no_input_embedding")
        for q, law in ls.laws.items():
            assert law.get("unit"), f"{ls.name}.{q} states no unit"


def test_step_law_reproduces_the_papers_7b_example():
    # Li et al. 2025: N = 7e9 non-embedding, D = 1.4e12 -> lr ~ 9.2e-4, batch ~ 5.0M tokens
    ls = load_lawset("step-law")
    assert ls.predict("learning_rate", N=7e9, D=1.4e12) == pytest.approx(9.2e-4, rel=0.01)
    assert ls.predict("batch_size", N=7e9, D=1.4e12) == pytest.approx(5.0e6, rel=0.01)
    lo, hi = ls.interval("learning_rate", N=7e9, D=1.4e12)
    assert lo < 9.2e-4 < hi


def test_deepseek_law_is_evaluated_on_their_compute_m_times_d():
    ls = load_lawset("deepseek-llm")
    M, D = 1e10, 1e11
    assert ls.predict("learning_rate", N=1e9, D=D, M=M) == pytest.approx(
        0.3118 * (M * D) ** -0.125)
    with pytest.raises(AdvisorError, match="FLOPs per token"):
        ls.predict("batch_size", N=1e9, D=D)


def test_power_lines_weight_decay_follows_from_the_adamw_timescale():
    ls = load_lawset("power-lines")
    N, D, lr, B = 1e9, 2e10, 1e-3, 1e6
    tau = 1.084 * (D / N) ** -0.527
    wd = ls.predict("weight_decay", N=N, D=D, lr=lr, B_tokens=B)
    assert wd == pytest.approx(B / (lr * tau * D))
    # tau = B / (lr * wd * D) is recovered
    assert B / (lr * wd * D) == pytest.approx(tau)


def test_chinchilla_loss_laws_match_the_published_constants():
    assert load_lawset("chinchilla").predict("loss", N=70e9, D=1.4e12) == pytest.approx(
        1.69 + 406.4 / 70e9 ** 0.34 + 410.7 / 1.4e12 ** 0.28)
    assert load_lawset("epoch-chinchilla").predict("loss", N=70e9, D=1.4e12) == pytest.approx(
        1.8172 + 482.01 / 70e9 ** 0.3478 + 2085.43 / 1.4e12 ** 0.3658)


def test_kaplan_critical_batch_reads_kaplans_own_loss():
    ls = load_lawset("kaplan")
    L = ls.predict("loss", N=1e9, D=2e10)
    assert ls.predict("critical_batch_size", N=1e9, D=2e10) == pytest.approx(2e8 / L ** (1 / 0.21),
                                                                            rel=1e-5)


def test_out_of_range_says_by_how_much():
    notes = load_lawset("step-law").out_of_range("learning_rate", N=1e10, D=1e10)
    assert any("N = 1e+10" in n and "above" in n for n in notes)


def test_round_trip_through_dump(tmp_path):
    d = load_lawset("step-law").to_dict()
    dump_lawset(d, tmp_path / "s.yaml")
    again = load_lawset(tmp_path / "s.yaml")
    assert again.predict("learning_rate", N=1e9, D=1e10) == pytest.approx(
        load_lawset("step-law").predict("learning_rate", N=1e9, D=1e10))


def test_scientific_notation_without_a_dot_is_a_number():
    # PyYAML (YAML 1.1) would read 7.0e7 and 1e9 as strings
    assert parse_yaml_text("a: 7.0e7\nb: 1e9\nc: -2E-3", "x") == {"a": 7e7, "b": 1e9, "c": -2e-3}


@pytest.mark.parametrize("text, message", [
    ("schema: hp-advisor/lawset/v1\nname: x\n", "source"),
    ("!!python/object/apply:os.system ['echo hacked']", "not valid YAML"),
    ("a: !!python/name:os.system", "not valid YAML"),
    ("[1, 2", "not valid YAML"),
    ("- just\n- a list", "mapping"),
])
def test_hostile_or_malformed_files_are_refused_with_one_line(tmp_path, text, message):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(AdvisorError, match=message) as exc:
        load_lawset(p)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["laws"]["learning_rate"].update(form="eval"), "unknown form"),
    (lambda d: d["laws"]["learning_rate"].pop("coefficient"), "needs constant"),
    (lambda d: d["laws"]["learning_rate"].update(coefficient="__import__('os')"), "number"),
    (lambda d: d["laws"]["learning_rate"].update(coefficient=float("nan")), "finite"),
    (lambda d: d["laws"]["learning_rate"]["exponents"].update(X=1.0), "unknown variable"),
    (lambda d: d["laws"].update(dropout={"form": "constant", "value": 0.1}), "unknown quantity"),
    (lambda d: d["conventions"].update(params="some"), "conventions.params"),
    (lambda d: d.update(extra=1), "unknown top-level"),
    (lambda d: d.update(schema="v0"), "schema"),
    (lambda d: d["laws"]["learning_rate"].update(fitted_range={"N": [2, 1]}), "lo > hi"),
])
def test_invalid_law_sets_name_what_is_wrong(mutate, message):
    d = minimal()
    mutate(d)
    with pytest.raises(AdvisorError, match=message):
        validate_lawset_dict(d)


def test_unknown_shipped_name_lists_the_choices():
    with pytest.raises(AdvisorError, match="shipped sets: .*step-law"):
        load_lawset("no-such-law")


def test_a_minimal_user_law_set_is_usable():
    ls = LawSet.from_dict(minimal())
    assert ls.predict("learning_rate", N=100.0, D=1.0) == pytest.approx(0.1)
    assert math.isfinite(ls.predict("learning_rate", N=1e9, D=1.0))


# --------------------------------------------------------------------------------------
# Loss laws: plausible exponents only (advisor.laws.plausible.LOSS_EXPONENT_RANGE)
# --------------------------------------------------------------------------------------

CHINCHILLA_LOSS = {"form": "chinchilla", "E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34,
                   "beta": 0.28, "fitted_range": {"N": [7e7, 1.6e10], "D": [5e9, 5e11]}}


def test_published_loss_laws_are_plausible():
    from advisor.laws.plausible import LOSS_EXPONENT_RANGE, LOSS_EXPONENTS

    lo, hi = LOSS_EXPONENT_RANGE
    loss_sets = [ls for ls in load_shipped() if "loss" in ls.laws]
    assert {ls.name for ls in loss_sets} >= {"chinchilla", "epoch-chinchilla", "kaplan"}
    for ls in loss_sets:
        law = ls.laws["loss"]
        for name in LOSS_EXPONENTS[law["form"]]:
            assert lo < law[name] < hi, (ls.name, name)


# --------------------------------------------------------------------------------------
# LR and batch laws: plausible exponents (advisor.laws.plausible.HP_EXPONENT_RANGES) and
# values inside their fitted range (the refuse ranges of advisor.rules.plausibility)
# --------------------------------------------------------------------------------------

def test_published_lr_and_batch_laws_are_plausible():
    from advisor.laws.plausible import HP_EXPONENT_RANGES, HP_EXPONENT_VARIABLES

    seen = set()
    for ls in load_shipped():
        for quantity, (lo, hi) in HP_EXPONENT_RANGES.items():
            for var, e in (ls.laws.get(quantity, {}).get("exponents") or {}).items():
                if var in HP_EXPONENT_VARIABLES:
                    assert lo < e < hi, (ls.name, quantity, var, e)
                    seen.add((ls.name, quantity))
    assert {("step-law", "learning_rate"), ("porian", "batch_size"),
            ("deepseek-llm", "learning_rate")} <= seen


@pytest.mark.parametrize("quantity, law, message", [
    # the muP base LR that `advisor fit` gives on cpu-fit's 4 cells: ~ D^-1.97
    ("learning_rate", {"coefficient": 1.16e6, "exponents": {"D": -1.97},
                       "fitted_range": {"D": [4e4, 1.6e5]}},
     r"learning_rate law's exponent -1\.97 on D is outside \[-1\.1, \+0\.5\]"),
    ("learning_rate", {"coefficient": 1e-4, "exponents": {"N": 0.8}},
     r"exponent \+0\.8 on N is outside"),
    ("batch_size", {"coefficient": 1.0, "exponents": {"N": 1.5}},
     r"batch_size law's exponent \+1\.5 on N is outside \[-0\.3, \+1\.1\]"),
    # plausible exponent, but an LR of 0.5 at the small end of its own range
    ("learning_rate", {"coefficient": 50.0, "exponents": {"N": -0.3},
                       "fitted_range": {"N": [1e7, 1e9]}},
     r"learning_rate law predicts 0\.39\d* at N = 1e\+07.*outside \[1e-06, 0\.1\]"),
])
def test_an_implausible_lr_or_batch_law_is_refused_on_load(quantity, law, message):
    d = minimal(**{quantity: {"form": "power_law", **law}})
    with pytest.raises(AdvisorError, match=message) as exc:
        LawSet.from_dict(d)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("change, message", [
    ({"beta": 12.6}, r"exponent beta = 12\.6 is outside \[0\.02, 1\]"),   # the CPU sweep's
    ({"beta": 0.0}, r"exponent beta = 0 is outside"),     # a loss that does not fall with D
    ({"alpha": -0.3}, r"exponent alpha = -0\.3 is outside"),
    ({"A": 0.0}, r"coefficient A = 0 is not a positive number"),
])
def test_an_implausible_loss_law_is_refused_on_load(change, message):
    d = minimal(loss={**CHINCHILLA_LOSS, **change},
                learning_rate=minimal()["laws"]["learning_rate"])
    with pytest.raises(AdvisorError, match=message) as exc:
        LawSet.from_dict(d)
    assert "\n" not in str(exc.value) and "the loss law's" in str(exc.value)
    LawSet.from_dict(minimal(loss=CHINCHILLA_LOSS))              # the published one loads
