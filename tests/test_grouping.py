"""One run-grouping function (advisor.specs.grouping.group_key), with the free settings named.

The bugs it fixes (issue 22), with ``advisor results``' own functions: Muon runs under the two
width conventions were averaged into one LR curve; ``best_by_width`` labelled AdamW and Muon
both ``mup``, so one overwrote the other; ``optimum_shift`` merged the arms and reported a
shift of several octaves where each arm has none.
"""
import json
import math

import pytest

from advisor.runs.store import ResultsStore
from advisor.runs.summary import best_by_width, best_lr_table, lr_curves, optimum_shift
from advisor.schedule.curves import curve_group_key
from advisor.specs.grouping import group_key, stack_key
from advisor.specs.runspec import RunSpec

LRS = [2.0 ** k for k in range(-12, -3)]


def _record(store, best_log2: float, width: int, offset: float = 0.0, **fields):
    """A bowl in log2 LR with its minimum at 2^best_log2 and depth ``offset``."""
    for lr in LRS:
        spec = RunSpec(width=width, depth=2, lr=lr, model={"head_dim": 16}, **fields)
        loss = 3.0 + offset + 0.05 * (math.log2(lr) - best_log2) ** 2
        store.record(spec.run_id, spec.settings(), "finished", final_train_loss=loss,
                     final_val_loss=loss)


@pytest.fixture
def two_arm_store(tmp_path):
    """AdamW (muP) optimal at 2^-10 and Muon (match_rms_adamw) at 2^-6 at every width; Muon
    (spectral) at 2^-5 with a worse loss."""
    with ResultsStore.create(tmp_path) as st:
        for w in (32, 64, 128):
            _record(st, -10, w)
            _record(st, -6, w, offset=-0.1, optimizer="muon", muon_convention="match_rms_adamw")
            _record(st, -5, w, offset=0.2, optimizer="muon", muon_convention="spectral")
        yield st


def test_muon_conventions_are_never_averaged_into_one_curve(two_arm_store):
    curves = lr_curves(two_arm_store.runs())
    assert len(curves) == 3
    convs = sorted(dict(k)["muon_convention"] for k in curves if dict(k)["optimizer"] == "muon")
    assert convs == ["match_rms_adamw", "spectral"]
    for key, widths in curves.items():
        for pts in widths.values():
            assert all(n == 1 for _, _, n, _ in pts)          # one run per LR: nothing merged


def test_best_by_width_keeps_adamw_and_both_muon_arms(two_arm_store):
    arms = best_by_width(two_arm_store.runs())[64]
    assert len(arms) == 3, arms
    muon = {a: v for a, v in arms.items() if "optimizer=muon" in a}
    assert len(muon) == 2 and any("spectral" in a for a in muon)
    adamw = [v for a, v in arms.items() if "optimizer=muadamw" in a]
    assert adamw == [pytest.approx(3.0)]


def test_each_arm_has_its_own_optimum_shift(two_arm_store):
    shifts = optimum_shift(best_lr_table(two_arm_store.runs()))
    assert len(shifts) == 3
    assert all(s.log2_shift == 0 for s in shifts), shifts
    assert all((s.smallest_width, s.largest_width) == (32, 128) for s in shifts)


def test_advisor_results_reports_per_arm(two_arm_store, tmp_path):
    from click.testing import CliRunner

    from advisor.cli.app import cli

    r = CliRunner().invoke(cli, ["results", str(tmp_path), "--format", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert [s["log2_shift"] for s in d["optimum_shift"]] == [0, 0, 0]
    assert len(d["best_by_width"]["128"]) == 3
    table = CliRunner().invoke(cli, ["results", str(tmp_path)]).output
    assert table.count("best LR moves +0 factor(s) of 2") == 3


def test_group_key_fills_defaults_and_names_its_free_settings():
    old = {k: v for k, v in RunSpec().settings().items() if k != "muon_convention"}
    assert group_key(old) == group_key(RunSpec().settings())      # stored before it existed
    a = RunSpec(lr=1e-3, seed=1).settings()
    b = RunSpec(lr=2e-3, seed=2).settings()
    assert group_key(a, ("lr", "seed")) == group_key(b, ("lr", "seed")) != group_key(a)
    # stacking: free LR and weight decay; Muon never stacks with AdamW
    assert stack_key(RunSpec(lr=1e-3, weight_decay=0.1)) == stack_key(RunSpec(lr=2e-3))
    assert stack_key(RunSpec(optimizer="muon")) != stack_key(RunSpec())
    assert stack_key(RunSpec(optimizer="adamw")) == stack_key(RunSpec())
    # a schedule law's curves: schedule, seed and horizon free; execution flags free too
    c = RunSpec(schedule="cosine:final=0.1", seed=3, tokens=2 * RunSpec().tokens,
                stack=True).settings()
    assert curve_group_key(c) == curve_group_key(RunSpec().settings())
    assert curve_group_key(RunSpec(optimizer="muon").settings()) != \
        curve_group_key(RunSpec(optimizer="muon", muon_convention="match_rms_adamw").settings())
