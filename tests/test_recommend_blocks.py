"""recommend = resolve_inputs (I/O) + compute (pure) of typed blocks; the exporter registry; the
weight-decay width rule of the muP view (issue 15)."""
import builtins
import dataclasses
import io
import json
import pathlib
import subprocess
import sys
import tomllib

import pytest

from advisor import recommend
from advisor.errors import AdvisorError
from advisor.export import FORMATS, NAMES, REGISTRY, Exporter, export
from advisor.recommendation.mup_view import mup_view
from advisor.recommendation.blocks import MupView, OptimizerBlock, ScheduleBlock
from advisor.recommendation.core import compute, resolve_inputs

HIDDEN = "hidden matrices (attention q/k/v/o, MLP)"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "advisor.cli", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def rec():
    return recommend(params=3e8, tokens=3e9, seq_len=2048)


def _groups(view):
    return {g.group: g for g in view.groups}


# --- the weight-decay width rule, as specifications --------------------------------------

def test_at_4x_the_base_width_sqrt_gives_2x_the_base_weight_decay():
    # base LR = 4e-3 and base weight decay = 0.025 give the target's hidden matrices
    # lr 1e-3 and lambda 0.1 under the mup rule (the view's stated basis)
    views = {r: mup_view(1024, 128, 256, lr=1e-3, weight_decay=0.1, wd_rule=r)
             for r in ("mup", "sqrt", "none")}
    base_wd, base_lr = 0.1 / 4, 1e-3 * 4
    h = {r: _groups(v)[HIDDEN] for r, v in views.items()}
    assert h["sqrt"].weight_decay_multiplier == 2.0
    assert h["sqrt"].torch_weight_decay == pytest.approx(2 * base_wd)
    assert h["mup"].torch_weight_decay == pytest.approx(4 * base_wd)    # = lambda, MuAdamW
    assert h["none"].torch_weight_decay == pytest.approx(base_wd)
    # decay per step lr_group * wd_group: constant under mup, x 1/sqrt(m), x 1/m
    assert h["mup"].decay_per_step == pytest.approx(base_lr * base_wd)
    assert h["sqrt"].decay_per_step == pytest.approx(base_lr * base_wd / 2)
    assert h["none"].decay_per_step == pytest.approx(base_lr * base_wd / 4)
    for r, v in views.items():        # the rule touches only the hidden matrices
        g = _groups(v)
        assert g["embedding"].torch_weight_decay == pytest.approx(base_wd)
        assert g["readout (unembedding)"].weight_decay_multiplier == 1.0
        assert g["norm gains, biases"].torch_weight_decay == 0.0
        assert g[HIDDEN].lr_multiplier == 0.25 and v.wd_rule.name == r


def test_the_rule_changes_the_muP_view_only_and_mup_is_the_default(rec):
    sq = recommend(params=3e8, tokens=3e9, seq_len=2048, wd_rule="sqrt")
    assert rec.mup.wd_rule.name == "mup" and sq.mup.wd_rule.name == "sqrt"
    assert sq.weight_decay == rec.weight_decay and sq.learning_rate == rec.learning_rate
    m = rec.mup.width_multiplier
    assert _groups(rec.mup)[HIDDEN].torch_weight_decay == rec.weight_decay.value
    assert _groups(sq.mup)[HIDDEN].weight_decay_multiplier == pytest.approx(m ** 0.5, rel=1e-3)
    with pytest.raises(AdvisorError, match="weight-decay width rule"):
        recommend(params=3e8, wd_rule="linear")


def test_cli_records_the_rule_in_json_and_in_the_trainer_files():
    r = cli("recommend", "--params", "3e8", "--wd-rule", "sqrt", "--format", "json")
    assert r.returncode == 0, r.stderr
    mup = json.loads(r.stdout)["mup"]
    assert mup["wd_rule"]["name"] == "sqrt" and mup["wd_rule"]["exponent"] == 0.5
    assert "2510.15262" in mup["wd_rule"]["source"]
    t = cli("recommend", "--params", "3e8", "--wd-rule", "none", "--format", "torchtitan-0.2")
    assert t.returncode == 0, t.stderr
    assert "# weight-decay width rule none" in t.stdout
    assert "note: weight-decay width rule none" in t.stderr
    assert tomllib.loads(t.stdout)["optimizer"]["name"] == "AdamW"
    bad = cli("recommend", "--params", "3e8", "--wd-rule", "linear")
    assert bad.returncode == 2 and bad.stdout == ""


