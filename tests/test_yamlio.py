"""One safe YAML loader for every file users write: law sets, families, plans, schedule laws."""
import pytest

from advisor.errors import AdvisorError
from advisor.common.outputs import atomic_write_text
from advisor.common.yamlio import parse_yaml_text, read_yaml_file


def test_exponent_only_floats_are_numbers_not_strings():
    # YAML 1.1 (PyYAML's default) would read these as strings
    assert parse_yaml_text("lr: [1e-3, 3E-4, 7.0e7, 1e9]", "x") == {"lr": [1e-3, 3e-4, 7e7, 1e9]}


def test_a_plan_written_with_1e_minus_3_is_read_as_a_number(tmp_path):
    pytest.importorskip("torch")
    from advisor.specs.plan import load_plan
    plan = tmp_path / "p.yaml"
    plan.write_text("name: p\nsettings: {family: proxy-llama, data: stdlib, depth: 2, head_dim: 16,"
                    " base_width: 32, seq_len: 64, batch_size: 8, tokens: 20480}\n"
                    "grid: {width: [32], lr: [1e-3, 2e-3]}\n")
    lrs = sorted(s.lr for s in load_plan(plan).specs)
    assert lrs == [1e-3, 2e-3]


def test_object_constructing_tags_are_refused(tmp_path):
    with pytest.raises(AdvisorError, match="not valid YAML"):
        parse_yaml_text("!!python/object/apply:os.system ['true']", "plan")


def test_missing_and_oversized_files_give_one_line(tmp_path):
    with pytest.raises(AdvisorError, match="not found"):
        read_yaml_file(tmp_path / "nope.yaml", "plan")
    big = tmp_path / "big.yaml"
    big.write_text("a: 1\n" * 300_000)
    with pytest.raises(AdvisorError, match="larger than 1 MiB"):
        read_yaml_file(big, "plan")


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_text(tmp_path / "out.yaml", "a: 1\n")
    assert [p.name for p in tmp_path.iterdir()] == ["out.yaml"]


def test_non_finite_numbers_become_null_in_every_output():
    import json

    import numpy as np

    from advisor.common.yamlio import json_text, plain
    from advisor.recommendation.blocks import Value

    raw = {"a": float("inf"), "b": [float("nan"), 1.5], "c": np.float64("-inf"), 4: (np.nan,)}
    assert plain(raw) == {"a": None, "b": [None, 1.5], "c": None, "4": [None]}
    # a typed block (what `advisor recommend` prints) goes through the same conversion
    assert plain({"loss": Value(float("nan"), "nats", "law")}) == {
        "loss": {"value": None, "unit": "nats", "source": "law"}}
    assert json.loads(json_text(raw)) == {"a": None, "b": [None, 1.5], "c": None, "4": [None]}
