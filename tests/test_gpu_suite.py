"""The GPU suite (bench/gpu_suite, issue 18): its time arithmetic, its resume and budget
logic, its bundle, and the whole suite at toy size on the CPU through the exact device
command (bench/gpu_suite_device.sh: carried wheels into a --target site on PYTHONPATH,
the suite, the <= 8 files it leaves in $OUT)."""
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))          # bench/ is not an installed package

from bench.gpu_suite import budget  # noqa: E402
from bench.gpu_suite.budget import Deadline, Estimate, Unit, fit_step_model, fits  # noqa: E402
from bench.gpu_suite.report import Figure, restore_bundle, write_bundle  # noqa: E402
from bench.gpu_suite.stages.lr_sweep import judge  # noqa: E402
from bench.gpu_suite.stages.tests import parse_junit  # noqa: E402


# ---------------------------------------------------------------- time arithmetic

def test_step_model_recovers_floor_and_rate_from_two_points():
    floor, rate = 0.004, 3e11
    m = fit_step_model(1e9, floor + 1e9 / rate, 5e10, floor + 5e10 / rate)
    assert m.floor_s == pytest.approx(floor) and m.rate_flops == pytest.approx(rate)
    assert m.step_s(2e11) == pytest.approx(floor + 2e11 / rate)


def test_step_model_without_growth_overestimates_rather_than_under():
    m = fit_step_model(1e9, 0.010, 4e9, 0.009)      # noise: the larger step was faster
    assert m.step_s(4e9) >= 0.009 and m.rate_flops > 0
    with pytest.raises(ValueError):
        fit_step_model(1e9, float("nan"), 4e9, 0.1)


def test_fits_whole_part_or_none():
    est = Estimate(10.0, (Unit("a", 20.0), Unit("b", 100.0)), divisible=True)
    assert est.seconds == 130.0 and est.min_seconds == 30.0
    assert fits(est, 200.0) == "all"
    assert fits(est, 50.0) == "part"
    assert fits(est, 20.0) == "none"
    assert fits(Estimate(10.0, (Unit("a", 100.0),)), 50.0) == "none"   # not divisible


def test_correction_is_the_clamped_median_of_past_ratios():
    assert budget.correction([]) == 1.0
    assert budget.correction([1.5, 3.0, 2.0]) == 2.0
    assert budget.correction([10.0, 20.0]) == 4.0 and budget.correction([0.1]) == 0.5
    assert budget.correction([float("nan"), 2.0]) == 2.0
    est = budget.scaled(Estimate(1.0, (Unit("a", 2.0),), divisible=True), 3.0)
    assert est.seconds == 9.0 and est.divisible


def test_deadline_counts_from_start_minus_reserve():
    t = [100.0]
    d = Deadline(60.0, reserve_s=10.0, clock=lambda: t[0])
    t[0] = 120.0
    assert d.elapsed() == 20.0 and d.remaining() == 30.0


def test_compile_pays_only_when_the_steps_repay_it():
    assert budget.compile_pays(30.0, 0.010, 0.004, 10_000)
    assert not budget.compile_pays(30.0, 0.010, 0.004, 1_000)


# ---------------------------------------------------------------- judgements

def test_lr_sweep_judgement_spreads_and_wins():
    inf = float("inf")
    from advisor.specs.grouping import SWEEP_FREE, group_key
    from advisor.specs.runspec import RunSpec
    mup, sp = (group_key(RunSpec(parameterization=p).settings(), SWEEP_FREE)
               for p in ("mup", "sp"))
    gpt2 = group_key(RunSpec(parameterization="sp", model={"init_std_hidden": 0.02}).settings(),
                     SWEEP_FREE)
    curves = {mup: {128: [(2**-9, 1.5, 1, 0), (2**-8, 1.4, 1, 0), (2**-7, inf, 1, 1)],
                    1024: [(2**-9, 1.3, 1, 0), (2**-8, 1.2, 1, 0)]},
              sp: {128: [(2**-9, 1.5, 1, 0), (2**-8, 1.4, 1, 0)],
                   1024: [(2**-11, 1.25, 1, 0), (2**-8, 1.5, 1, 0)]},
              gpt2: {128: [(2**-8, 1.45, 1, 0)], 1024: [(2**-8, 1.19, 1, 0)]}}
    j = judge(curves, {mup: "mup", sp: "sp", gpt2: "sp (gpt2)"})
    assert j["arms"]["mup"]["log2_spread"] == 0
    assert j["arms"]["sp"]["log2_spread"] == pytest.approx(3)
    wins = {w["width"]: w["mup_no_worse"] for w in j["wins"]}
    assert wins == {128: True, 1024: False}          # the GPT-2 arm is better at 1024


