"""Sweeps end to end through the CLI: bad input, the CI plan, SIGKILL and resume, executors."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("torch")
pytest.importorskip("mup")

from advisor.cli import main
from advisor.runs.store import ResultsStore

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1")

TINY_SETTINGS = dict(family="proxy-llama", data="stdlib", depth=2, head_dim=16, base_width=32,
                     seq_len=32, batch_size=4, tokens=4 * 32 * 30, eval_interval=10,
                     eval_sequences=16, schedule="wsd:warmup=3,cooldown=0.2")


def write_plan(path, settings=None, grid=None, **top):
    plan = {"name": "t", "settings": {**TINY_SETTINGS, **(settings or {})},
            "grid": grid if grid is not None else {"width": [32], "lr": {"pow2": [-7, -6]}}}
    plan.update(top)
    path.write_text(yaml.safe_dump(plan))
    return path


def cli(*args):
    """Run the advisor CLI in-process; return its exit code."""
    try:
        main(list(args))
    except SystemExit as e:
        return e.code
    return 0


def calibrate_cmd(plan, out, *extra):
    return [sys.executable, "-m", "advisor.cli", "calibrate", str(plan), "--out", str(out),
            "--device", "cpu", "--threads", "1", "--no-progress", *extra]


# ---------------------------------------------------------------- bad input, no compute
@pytest.mark.parametrize("settings, grid, top, msg", [
    ({"learning_rate": 0.1}, None, {}, "unknown key(s) in settings: learning_rate"),
    ({}, {"width": [32], "lr": [-0.01]}, {}, "lr must be a positive number"),
    ({}, {"width": [32], "lr": []}, {}, "grid axis 'lr' is empty"),
    ({}, {}, {}, "empty grid"),
    ({}, {"width": [40], "lr": [0.01]}, {}, "does not divide width 40"),
    ({}, None, {"owner": "me"}, "unknown key(s) owner"),
    ({"data": "tokens:/nonexistent/train.bin"}, None, {}, "does not exist"),
])
def test_bad_plans_fail_with_one_line_before_any_compute(tmp_path, capsys, settings, grid, top, msg):
    plan = write_plan(tmp_path / "p.yaml", settings, grid, **top)
    out = tmp_path / "out"
    assert cli("calibrate", str(plan), "--out", str(out), "--device", "cpu") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and msg in err and "\n" not in err
    assert not (out / "results.sqlite").exists()


@pytest.mark.parametrize("settings, grid, msg", [
    # 1e15 tokens: 4e12 steps; before the bounds, every run failed allocating 14 TiB
    ({"tokens": 1e15}, None, "would take at least"),
    ({}, {"width": [32, 65536], "lr": [0.01]}, "TiB of memory"),
])
@pytest.mark.parametrize("dry_run", [False, True])
def test_plans_beyond_memory_or_time_are_refused_saying_what_they_need(
        tmp_path, capsys, settings, grid, msg, dry_run):
    plan = write_plan(tmp_path / "p.yaml", settings, grid)
    out = tmp_path / "out"
    args = ["calibrate", str(plan), "--out", str(out), "--device", "cpu"]
    assert cli(*args, *(["--dry-run"] if dry_run else [])) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: plan t: run (width=") and msg in err and "\n" not in err
    assert not out.exists()


def test_run_estimates_are_plain_arithmetic_and_grow_with_the_run():
    from advisor.specs.plan import (MAX_RUN_S, MIN_STEP_S, run_bytes, run_seconds_lower_bound)

    small = run_bytes(64, 2, 176, 4, 256, 64, 8)
    assert 512 * 2 ** 20 < small < 600 * 2 ** 20          # the overhead dominates a proxy
    assert run_bytes(128, 2, 352, 8, 256, 64, 8) > small
    assert run_bytes(64, 2, 176, 4, 256, 128, 8) > small
    assert run_bytes(64, 2, 176, 4, 256, 64, 8, tied=True) < small
    assert run_seconds_lower_bound(1000, 1.0) == pytest.approx(1000 * MIN_STEP_S)
    assert run_seconds_lower_bound(1, 1e21) == pytest.approx(1e6)
    assert run_seconds_lower_bound(int(MAX_RUN_S / MIN_STEP_S) - 1, 1.0) < MAX_RUN_S


def test_long_runs_never_hold_a_step_sized_schedule_array():
    from advisor.rules.lr_schedule import parse_schedule
    from calibration.train.runtime import MultiplierStream

    for spec in ("wsd:warmup=10,cooldown=0.3,shape=1-sqrt", "cosine:warmup=0.05",
                 "step:at=0.5,to=0.1", "constant"):
        full = parse_schedule(spec).multipliers(10_000)
        stream = MultiplierStream(spec, 10_000, chunk=777)
        assert np.array_equal([stream.at(t) for t in range(1, 10_001)], full)
        assert np.array_equal(stream.block(9_990, 20)[:11], full[9_989:])
        assert stream.at(10_001) == 0.0 and not stream.block(9_990, 20)[11:].any()
    long = MultiplierStream("wsd:warmup=100,cooldown=0.2", 10 ** 12)
    assert long.at(1) == pytest.approx(0.01) and long.at(10 ** 12) == 0.0
    assert long.at(5 * 10 ** 11) == 1.0 and len(long._values) == 4096


def test_corrupt_data_file(tmp_path, capsys):
    (tmp_path / "x.bin").write_bytes(b"\x00" * 1001)
    plan = write_plan(tmp_path / "p.yaml", {"data": f"tokens:{tmp_path / 'x.bin'}"})
    assert cli("calibrate", str(plan), "--out", str(tmp_path / "out")) == 2
    assert "not a whole number of uint16 tokens" in capsys.readouterr().err


def test_corrupt_store_is_refused_and_left_alone(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.sqlite").write_bytes(b"garbage" * 500)
    plan = write_plan(tmp_path / "p.yaml")
    assert cli("calibrate", str(plan), "--out", str(out), "--device", "cpu") == 2
    assert "corrupt" in capsys.readouterr().err
    assert (out / "results.sqlite").read_bytes() == b"garbage" * 500
    assert cli("results", str(out)) == 2


# ---------------------------------------------------------------- the CI plan, end to end
def test_ci_plan_runs_end_to_end_and_loss_falls(tmp_path, capsys):
    out = tmp_path / "ci"
    r = subprocess.run(calibrate_cmd("ci", out), capture_output=True, text=True, env=ENV,
                       cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr
    assert cli("results", str(out), "--format", "json") == 0
    report = json.loads(capsys.readouterr().out)
    runs = report["runs"]
    assert len(runs) == 20
    assert {r["status"] for r in runs} <= {"finished", "diverged"}
    with ResultsStore.open(out) as st:
        for run in runs:
            if run["status"] == "finished":
                c = st.curve(run["run_id"])
                assert c["val_loss"][-1] < c["val_loss"][0] < np.log(256), run["settings"]
                assert c["train_loss"][-1] < c["train_loss"][0]
    # wall_time_s times the training steps only: the first run of a shape in a fresh process
    # runs its steps as fast as the next ones (its start-up is in startup_s). Before, the
    # first run's cold start (model build, mup import, first kernels) was in wall_time_s.
    with ResultsStore.open(out) as st:
        stored = st.runs()
    assert all(r.wall_time_s > 0 and np.isfinite(r.startup_s) and r.startup_s > 0
               for r in stored)
    assert all(r.tokens_per_s == pytest.approx(r.tokens_seen / r.wall_time_s) for r in stored)
    first = min(stored, key=lambda r: r.recorded_at)
    same = sorted((r for r in stored if r.status == "finished" and r.run_id != first.run_id
                   and (r.settings["width"], r.settings["parameterization"])
                   == (first.settings["width"], first.settings["parameterization"])),
                  key=lambda r: r.recorded_at)
    per_step = lambda r: r.wall_time_s / (r.tokens_seen / 512)
    typical = float(np.median([per_step(r) for r in same]))
    assert per_step(first) < 2.5 * typical, (per_step(first), typical, first.startup_s)
    best = {(b["parameterization"], b["width"]): b for b in report["best_lr"]}
    assert set(best) == {(p, w) for p in ("mup", "sp") for w in (32, 64)}
    assert cli("results", str(out), "--csv", str(tmp_path / "ci.csv")) == 0
    table = capsys.readouterr().out
    assert "best LR per width" in table
    assert (tmp_path / "ci.csv").read_text().startswith("h,ffnh,numh,numl,lr,bs,ti,loss")


# ---------------------------------------------------------------- SIGKILL and resume
def _snapshot(db):
    con = sqlite3.connect(db)
    runs = con.execute("SELECT run_id, settings, status, final_val_loss, recorded_at FROM runs "
                       "ORDER BY run_id").fetchall()
    curves = con.execute("SELECT * FROM curves ORDER BY run_id, step").fetchall()
    con.close()
    return runs, curves


def test_sigkill_mid_sweep_then_resume_loses_nothing(tmp_path):
    plan = write_plan(tmp_path / "p.yaml", grid={"width": [32, 64], "lr": {"pow2": [-8, -6]}})
    out = tmp_path / "out"
    db = out / "results.sqlite"
    proc = subprocess.Popen(calibrate_cmd(plan, out), env=ENV, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    n_done = 0
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                con = sqlite3.connect(db, timeout=5)
                n_done = con.execute("SELECT count(*) FROM runs").fetchone()[0]
                con.close()
            except sqlite3.OperationalError:
                n_done = 0
            if n_done >= 2:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before_runs, before_curves = _snapshot(db)
    assert 2 <= len(before_runs) < 6                  # killed mid-sweep

    r = subprocess.run(calibrate_cmd(plan, out), capture_output=True, text=True, env=ENV,
                       cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"{len(before_runs)} were already stored, {6 - len(before_runs)} ran" in r.stdout
    after_runs, after_curves = _snapshot(db)
    assert len(after_runs) == 6 and {row[2] for row in after_runs} == {"finished"}
    kept = {row[0]: row for row in after_runs}
    for row in before_runs:                           # finished rows untouched
        assert kept[row[0]] == row
    assert set(before_curves) <= set(after_curves)
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    # a third invocation has nothing left to do
    r = subprocess.run(calibrate_cmd(plan, out), capture_output=True, text=True, env=ENV,
                       cwd=REPO, timeout=120)
    assert "6 were already stored, 0 ran" in r.stdout


# ---------------------------------------------------------------- executors
def test_process_executor_matches_in_process(tmp_path):
    plan = write_plan(tmp_path / "p.yaml", {"tokens": 4 * 32 * 15})
    a, b = tmp_path / "inproc", tmp_path / "procs"
    for out, extra in ((a, ()), (b, ("--executor", "gpus", "--workers", "2"))):
        r = subprocess.run(calibrate_cmd(plan, out, *extra), capture_output=True, text=True,
                           env=ENV, cwd=REPO, timeout=600)
        assert r.returncode == 0, r.stderr
    with ResultsStore.open(a) as sa, ResultsStore.open(b) as sb:
        ra = {r.run_id: r.final_val_loss for r in sa.runs()}
        rb = {r.run_id: r.final_val_loss for r in sb.runs()}
    assert ra.keys() == rb.keys() and len(ra) == 2
    for k in ra:
        assert rb[k] == pytest.approx(ra[k], rel=1e-5)


def test_ray_executor_with_a_local_instance(tmp_path):
    pytest.importorskip("ray")
    plan = write_plan(tmp_path / "p.yaml", {"tokens": 4 * 32 * 10})
    out = tmp_path / "ray"
    r = subprocess.run(calibrate_cmd(plan, out, "--executor", "ray"), capture_output=True,
                       text=True, env=ENV, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr
    with ResultsStore.open(out) as st:
        runs = st.runs()
    assert len(runs) == 2 and {r.status for r in runs} == {"finished"}
    assert all(len(ResultsStore.open(out).curve(r.run_id)["step"]) == 1 for r in runs)


# ---------------------------------------------------------------- workers sharing a store
def _poll_db(db, query, args=()):
    try:
        con = sqlite3.connect(db, timeout=5)
        try:
            return con.execute(query, args).fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:          # not created yet, or its schema not yet written
        return []


def test_two_workers_share_a_store_and_a_killed_workers_run_is_taken_over(tmp_path):
    """Two `advisor calibrate` processes on one store (one inproc, one with the process
    executor's two workers), then a SIGKILL of the first mid-run: every run is recorded
    once, none is trained to the end twice, the killed worker's run is finished by another."""
    plan = write_plan(tmp_path / "p.yaml", {"tokens": 4 * 32 * 60},
                      grid={"width": [32, 64], "lr": {"pow2": [-9, -5]}})
    out = tmp_path / "shared"
    db = out / "results.sqlite"
    a = subprocess.Popen(calibrate_cmd(plan, out), env=ENV, cwd=REPO,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    b = subprocess.Popen(calibrate_cmd(plan, out, "--executor", "gpus", "--workers", "2"),
                         env=ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    mine = f"%:{a.pid}:%"
    deadline = time.time() + 300
    while time.time() < deadline and a.poll() is None:
        ended = _poll_db(db, "SELECT count(*) FROM attempts WHERE owner LIKE ? AND "
                         "ended_at IS NOT NULL", (mine,))
        holds = _poll_db(db, "SELECT run_id FROM claims WHERE owner LIKE ?", (mine,))
        if ended and ended[0][0] >= 1 and holds:
            break
        time.sleep(0.02)
    assert a.poll() is None, "the first worker ended before it could be killed"
    os.kill(a.pid, signal.SIGKILL)
    a.wait()
    killed = {r[0] for r in _poll_db(db, "SELECT run_id FROM claims WHERE owner LIKE ?", (mine,))}
    assert killed, "the killed worker held no run"
    out_b, err_b = b.communicate(timeout=600)
    assert b.returncode == 0, err_b
    assert "10 runs (10 finished)" in out_b

    with ResultsStore.open(out) as st:
        runs = st.runs()
        attempts = st.attempts()
        assert st.claims() == []                      # nothing left leased
    assert len(runs) == 10 and len({r.run_id for r in runs}) == 10
    assert {r.status for r in runs} == {"finished"}
    by_run: dict = {}
    for att in attempts:
        by_run.setdefault(att["run_id"], []).append(att)
    assert set(by_run) == {r.run_id for r in runs}
    for rid, atts in by_run.items():
        ended = [x for x in atts if x["ended_at"] is not None]
        assert len(ended) == 1, f"run {rid} was trained to the end {len(ended)} times"
        if rid in killed:                             # started by the killed worker, ...
            assert len(atts) == 2 and f":{a.pid}:" in atts[0]["owner"]
            assert atts[0]["ended_at"] is None and atts[0]["status"] is None
            assert atts[1]["took_over"] == atts[0]["owner"]   # ... finished by another
            assert f":{a.pid}:" not in atts[1]["owner"]
        else:
            assert len(atts) == 1                     # started once
    owners = {x["owner"].split(":")[1] for x in attempts if x["ended_at"] is not None}
    assert str(a.pid) in owners and len(owners) >= 2  # the work was shared


def test_a_stacked_group_claims_its_free_members_and_takes_over_an_expired_lease(
        tmp_path, one_torch_thread):
    """A stacked unit whose third member another host holds: the two free members train as
    a stack; when the other host's lease expires (no heartbeat), the third is taken over."""
    from calibration.train.data import load_data
    from advisor.runs.store import LeaseKeeper
    from calibration.sweep.executors import claim_loop, work_units
    from advisor.specs.runspec import RunSpec
    from calibration.train.group import train_group

    model = {k: TINY_SETTINGS[k] for k in ("head_dim", "base_width")}
    base = {k: v for k, v in TINY_SETTINGS.items() if k not in model}
    specs = [RunSpec(**{**base, "tokens": 4 * 32 * 10}, width=32, lr=lr, stack=True,
                     model=model) for lr in (2 ** -8, 2 ** -7, 2 ** -6)]
    (unit,) = work_units(specs)
    assert len(unit) == 3                              # one unit: trained together
    st = ResultsStore.create(tmp_path)
    data = load_data("stdlib")
    far = "far-host:4242:feed"
    st.claim([specs[2].run_id], far, 3.0, 0)           # a 3 s lease, never renewed
    con = sqlite3.connect(tmp_path / "results.sqlite", isolation_level=None)
    con.execute("UPDATE claims SET origin='far-host|boot|ns'")
    con.close()
    trained = []
    with LeaseKeeper(st, ttl_s=30) as lease:
        def train_unit(group):
            trained.append([s.run_id for s in group])
            train_group(group, data, "cpu",
                        on_result=lambda r: st.record_result(r, owner=lease.owner))

        ours = claim_loop([unit], lease, train_unit, poll_s=0.2)
    assert trained == [[specs[0].run_id, specs[1].run_id], [specs[2].run_id]]
    assert sorted(ours) == sorted(s.run_id for s in specs)
    runs = {r.run_id: r for r in st.runs()}
    assert {r.status for r in runs.values()} == {"finished"} and len(runs) == 3
    stack_sizes = {rid: [d["value"] for d in st.diagnostics(rid) if d["name"] == "stack_size"]
                   for rid in runs}
    assert stack_sizes[specs[0].run_id] == [2.0] and stack_sizes[specs[2].run_id] == []
    (taken,) = [a for a in st.attempts(specs[2].run_id) if a["owner"] == lease.owner]
    assert taken["took_over"] == far and taken["status"] == "finished"
    assert all(r.startup_s > 0 and r.wall_time_s > 0 for r in runs.values())
    st.close()


def test_a_sweep_stacks_runs_that_differ_only_in_token_budget():
    """One key (advisor.specs.grouping.stack_key) decides what stacks: 2 widths x 2 token budgets
    x 3 LRs with stack: true are 2 work units (one per width), not 4; without stacking each
    run is its own unit."""
    from advisor.specs.runspec import RunSpec
    from calibration.sweep.executors import work_units

    base = dict(depth=2, batch_size=4, seq_len=32, model={"head_dim": 16, "base_width": 32})
    specs = [RunSpec(**base, width=w, tokens=t, lr=lr, stack=True)
             for w in (32, 64) for t in (4 * 32 * 10, 4 * 32 * 20)
             for lr in (2 ** -8, 2 ** -7, 2 ** -6)]
    units = work_units(specs)
    assert len(units) == 2 and sorted(len(u) for u in units) == [6, 6]
    assert all(len({s.tokens for s in u}) == 2 and len({s.width for s in u}) == 1 for u in units)
    singles = [RunSpec(**{**base, "width": s.width, "tokens": s.tokens, "lr": s.lr}) for s in specs]
    assert len(work_units(singles)) == 12