# --- typed blocks ------------------------------------------------------------------------

def test_blocks_are_typed_frozen_and_read_as_their_dict_form(rec):
    assert isinstance(rec.optimizer, OptimizerBlock) and isinstance(rec.mup, MupView)
    assert isinstance(rec.schedule, ScheduleBlock) and rec.schedule.fitted is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.optimizer.beta1 = 0.8
    d = rec.to_dict()
    assert rec.mup["groups"] == d["mup"]["groups"]          # scripts written for the dicts
    assert rec.model.d_model == d["model"]["d_model"] == rec.model["d_model"]
    assert list(d["schedule"]) == ["family", "spec", "warmup_steps", "decay_start_step",
                                   "cooldown_fraction", "cooldown_shape", "final_lr",
                                   "source", "alternative", "law_schedule"]
    assert list(d["optimizer"]) == ["name", "beta1", "beta2", "eps", "grad_clip_norm",
                                    "source"]


def test_shipped_law_sets_are_read_once_per_recommendation(monkeypatch):
    from advisor.laws.lawset import LawSet, shipped_names
    calls = []
    real = LawSet.from_dict.__func__

    def counting(cls, d, path=None):
        calls.append(d["name"])
        return real(cls, d, path)
    monkeypatch.setattr(LawSet, "from_dict", classmethod(counting))
    recommend(params=1e9)
    assert sorted(calls) == sorted(shipped_names())      # law_table reloads none of them


def test_compute_reads_no_file(monkeypatch):
    inp = resolve_inputs(params=1e9, tokens=2e10)
    first = compute(inp).to_dict()

    def refuse(*a, **k):
        raise AssertionError("compute read a file")
    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(io, "open", refuse)
    monkeypatch.setattr(pathlib.Path, "read_text", refuse)
    monkeypatch.setattr(pathlib.Path, "open", refuse)
    assert compute(inp).to_dict() == first


# --- the exporter registry ---------------------------------------------------------------

def test_format_choices_are_the_registry(rec):
    assert NAMES == tuple(REGISTRY) and set(FORMATS) < set(NAMES)
    assert all(e.suffix.startswith(".") and e.doc for e in REGISTRY.values())
    r = cli("recommend", "--params", "3e8", "--format", "no-such-format")
    assert r.returncode == 2
    assert ", ".join(f"'{n}'" for n in NAMES) in r.stderr
    with pytest.raises(AdvisorError, match="unknown format"):
        export(rec, "no-such-format")
    with pytest.raises(AdvisorError, match="needs --optimizer muon"):
        export(rec, "pytorch")


def test_a_new_trainer_is_one_registry_entry(rec, monkeypatch):
    new = Exporter(name="steps-only", write=lambda r: f"steps = {r.total_steps.value}\n",
                   suffix=".txt", doc="total steps")
    monkeypatch.setitem(REGISTRY, new.name, new)
    assert export(rec, "steps-only") == f"steps = {rec.total_steps.value}\n"


def test_both_schedule_branches_are_one_block_type(rec, tmp_path, external_data):
    law = tmp_path / "schedule-law.yaml"
    subprocess.run([sys.executable, "-m", "advisor.cli", "schedule", "fit",
                    str(external_data / "multipower_loss_curves" / "25M"), "--law", "multipower",
                    "--out", str(law)], check=True, capture_output=True)
    fitted = recommend(params=3e8, tokens=3e9, seq_len=2048, schedule_law=str(law)).schedule
    assert type(fitted) is type(rec.schedule) is ScheduleBlock
    assert fitted.fitted is not None and fitted.fitted.gain_over_cosine_nats >= 0
    assert fitted.alternative.family == rec.schedule.alternative.family == "cosine"
    assert fitted.warmup_steps == rec.schedule.warmup_steps    # warmup from the rule, not the law
    d = fitted.to_dict()
    assert list(d)[:7] == list(rec.schedule.to_dict())[:7] and "predicted_final_loss" in d