def test_junit_outcomes_are_read(tmp_path):
    xml = tmp_path / "j.xml"
    xml.write_text('<testsuites><testsuite><testcase classname="t" name="a" time="1.5"/>'
                   '<testcase classname="t" name="b"><failure message="boom"/></testcase>'
                   '<testcase classname="t" name="c"><skipped message="needs CUDA"/></testcase>'
                   '</testsuite></testsuites>')
    got = {c["name"]: c["outcome"] for c in parse_junit(xml)}
    assert got == {"t::a": "passed", "t::b": "failed", "t::c": "skipped"}


def test_the_gpu_tests_stage_finds_every_gpu_marked_file():
    from bench.gpu_suite.stages.tests import gpu_test_files

    files = gpu_test_files(REPO / "tests")
    assert {"tests/test_calib_train.py", "tests/test_spectral_svd.py",
            "tests/test_stacked.py"} <= set(files)
    assert "tests/test_gpu_suite.py" not in files and "tests/test_lawset.py" not in files


def test_figure_shows_units_and_missing_values():
    assert Figure("s", "k", "x", "x", fmt="{:.2f}", value=8.123).shown() == "8.12 x"
    assert Figure("s", "k", "x", value=None).shown() == "-"
    assert Figure("s", "k", "gap", value=float("inf")).shown() == "inf"


