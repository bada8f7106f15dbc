"""The weight-decay width rule end to end (issue 15): ``advisor fit`` never pools runs of
different rules into one law set, writes the rule its runs used as ``mup.wd_rule``, and
``advisor recommend --laws`` takes it as the muP view's default, warning when told another.

The stores are real results stores (advisor.runs.store) holding recorded muP runs whose loss is a
bowl around a planted optimum: what ``advisor calibrate`` writes, without the training."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from advisor.cli import main
from advisor.errors import AdvisorError
from advisor.laws.lawset import load_lawset, shipped_names
from advisor.recommendation.core import recommend
from advisor.runs.table import load_runs, table_from_rows

REPO = Path(__file__).resolve().parents[1]
HIDDEN = "hidden matrices (attention q/k/v/o, MLP)"


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory, record_mup_sweep):
    """One store, two rules: the sqrt runs have another seed, so nothing but the rule column
    tells them apart from the mup runs (no duplicate check would catch the pooling)."""
    from advisor.runs.store import ResultsStore

    path = tmp_path_factory.mktemp("wd") / "sweep"
    store = ResultsStore.create(path)
    rng = np.random.default_rng(3)
    # 2 widths x 2 budgets x 5 LRs x 3 batches per rule, weight decay 0.1
    counts = {rule: record_mup_sweep(store, rng, widths=(32, 64), lr_span=4.0, n_lrs=5,
                                     seed=seed, weight_decay=0.1, wd_rule=rule)
              for rule, seed in (("mup", 0), ("sqrt", 1))}
    store.close()
    return path, counts


@pytest.fixture(scope="module")
def sqrt_laws(mixed_store):
    path, _ = mixed_store
    out = path.parent / "sqrt.yaml"
    with pytest.raises(SystemExit) as exc:
        main(["fit", str(path), "--out", str(out), "--method", "best-point", "--bootstrap", "0",
              "--select", "wd_rule=sqrt"])
    assert exc.value.code == 0
    return out


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_runs_under_two_rules_are_refused_with_one_line_naming_them(mixed_store, capsys,
                                                                     tmp_path):
    path, counts = mixed_store
    for extra in ([], ["--cell-by", "wd_rule"]):     # a cell split would still pool the laws
        out = tmp_path / "pooled.yaml"
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            main(["fit", str(path), "--out", str(out), "--method", "best-point",
                  "--bootstrap", "0", *extra])
        assert exc.value.code == 2
        line = _one_error_line(capsys.readouterr().err)
        assert f"mup: {counts['mup']} runs" in line and f"sqrt: {counts['sqrt']} runs" in line
        assert "--select wd_rule=mup" in line
        assert not out.exists()


def test_the_fitted_law_set_states_the_rule_its_runs_used(mixed_store, sqrt_laws, capsys):
    d = yaml.safe_load(sqrt_laws.read_text())
    assert d["mup"] == {"base_width": 32, "wd_rule": "sqrt"}
    assert d["conventions"]["learning_rate"] == "mup_base"
    assert "--select wd_rule=sqrt" in d["provenance"]["command"]
    assert d["provenance"]["runs"] == mixed_store[1]["sqrt"]
    assert load_lawset(str(sqrt_laws)).wd_rule == "sqrt"
    # the other rule's runs give a law set that states theirs
    out = sqrt_laws.parent / "mup.yaml"
    with pytest.raises(SystemExit) as exc:
        main(["fit", str(mixed_store[0]), "--out", str(out), "--method", "best-point",
              "--bootstrap", "0", "--select", "wd_rule=mup"])
    assert exc.value.code == 0
    assert "weight-decay width rule mup" in capsys.readouterr().out
    assert load_lawset(str(out)).wd_rule == "mup"


def test_recommend_takes_the_law_sets_rule_by_default(sqrt_laws):
    rec = recommend(params=1e7, tokens=2e8, laws_file=str(sqrt_laws))
    assert rec.mup.base_width == 32 and rec.mup.wd_rule.name == "sqrt"
    assert rec.mup.wd_rule.origin.startswith("law set ") and "mup.wd_rule" in rec.mup.wd_rule.origin
    hidden = next(g for g in rec.mup.groups if g.group == HIDDEN)
    assert hidden.weight_decay_multiplier == pytest.approx(math.sqrt(rec.mup.width_multiplier),
                                                           rel=1e-3)
    assert not [w for w in rec.warnings if "--wd-rule" in w]
    # the same rule given explicitly: no warning, and the origin says it agrees
    same = recommend(params=1e7, tokens=2e8, laws_file=str(sqrt_laws), wd_rule="sqrt")
    assert same.mup.groups == rec.mup.groups and same.mup.wd_rule.name == "sqrt"
    assert "--wd-rule, the rule law set" in same.mup.wd_rule.origin
    assert not [w for w in same.warnings if "--wd-rule" in w]


def test_another_rule_is_allowed_but_warned_about_and_recorded(sqrt_laws):
    r = subprocess.run([sys.executable, "-m", "advisor.cli", "recommend", "--laws",
                        str(sqrt_laws), "--params", "1e7", "--tokens", "2e8", "--wd-rule", "mup",
                        "--format", "json"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    rule = rec["mup"]["wd_rule"]
    assert rule["name"] == "mup" and rule["exponent"] == 1.0
    assert "against" in rule["origin"] and "sqrt" in rule["origin"]
    warned = [w for w in rec["warnings"] if w.startswith("--wd-rule mup")]
    assert len(warned) == 1 and "under the sqrt weight-decay width rule" in warned[0]
    # a trainer format prints the warning on stderr
    t = subprocess.run([sys.executable, "-m", "advisor.cli", "recommend", "--laws",
                        str(sqrt_laws), "--params", "1e7", "--tokens", "2e8", "--wd-rule", "none",
                        "--format", "torchtitan-0.2"], capture_output=True, text=True, cwd=REPO)
    assert t.returncode == 0, t.stderr
    assert "warning: --wd-rule none: law set" in t.stderr


def test_shipped_sets_state_no_rule_and_keep_the_mup_default():
    for name in shipped_names():
        assert load_lawset(name).wd_rule is None, name
    rec = recommend(params=3e8, tokens=3e9)
    assert rec.mup.wd_rule.name == "mup" and rec.mup.wd_rule.origin.startswith("default (mup)")
    given = recommend(params=3e8, tokens=3e9, wd_rule="sqrt")
    assert given.mup.wd_rule.name == "sqrt" and "states no rule" in given.mup.wd_rule.origin
    assert not [w for w in rec.warnings + given.warnings if "--wd-rule" in w]


def test_a_law_set_with_an_unknown_rule_is_one_clear_error(sqrt_laws, tmp_path):
    d = yaml.safe_load(sqrt_laws.read_text())
    d["mup"]["wd_rule"] = "linear"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(d))
    r = subprocess.run([sys.executable, "-m", "advisor.cli", "recommend", "--laws", str(bad),
                        "--params", "1e7", "--tokens", "2e8"], capture_output=True, text=True,
                       cwd=REPO)
    assert r.returncode == 2 and r.stdout == ""
    line = _one_error_line(r.stderr)
    assert "mup.wd_rule" in line and "'linear'" in line


def _rows(rules):
    return [{"N": 1e6 * (1 + i % 2), "D": 1e9, "lr": 1e-3 * (1 + i // 2), "bs_tokens": 2 ** 20,
             "loss": 3.0 + 0.01 * i, "wd_rule": rule} for i, rule in enumerate(rules)]


def test_a_csv_column_is_read_the_same_way():
    assert table_from_rows(_rows(["sqrt"] * 6)).wd_rule == "sqrt"
    assert table_from_rows(_rows([""] * 6)).wd_rule is None       # not stated
    assert table_from_rows([{k: v for k, v in r.items() if k != "wd_rule"}
                            for r in _rows([""] * 6)]).wd_rule is None
    assert table_from_rows(_rows(["sqrt"] * 6)).take([0, 1]).wd_rule == "sqrt"
    with pytest.raises(AdvisorError, match=r"wd_rule.*none: 3 runs, sqrt: 3 runs.*--select"):
        table_from_rows(_rows(["sqrt", "none"] * 3))
    with pytest.raises(AdvisorError, match="wd_rule must be one of mup, sqrt, none"):
        table_from_rows(_rows(["linear"] * 6))


def test_load_runs_reads_the_rule_from_the_store(mixed_store):
    table = load_runs(mixed_store[0], select=("wd_rule=mup",))
    assert (table.lr_convention, table.mup_base_width, table.wd_rule) == ("mup_base", 32, "mup")
