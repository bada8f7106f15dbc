"""Values that must never come out, and what the recommendation says about its own trust."""
import json
import subprocess
import sys

import pytest
import yaml

from advisor import recommend
from advisor.errors import AdvisorError
from advisor.lawforms import NotApplicable
from advisor.lawset import load_lawset
from advisor.plausibility import RANGES, check


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
    assert "uses step-law" in warns[0]
    assert "kaplan (not applicable" in warns[0] or params == "13e9"
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
    assert r.stderr.startswith("error: learning_rate") and "Traceback" not in r.stderr
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