def test_the_stages_run_in_issue_18s_order_then_the_user_model_loop_and_stability():
    from bench.gpu_suite.stages import all_stages

    stages = all_stages()
    assert [(s.order, s.name) for s in stages] == list(enumerate(
        ["gpu-tests", "lr-sweep", "throughput", "spectral", "calibration", "transfer",
         "schedule", "transfer-sweeps", "user-model", "stability"], start=1))
    r = subprocess.run([sys.executable, "-m", "bench.gpu_suite", "--list"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.splitlines()[-1].startswith("10. stability:")


def test_the_catalog_promises_one_knee_figure_per_weight_decay_rule():
    from advisor.rules.optim_rules import WD_WIDTH_RULES
    from bench.gpu_suite.stages import all_stages

    goals = {s.name: [g.key for g in s.goals()] for s in all_stages()}
    assert [k for k in goals["transfer-sweeps"] if k.startswith("knee_")] == \
        [f"knee_{r}" for r in WD_WIDTH_RULES]
    assert all(goals.values()), "every stage promises at least one figure"


@pytest.mark.parametrize("smoke", [False, True])
def test_stage_8_copies_only_runs_that_stage_2_really_trains(tmp_path, smoke):
    """gpu-muon-sweep's muP AdamW arm (24 runs) and gpu-wd-rules' weight-decay-0 runs (4) are
    gpu-lr-sweep runs; the toy plans share the same way, so the smoke run covers the copy."""
    from bench.gpu_suite.sizes import sizes
    from bench.gpu_suite.stages.sweeps import load_suite_plan

    sz = sizes(smoke)
    lr_ids = {s.run_id for s in load_suite_plan(sz["lr_sweep"]["plan"], tmp_path).specs}
    want = {"muon": (8, 14) if smoke else (24, 72), "depth": (0, 12) if smoke else (0, 84),
            "wd_rules": (2, 18) if smoke else (4, 74)}
    for key, cfg in sz["transfer_sweeps"].items():
        (tmp_path / key).mkdir()
        specs = load_suite_plan(cfg["plan"], tmp_path / key).specs
        shared = [s for s in specs if s.run_id in lr_ids]
        assert (len(shared), len(specs)) == want[key], key
        assert bool(shared) == ("lr-sweep" in cfg.get("share", ()))
        if key == "muon":
            assert {s.optimizer for s in shared} == {"muadamw"}
        if key == "wd_rules":
            assert {s.weight_decay for s in shared} == {0.0}


def test_muon_and_adamw_runs_of_one_shape_train_in_separate_stacks(tmp_path):
    """calibration.train.stacked_optim cannot stack Muon with AdamW members: gpu-muon-sweep's
    same-width runs of the two optimizers must be separate units (they once shared one and
    every run of it failed)."""
    from calibration.sweep.executors import group_specs
    from bench.gpu_suite.stages.sweeps import load_suite_plan

    groups = group_specs(load_suite_plan("gpu-muon-sweep", tmp_path).specs)
    assert len(groups) == 8                       # 4 widths x {AdamW, Muon (both conventions)}
    assert all(len({s.optimizer for s in g}) == 1 for g in groups)


def test_newton_schulz_flops_and_muon_stacks_cost_more():
    from advisor.specs.runspec import RunSpec
    from bench.gpu_suite.stages.sweeps import newton_schulz_flops, stack_seconds

    # one block, width 2, ffn 3: 4 x (4*2*2*2 + 2*8) + 3 x (4*2*2*3 + 2*8) = 4 x 48 + 3 x 64
    assert newton_schulz_flops(2, 3, 1, 1) == 384.0
    assert newton_schulz_flops(2, 3, 2, 5) == 10 * 384.0
    probe = {"eager": {"floor_s": 0.0, "rate_flops": 1e12}}
    adam = [RunSpec(width=1024, depth=4, lr=2.0 ** -k) for k in (8, 9)]
    muon = [RunSpec(width=1024, depth=4, lr=2.0 ** -k, optimizer="muon") for k in (4, 5)]
    t_adam, t_muon = stack_seconds(adam, probe, 256), stack_seconds(muon, probe, 256)
    # at width 1024 the orthogonalisation is a large share of a 32 x 256-token step
    assert 1.3 < t_muon / t_adam < 1.7
    assert stack_seconds(adam + muon, probe, 256) == pytest.approx(t_adam + t_muon)


def test_the_assumed_full_size_estimate_leaves_out_what_stage_2_supplies(tmp_path):
    from bench.gpu_suite.assumed import assumed_estimates, main, mark_lr_sweep_done

    (alone, est_alone), = assumed_estimates(["transfer-sweeps"], tmp_path / "a")
    assert mark_lr_sweep_done(tmp_path / "b") == 96
    (_, est_after), = assumed_estimates(["transfer-sweeps"], tmp_path / "b")
    assert "muon 48 of 72 pending (24 from lr-sweep)" in est_after.detail
    assert "wd-rules 70 of 74 pending (4 from lr-sweep)" in est_after.detail
    assert 0 < est_after.seconds < est_alone.seconds < 20 * 60      # a few minutes per plan
    assert main(["spectral"]) == 2


def test_copy_shared_runs_takes_final_runs_of_the_plan_once(tmp_path):
    from advisor.specs.runspec import RunSpec
    from advisor.runs.store import ResultsStore
    from bench.gpu_suite.stages.transfer_sweeps import copy_shared_runs, shared_final_ids

    a, b, c = (RunSpec(width=64, lr=2.0 ** -k) for k in (6, 7, 8))
    curve = {"step": [0, 10], "tokens": [0, 100], "lr": [0.1, 0.1], "train_loss": [3.0, 2.0],
             "val_loss": [3.1, 2.1]}
    with ResultsStore.open_or_create(tmp_path / "src") as st:
        st.record(a.run_id, a.settings(), "finished", curve=curve, final_val_loss=2.1)
        st.record(b.run_id, b.settings(), "failed", error="boom")
        st.record(c.run_id, c.settings(), "diverged")
        other = RunSpec(width=128)
        st.record(other.run_id, other.settings(), "finished", final_val_loss=1.0)
    sources = [tmp_path / "src", tmp_path / "absent"]
    assert shared_final_ids([a, b, c], sources) == {a.run_id, c.run_id}
    assert copy_shared_runs([a, b, c], sources, tmp_path / "dst") == 2
    assert copy_shared_runs([a, b, c], sources, tmp_path / "dst") == 0       # once
    with ResultsStore.open(tmp_path / "dst") as st:
        got = {r.run_id: r for r in st.runs()}
        assert set(got) == {a.run_id, c.run_id}
        assert got[a.run_id].final_val_loss == 2.1 and got[c.run_id].status == "diverged"
        assert list(st.curve(a.run_id)["val_loss"]) == [3.1, 2.1]


def test_the_knee_figure_is_words_never_nan():
    from dataclasses import replace

    from bench.gpu_suite.stages.transfer_sweeps import knee_text
    from calibration.analyze.wd_summary import WdRuleVerdict

    nan = float("nan")
    d = WdRuleVerdict(widths=(128, 256, 1024), best_wd=(0.1,) * 3, best_loss=(3.0,) * 3,
                      shift_pow2=(0.0,) * 3, knee_log2=(0.0,) * 3,
                      knee_shift_pow2=(0.0, -0.2, -0.94), predicted_pow2=(0.0, 0.5, 1.5),
                      edge=())
    assert knee_text(d) == "-0.94 at width 1024 vs 128; predicted +1.5"
    d = replace(d, knee_shift_pow2=(0.0, -0.2, nan))
    assert knee_text(d) == "no knee in the grid (width 128 or 1024); predicted +1.5"
    one = replace(d, widths=(128,), predicted_pow2=(0.0,), knee_shift_pow2=(0.0,))
    assert knee_text(one) is None


# ---------------------------------------------------------------- bundle

def test_bundle_fits_the_device_limits_and_restores(tmp_path):
    suite = tmp_path / "suite"
    (suite / "a" / "store").mkdir(parents=True)
    (suite / "a" / "store" / "results.sqlite").write_bytes(b"db")
    (suite / "cache" / "inductor").mkdir(parents=True)
    (suite / "cache" / "inductor" / "big").write_bytes(b"x" * 1000)
    pngs = []
    for i in range(5):
        p = suite / f"s{i}" / "plot.png"
        p.parent.mkdir()
        p.write_bytes(b"png")
        pngs.append(p)
    (suite / "state.json").write_text("{}")
    dest = tmp_path / "out"
    files = write_bundle(suite, dest, "# s", {"rows": []}, pngs)
    assert len(files) <= 7 and all(f.parent == dest for f in files)
    with tarfile.open(dest / "gpu-suite.tar.gz") as t:
        names = t.getnames()
    assert "gpu-suite/a/store/results.sqlite" in names and "gpu-suite/state.json" in names
    assert not any("cache" in n for n in names)      # compile caches stay behind
    again = tmp_path / "again"
    assert restore_bundle(dest / "gpu-suite.tar.gz", again) == len(names)
    assert (again / "a" / "store" / "results.sqlite").read_bytes() == b"db"


# ---------------------------------------------------------------- runner: budget and resume

class _FakeStage:
    """A divisible stage of three 1-second units that records what it ran."""

    def __init__(self, name, order, unit_s, needs=()):
        self.name, self.order, self.title, self.needs = name, order, name, needs
        self.unit_s = unit_s

    def goals(self):
        return [Figure(self.name, "n", f"{self.name} units", goal=">= 3", fmt="{}")]

    def estimate(self, ctx):
        done = json.loads((ctx.stage_dir(self.name) / "n").read_text()) \
            if (ctx.stage_dir(self.name) / "n").exists() else 0
        return Estimate(0.0, tuple(Unit(str(i), self.unit_s) for i in range(done, 3)),
                        divisible=True)

    def run(self, ctx, est, on_unit=lambda unit: None):
        """Run the units that fit (``on_unit`` is called before each), counting them in a file."""
        from bench.gpu_suite.stages.base import Outcome

        p = ctx.stage_dir(self.name) / "n"
        n = json.loads(p.read_text()) if p.exists() else 0
        for u in est.units:
            if u.seconds * 1.25 > ctx.deadline.remaining():
                break
            on_unit(u)
            n += 1
            p.write_text(json.dumps(n))
        return Outcome("done" if n == 3 else "partial", [self.figure(n)])

    def figure(self, n):
        return Figure(self.name, "n", f"{self.name} units", goal=">= 3", fmt="{}", value=n,
                      met=n >= 3)


def _opts(out, budget_s):
    return SimpleNamespace(out=str(out), budget_s=budget_s, smoke=True, device="cpu",
                           compile="never", redo=[], bundle=None, command="test")


def test_runner_skips_what_the_budget_cannot_fit_and_resumes(tmp_path, monkeypatch, capsys):
    import bench.gpu_suite.probe as probe
    from bench.gpu_suite.runner import run_suite
    from bench.gpu_suite.state import SuiteState

    monkeypatch.setattr(probe, "measure", lambda *a, **k: {
        "probe_s": 0.0, "peak_flops": 1e12, "peak_source": "fake", "copy_bytes_per_s": 1e9,
        "eager": {"floor_s": 0.0, "rate_flops": 1e12}, "software": {"torch": "x", "torch_cuda": None}})
    clock = [0.0]
    monkeypatch.setattr(budget.time, "monotonic", lambda: clock[0])

    stages = [_FakeStage("big", 1, 4.0), _FakeStage("after", 2, 100.0, needs=("big",))]

    # each unit advances the fake clock by its estimate, as if it took that long
    def advance(unit):
        clock[0] += unit.seconds

    plain_run = _FakeStage.run
    timed_run = lambda self, ctx, est: plain_run(self, ctx, est, on_unit=advance)  # noqa: E731
    monkeypatch.setattr(_FakeStage, "run", timed_run)
    # 5 s reserve in smoke; 16 s budget leaves 11 s: two units of 4 s, not the third
    assert run_suite(_opts(tmp_path, 16.0), stages) == 0
    st = SuiteState(tmp_path)
    assert st.stage("big")["status"] == "partial" and st.stage("after")["status"] == "skipped"
    out = capsys.readouterr().out
    assert "needs stage big done first" in out
    assert out.rstrip().splitlines()[-1].startswith("| 2. after")    # the timing table is last
    # the rerun resumes at the third unit; "after" then does not fit (300 s > what is left)
    clock[0] = 0.0
    assert run_suite(_opts(tmp_path, 16.0), stages) == 0
    st = SuiteState(tmp_path)
    assert st.stage("big")["status"] == "done"
    assert json.loads((tmp_path / "big" / "n").read_text()) == 3
    assert st.stage("after")["status"] == "skipped" and "needs ~300 s" in st.stage("after")["note"]
    summary = (tmp_path / "summary.md").read_text()
    assert "| 1. big | done | big units | 3 | >= 3 | met (toy, not a result) |" in summary
    assert "| 2. after | skipped | after units | - | >= 3 | not run |" in summary


def test_a_failing_stage_is_recorded_and_the_exit_code_says_so(tmp_path, monkeypatch):
    import bench.gpu_suite.probe as probe
    from bench.gpu_suite.runner import run_suite
    from bench.gpu_suite.state import SuiteState

    monkeypatch.setattr(probe, "measure", lambda *a, **k: {
        "probe_s": 0.0, "peak_flops": 1e12, "peak_source": "fake", "copy_bytes_per_s": 1e9,
        "eager": {"floor_s": 0.0, "rate_flops": 1e12}, "software": {"torch": "x", "torch_cuda": None}})

    class Broken(_FakeStage):
        def run(self, ctx, est):
            raise ValueError("bad shape")

    assert run_suite(_opts(tmp_path, 60.0), [Broken("b", 1, 1.0), _FakeStage("ok", 2, 0.1)]) == 1
    st = SuiteState(tmp_path)
    assert st.stage("b")["status"] == "failed" and "bad shape" in st.stage("b")["error"]
    assert st.stage("ok")["status"] == "done"          # the others still ran
    assert "ValueError" in (tmp_path / "b" / "error.txt").read_text()


def _tiny_transfer_sweeps() -> dict:
    """Stage 8 at the least size that still has every path: 5 stacks of 10-step runs."""
    from bench.gpu_suite.sizes import SMOKE, _TOY_SETTINGS

    toy = dict(_TOY_SETTINGS, parameterization="mup")
    plans = {
        "muon": {"share": ("lr-sweep",), "plan": {
            "name": "t-muon", "description": "t", "settings": dict(toy, width=16, lr=2 ** -6),
            "grid": [{"optimizer": ["muadamw", "muon"]}]}},
        "depth": {"plan": {
            "name": "t-depth", "description": "t",
            "settings": dict(toy, width=16, base_depth=1, lr=2 ** -6, depth_alpha=1.0),
            "grid": [{"depth": [1, 2]}]}},
        "wd_rules": {"plan": {
            "name": "t-wd", "description": "t", "settings": dict(toy, lr=2 ** -6),
            "grid": [{"width": [16], "weight_decay": [1.0]},
                     {"width": [32], "wd_rule": ["mup", "none"], "weight_decay": [1.0]}]}},
    }
    return dict(SMOKE, transfer_sweeps=plans)


def test_stage_8_stops_between_stacks_and_resumes_from_its_stores(tmp_path):
    from advisor.runs.store import ResultsStore
    from bench.gpu_suite.stages.base import Ctx
    from bench.gpu_suite.stages.sweeps import load_suite_plan
    from bench.gpu_suite.stages.transfer_sweeps import TransferSweepsStage

    sz = _tiny_transfer_sweeps()
    probe = {"eager": {"floor_s": 1e-3, "rate_flops": 1e10},
             "software": {"torch": "x", "torch_cuda": None}}
    logs = []
    ctx = Ctx(out=tmp_path, smoke=True, device="cpu", sizes=sz, probe=probe,
              deadline=Deadline(1e9), compile="never", log=logs.append)
    # stage 2 already trained the muP AdamW run (a stand-in record with a marked loss)
    (tmp_path / "m").mkdir()
    adam = next(s for s in load_suite_plan(sz["transfer_sweeps"]["muon"]["plan"],
                                           tmp_path / "m").specs if s.optimizer == "muadamw")
    with ResultsStore.open_or_create(tmp_path / "lr-sweep" / "store") as st:
        st.record(adam.run_id, adam.settings(), "finished", final_val_loss=5.4321)
    stage = TransferSweepsStage()
    est = stage.estimate(ctx)
    assert [u.label.split(":")[0] for u in est.units] == ["muon", "depth", "depth",
                                                          "wd-rules", "wd-rules"]
    assert "muon 1 of 2 pending (1 from lr-sweep)" in est.detail
    left = [2]                                   # the budget holds two stacks this call

    def two_units(seconds):
        left[0] -= 1
        return left[0] >= 0

    ctx.unit_fits = two_units
    first = stage.run(ctx, est)
    assert first.status == "partial" and "wd-rules: 0/3 runs" in first.note
    figs = {f.key: f.value for f in first.figures}
    assert figs["runs"] == "2/2; 1/2; 0/3" and figs["muon_spectral_shift"] == 0.0
    assert "completep_shift" not in figs                  # depth not complete: no figure yet
    assert "  muon: 1 runs copied from lr-sweep (same run ids)" in logs
    stores = {sub: tmp_path / "transfer-sweeps" / sub / "store" for sub in ("muon", "depth")}

    def recorded():
        out = {}
        for d in stores.values():
            with ResultsStore.open(d) as st:
                out |= {r.run_id: (r.recorded_at, r.final_val_loss) for r in st.runs()}
        return out

    before = recorded()
    assert before[adam.run_id][1] == 5.4321               # copied, not retrained
    est2 = stage.estimate(ctx)
    assert [u.label.split(":")[0] for u in est2.units] == ["depth", "wd-rules", "wd-rules"]
    ctx.unit_fits = lambda seconds: True
    second = stage.run(ctx, est2)
    assert second.status == "done" and second.note == ""
    after = recorded()
    assert all(after[k] == v for k, v in before.items())  # nothing trained twice
    assert len(after) == len(before) + 1
    figs = {f.key: f for f in second.figures}
    assert figs["runs"].value == "2/2; 2/2; 3/3" and figs["runs"].met is True
    assert figs["completep_shift"].met is (figs["completep_shift"].value <= 1)
    assert "no knee in the grid" in figs["knee_none"].value or "predicted +1.0" in \
        figs["knee_none"].value
    md = (tmp_path / "transfer-sweeps" / "results.md").read_text()
    assert md.count("\n## ") == 3 and "(muon/muon.png)" in md


# ---------------------------------------------------------------- command line

@pytest.mark.parametrize("args, message", [
    (["--budget-s", "0", "--out", "{d}"], "--budget-s must be a positive"),
    (["--budget-s", "nan", "--out", "{d}"], "--budget-s must be a positive"),
    (["--stages", "warp", "--out", "{d}"], "unknown stage 'warp'"),
    (["--smoke"], "--out DIR is required"),
    (["--out", "{d}", "--device", "cpu"], "full size needs a CUDA GPU"),
    (["--out", "{d}", "--resume-from", "{d}/nope.tar.gz"], "no such file"),
])
def test_bad_input_is_one_error_line_and_exit_2(tmp_path, args, message):
    args = [a.replace("{d}", str(tmp_path / "suite")) for a in args]
    r = subprocess.run([sys.executable, "-m", "bench.gpu_suite", *args], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and message in r.stderr
    assert "Traceback" not in r.stderr


def test_a_corrupt_state_file_is_refused(tmp_path):
    (tmp_path / "state.json").write_text("{not json")
    r = subprocess.run([sys.executable, "-m", "bench.gpu_suite", "--smoke", "--out",
                        str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "unreadable" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------- the device command, toy size

def _probe_wheel(folder: Path) -> Path:
    """A minimal wheel of a module that exists nowhere else: importing it proves that the
    script installed the carried wheels and put the site on PYTHONPATH."""
    folder.mkdir()
    whl = folder / "gpusuite_probe-0.1-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("gpusuite_probe/__init__.py", "CARRIED = True\n")
        z.writestr("gpusuite_probe-0.1.dist-info/METADATA",
                   "Metadata-Version: 2.1\nName: gpusuite-probe\nVersion: 0.1\n")
        z.writestr("gpusuite_probe-0.1.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("gpusuite_probe-0.1.dist-info/RECORD",
                   "gpusuite_probe/__init__.py,,\ngpusuite_probe-0.1.dist-info/METADATA,,\n"
                   "gpusuite_probe-0.1.dist-info/WHEEL,,\ngpusuite_probe-0.1.dist-info/RECORD,,\n")
    return whl


def _device_call(tmp_path, out, suite_dir, suite_args, resume=None):
    env = dict(os.environ, OUT=str(out), SUITE_DIR=str(suite_dir), SITE=str(tmp_path / "site"),
               WHEELS=str(tmp_path / "whl"), REQUIRE="torch mup gpusuite_probe",
               BUDGET_S="300", SUITE_ARGS=suite_args, RESUME=str(resume or tmp_path / "none"),
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("PYTHONPATH", None)
    return subprocess.run(["bash", "bench/gpu_suite_device.sh"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def _returned_files(out: Path) -> list[Path]:
    """What the device tool would bring back: at most 8 files, 2 folders deep, plain names."""
    files = [p for p in out.rglob("*") if p.is_file()]
    for p in files:
        rel = p.relative_to(out)
        assert len(rel.parts) <= 3 and all(re.fullmatch(r"[A-Za-z0-9._-]+", x) for x in rel.parts)
        assert p.stat().st_size <= 16 * 2**20
    assert len(files) <= 8, files
    return files


def _check_transfer_sweeps(suite: Path, summary: dict, log: str) -> None:
    """Stage 8 of a finished smoke run: each sub-sweep's summary and plot, its figures, and
    the runs copied from stage 2's store instead of retrained."""
    t = suite / "transfer-sweeps"
    for sub, head in (("muon", "| width | AdamW (muP): best LR, loss | Muon spectral: best LR"),
                      ("depth", "| depth | alpha 0: best LR, loss | alpha 1: best LR, loss |"),
                      ("wd-rules", "| rule | width | best wd | best loss | best - wd 0")):
        md = (t / sub / "results.md").read_text()
        assert head in md and "![" in md and "Redo: `advisor results " in md, sub
        assert (t / sub / f"{sub}.png").stat().st_size > 1000
    assert "8 runs copied from lr-sweep" in log and "2 runs copied from lr-sweep" in log
    rows = {r["figure"]: r for r in summary["rows"] if r["stage"] == "8. transfer-sweeps"}
    assert len(rows) == 6 and all(r["value"] != "-" for r in rows.values()), rows
    assert rows["runs final / planned (muon; depth; wd rules)"]["value"] == "14/14; 12/12; 18/18"
    assert "predicted +1.0" in rows["wd rule none: knee shift (x2) vs predicted"]["value"]
    assert summary["stages"]["transfer-sweeps"]["pngs"] == [
        f"transfer-sweeps/{s}/{s}.png" for s in ("muon", "depth", "wd-rules")]


def _check_stability(suite: Path, summary: dict) -> None:
    """Stage 9 of a finished smoke run: the summary's tables, its JSON for `advisor recommend
    --stability-sweep`, the plot, and every promised figure measured."""
    st = suite / "stability"
    md = (st / "results.md").read_text()
    assert "| arm | width | seeds | best LR, loss | LR sensitivity" in md
    assert "Redo: `advisor results " in md and "--by stability" in md
    doc = json.loads((st / "stability.json").read_text())
    assert doc["schema"] == "hp-advisor/stability-sweep/v1" and set(doc["arms"]) == {"base",
                                                                                   "qk_norm"}
    assert doc["arms"]["base"]["law"]["heldout"]["width"] == 48
    assert (st / "stability.png").stat().st_size > 1000
    rows = _measured_rows(summary, "10. stability", 3)
    assert rows["runs final / planned"]["value"] == "84/84"


def _measured_rows(summary: dict, stage: str, n: int) -> dict:
    """The summary's ``n`` rows of ``stage`` ("9. user-model"), by figure, every one measured."""
    rows = {r["figure"]: r for r in summary["rows"] if r["stage"] == stage}
    assert len(rows) == n and all(r["value"] != "-" for r in rows.values()), rows
    return rows


def _smoke_stage(tmp_path, stage: str, timeout: int) -> dict:
    """Run one stage of the suite at toy size into ``tmp_path``; its summary.json."""
    r = subprocess.run([sys.executable, "-m", "bench.gpu_suite", "--smoke", "--out",
                        str(tmp_path), "--threads", "1", "--stages", stage], cwd=REPO,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    return json.loads((tmp_path / "summary.json").read_text())


@pytest.mark.slow
def test_the_stability_stage_at_toy_size_summarises_its_sweep(tmp_path):
    _check_stability(tmp_path, _smoke_stage(tmp_path, "stability", 600))


def _check_user_model(suite: Path, summary: dict) -> None:
    """Stage 9 of a finished smoke run: every step of the user-model loop wrote its file
    (BPE token files, the plan `advisor plan` wrote, the law set with its transfer check, the
    recommendation, the validation's table, JSON and plot), and every figure is measured."""
    st = suite / "user-model"
    meta = json.loads((st / "data" / "meta.json").read_text())
    assert meta["vocab_size"] == 300
    plan = yaml.safe_load((st / "plan.yaml").read_text())
    assert plan["grid"]["width"] == [16, 32, 64] and plan["settings"]["kv_group"] == 2
    law = yaml.safe_load((st / "fitted.yaml").read_text())
    assert set(law["laws"]["learning_rate"]["exponents"]) == {"D"}
    assert "transfer_check" in law["provenance"]
    rec = json.loads((st / "recommendation.json").read_text())
    assert rec["learning_rate"]["value"] > 0
    doc = json.loads((st / "validation.json").read_text())
    assert doc["width"] == 256 and doc["calibrated_max_width"] == 64
    assert len(doc["grid"]) == 3 and {"met", "lr_within_2x"} <= set(doc["verdict"])
    assert "| law (recommended) |" in (st / "results.md").read_text()
    assert (st / "validation.png").stat().st_size > 1000
    rows = _measured_rows(summary, "9. user-model", 6)
    assert rows["calibration runs final / planned"]["value"] == "36/36"


@pytest.mark.slow
def test_the_user_model_stage_at_toy_size_runs_the_loop(tmp_path):
    pytest.importorskip("tokenizers")
    _check_user_model(tmp_path, _smoke_stage(tmp_path, "user-model", 900))


@pytest.mark.slow
def test_the_device_command_runs_the_whole_suite_at_toy_size_and_resumes(tmp_path):
    _probe_wheel(tmp_path / "whl")
    out, suite = tmp_path / "OUT", tmp_path / "suite"
    r = _device_call(tmp_path, out, suite, "--smoke --threads 1")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert (tmp_path / "site" / "gpusuite_probe" / "__init__.py").exists()
    names = {p.name for p in _returned_files(out)}
    assert {"gpu-suite.tar.gz", "summary.md", "summary.json", "suite.log"} <= names
    summary = json.loads((out / "summary.json").read_text())
    status = {k: v["status"] for k, v in summary["stages"].items()}
    assert status == dict.fromkeys(["gpu-tests", "lr-sweep", "throughput", "spectral",
                                    "calibration", "transfer", "schedule", "transfer-sweeps",
                                    "user-model", "stability"], "done"), status
    # every promised figure is in the summary; the toy run marks itself as no result
    assert len(summary["rows"]) >= 20
    assert all("toy, not a result" in row["verdict"] for row in summary["rows"]
               if row["verdict"] != "not run")
    log = (out / "suite.log").read_text()
    assert log.rstrip().splitlines()[-1].startswith("| 10. stability |")   # summary last
    assert re.search(r"1\. gpu-tests: estimate [\d.]+ s", log) and "actual" in log
    law = (suite / "calibration" / "proxy-stdlib.yaml").read_text()
    assert "measured_on:" in law and "torch:" in law
    _check_transfer_sweeps(suite, summary, log)
    _check_stability(suite, summary)
    _check_user_model(suite, summary)
    # a later call on a fresh machine resumes from the bundle: nothing is redone
    out2 = tmp_path / "OUT2"
    r2 = _device_call(tmp_path, out2, tmp_path / "suite2", "--smoke --threads 1",
                      resume=out / "gpu-suite.tar.gz")
    assert r2.returncode == 0, r2.stdout[-3000:] + r2.stderr[-2000:]
    assert "resumed" in r2.stdout and "every selected stage is done in an earlier call" in r2.stdout
    assert "probe (" not in r2.stdout                  # no device time spent on a finished suite
    assert json.loads((out2 / "summary.json").read_text())["rows"] == summary["rows"]
    _returned_files(out2)


def test_the_device_command_stops_before_the_suite_when_an_import_is_missing(tmp_path):
    _probe_wheel(tmp_path / "whl")
    env = dict(os.environ, OUT=str(tmp_path / "OUT"), SITE=str(tmp_path / "site"),
               WHEELS=str(tmp_path / "whl"), REQUIRE="gpusuite_probe no_such_module_here",
               SUITE_DIR=str(tmp_path / "suite"),
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    r = subprocess.run(["bash", "bench/gpu_suite_device.sh"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 3
    assert "error: python3 cannot import no_such_module_here" in r.stdout + r.stderr
    assert not (tmp_path / "suite").exists()           # the suite never started
