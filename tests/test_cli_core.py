"""The command line: bad input gives one line and exit 2; good input gives a usable config."""
import json
import subprocess
import sys

import pytest
import yaml


def advisor(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "advisor.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_recommend_7b_json_has_the_documented_keys():
    r = advisor("recommend", "--params", "7e9", "--format", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    for key in ("learning_rate", "weight_decay", "batch_size_tokens", "batch_size_sequences",
                "warmup_steps", "total_steps", "schedule", "model", "predicted_loss", "law",
                "warnings"):
        assert key in d


@pytest.mark.parametrize("spelling", ["7e9", "7B", "7000000000", "7b"])
def test_params_spellings_agree(spelling):
    r = advisor("recommend", "--params", spelling, "--format", "json")
    assert json.loads(r.stdout)["target"]["params_total"] == 7e9


@pytest.mark.parametrize("args", [
    ["recommend", "--params", "-5"],
    ["recommend", "--params", "0"],
    ["recommend", "--params", "abc"],
    ["recommend", "--params", "nan"],
    ["recommend", "--params", "inf"],
    ["recommend", "--params", "1e40"],
    ["recommend", "--params", "7e9", "--law", "no-such-law"],
    ["recommend", "--params", "7e9", "--tokens", "-1"],
    ["recommend", "--params", "7e9", "--seq-len", "0"],
    ["recommend", "--params", "7e9", "--laws", "/nonexistent/laws.yaml"],
    ["compare", "--params", "-1"],
    ["laws", "--show", "nope"],
    # usage errors (click's): an unknown choice, option, a missing required option
    ["recommend", "--params", "7e9", "--wd-rule", "linear"],
    ["recommend", "--params", "7e9", "--format", "bogus"],
    ["recommend", "--params", "7e9", "--no-such-option"],
    ["recommend"],
    ["no-such-command"],
])
def test_bad_input_gives_one_line_and_exit_2(args):
    r = advisor(*args)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("content", [
    "!!python/object/apply:os.system ['touch /tmp/hp_advisor_pwned']",
    "schema: hp-advisor/lawset/v1\nname: x\nsource: {}\nconventions: {params: total}\n"
    "laws: {learning_rate: {form: exec, code: 'import os'}}",
    "schema: hp-advisor/lawset/v1\nname: x\nsource: {}\nconventions: {params: total}\n"
    "laws: {learning_rate: {form: power_law, exponents: {N: -0.5}}}",
    "{{{{",
])
def test_hostile_or_broken_law_files_are_refused(tmp_path, content):
    p = tmp_path / "laws.yaml"
    p.write_text(content)
    r = advisor("recommend", "--params", "7e9", "--laws", str(p))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "pwned").exists()


def test_output_file_is_written(tmp_path):
    out = tmp_path / "cfg.yaml"
    r = advisor("recommend", "--params", "1B", "--output", str(out))
    assert r.returncode == 0
    assert yaml.safe_load(out.read_text())["model"]["params_total"] == pytest.approx(1e9, rel=0.05)


def test_laws_lists_every_shipped_set_with_its_source():
    r = advisor("laws", "--format", "json")
    rows = json.loads(r.stdout)
    assert {"step-law", "power-lines", "minicpm"} <= {x["name"] for x in rows}
    assert all(x["citation"] for x in rows)


def test_compare_shows_each_law_side_by_side():
    r = advisor("compare", "--params", "7e9", "--format", "json")
    rows = {x["law"]: x for x in json.loads(r.stdout)["laws"]}
    assert rows["step-law"]["learning_rate"] and rows["deepseek-llm"]["batch_size_tokens"]
    assert rows["power-lines"]["weight_decay"]
    table = advisor("compare", "--params", "7e9").stdout
    assert "step-law" in table and "porian" in table
    # a law that gives no LR prints "-" in its column, never "None" or "nan"
    chin = next(line for line in table.splitlines() if line.startswith("chinchilla "))
    assert chin.split()[2] == "-" and "None" not in table and "nan" not in table


def test_evaluate_prints_one_row_per_cell_and_the_summary(external_data):
    r = advisor("evaluate", "--grid", str(external_data / "steplaw_dense_lr_bs_loss.csv"),
                "--law", "step-law", "--no-extrapolation")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:3] == ["N", "D", "pred"])
    rows = [line.split() for line in lines[head + 1:head + 18]]
    assert len(rows) == 17 and all(len(x) == 9 for x in rows)
    assert "gap over 17 cells: mean 0.096%" in r.stdout          # Step Law's in-sample figure


def test_recommend_does_not_import_torch():
    code = ("import sys; from advisor.cli import main\n"
            "sys.argv = ['advisor', 'recommend', '--params', '7e9', '--format', 'json']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "assert 'matplotlib' not in sys.modules\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
