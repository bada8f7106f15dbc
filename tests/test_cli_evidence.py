"""Issue 28, through the real CLI in a subprocess, one test per case: no value without
evidence (law files checked on load, targets checked alike everywhere, fits that refuse data
without information), no good data called corrupt (stores read read-only, every SQLite error
named by its cause), no failure called success (sweeps judged, bad devices and plans refused
before any compute), no silent fix-up, and a short table for a person at a terminal.

Read-only and full file systems are real: a read-only bind mount and a small tmpfs when this
runs as root with mount rights, file modes otherwise (read-only) or skipped (disk full).
"""
import hashlib
import importlib.util
import json
import math
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from test_cli_reliability import FAIL_PLAN, advisor, one_error_line

REPO = Path(__file__).resolve().parents[1]

GOOD_LAW = {"schema": "hp-advisor/schedule-law/v1", "law": "multipower",
            "params": {"L0": 3.0, "A": 29.0, "alpha": 0.5, "B": 0.15, "C": 0.1, "beta": 0.6,
                       "gamma": 0.6},
            "lr_scale": 3e-4, "total_steps_fitted": 24000}

# the reliability tests' one-run plan, as a grid over LRs at one width
TINY_PLAN = (FAIL_PLAN.replace("  lr: 0.004\n", "  width: 32\n  diverge_factor: DIVERGE\n")
             .replace("  tokens: 1280", "  tokens: TOKENS").replace("width: WIDTHS", "lr: LRS"))


def tiny_plan(tmp_path, name="plan.yaml", tokens=2560, lrs="[0.004, 0.008]", diverge=1.5):
    p = tmp_path / name
    p.write_text(TINY_PLAN.replace("TOKENS", str(tokens)).replace("LRS", lrs)
                 .replace("DIVERGE", str(diverge)))
    return p


def law_file(tmp_path, name="law.yaml", **params):
    d = json.loads(json.dumps(GOOD_LAW))
    d["params"].update(params)
    p = tmp_path / name
    p.write_text(yaml.safe_dump(d))
    return p


def record_runs(directory, n=4):
    """A store with ``n`` finished runs of a real RunSpec each (settings, curve, losses)."""
    from advisor.runs.store import ResultsStore
    from advisor.specs.runspec import RunSpec

    with ResultsStore.create(directory) as st:
        for i in range(n):
            spec = RunSpec(width=32, depth=2, lr=2.0 ** (-8 + i), batch_size=4, seq_len=32,
                           tokens=4 * 32 * 20)
            curve = {"step": [10, 20], "tokens": [1280, 2560], "lr": [spec.lr] * 2,
                     "train_loss": [4.0 - 0.1 * i, 3.5 - 0.1 * i],
                     "val_loss": [4.1 - 0.1 * i, 3.6 - 0.1 * i]}
            st.record(spec.run_id, spec.settings(), "finished", curve=curve,
                      final_train_loss=3.5 - 0.1 * i, final_val_loss=3.6 - 0.1 * i,
                      n_params=40_000, n_params_non_embedding=30_000, tokens_seen=2560)
    return directory


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def _mount(*args) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def read_only(tmp_path):
    """A function that makes a folder read-only for this user: a read-only bind mount as
    root (a real read-only file system), file modes otherwise. Undone afterwards."""
    undo = []

    def make(folder: Path) -> Path:
        if os.geteuid() == 0:
            view = tmp_path / f"ro-{folder.name}"
            view.mkdir()
            if not (_mount("--bind", str(folder), str(view))
                    and _mount("-o", "remount,bind,ro", str(view))):
                _mount_cleanup(view)
                pytest.skip("root without mount rights: cannot make a read-only file system")
            undo.append(lambda: _mount_cleanup(view))
            return view
        for p in [folder, *folder.iterdir()]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        undo.append(lambda: [p.chmod(0o755) for p in [folder, *folder.iterdir()]])
        return folder

    yield make
    for u in reversed(undo):
        u()


def _mount_cleanup(view: Path) -> None:
    subprocess.run(["umount", str(view)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs (root with mount rights only), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("a full file system needs root to mount a tmpfs")
    d = tmp_path / "disk"
    d.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=256k", "tmpfs", str(d)):
        pytest.skip("cannot mount a tmpfs here")
    yield d
    _mount_cleanup(d)


def _fill(disk: Path) -> Path:
    """Fill the file system of ``disk`` to the last byte; returns the filler file."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0")
        except OSError:
            pass
    return filler


needs_calibration = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("torch", "mup")),
    reason="needs torch and mup")


# ---------------------------------------------------------------------------------------
# 1. A device is bad input, found before any run
# ---------------------------------------------------------------------------------------

@needs_calibration
def test_a_bogus_device_is_refused_before_any_run(tmp_path):
    out = tmp_path / "out"
    r = advisor("calibrate", tiny_plan(tmp_path), "--out", out, "--device", "bogus",
                "--no-progress")
    one_error_line(r, "--device", "'bogus'")
    assert not out.exists()


@needs_calibration
def test_cuda_on_a_machine_without_cuda_is_one_error_line(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for dry in ([], ["--dry-run"]):
        r = advisor("calibrate", tiny_plan(tmp_path), "--out", tmp_path / "out", "--device",
                    "cuda", "--no-progress", *dry)
        one_error_line(r, "CUDA is not available")       # not a NameError: exit 2
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------
# 2. Schedule-law files are range-checked on load, predictions are plausible or refused
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("params,needle", [
    ({"alpha": -1}, "param alpha"),
    ({"A": 1e300, "alpha": 1e300}, "param A"),
    ({"L0": 1e300}, "param L0"),
    ({"A": 1e7}, "predicts a loss of"),        # every constant in range, the curve absurd
])
def test_an_implausible_schedule_law_is_refused_by_every_command(tmp_path, params, needle):
    law = law_file(tmp_path, **params)
    csv_path = tmp_path / "p.csv"
    for args in (["schedule", "predict", "--law", law, "--schedule", "cosine", "--steps",
                  "24000", "--no-plot", "--csv", csv_path],
                 ["schedule", "optimize", "--law", law, "--steps", "24000"],
                 ["recommend", "--params", "7e9", "--schedule-law", law, "--format", "json"]):
        r = advisor(*args)
        one_error_line(r, str(law), needle)
        assert r.stdout == ""
    assert not csv_path.exists()


def test_a_plausible_schedule_law_still_predicts(tmp_path):
    r = advisor("schedule", "predict", "--law", law_file(tmp_path), "--schedule", "cosine",
                "--steps", "24000", "--no-plot", "--csv", tmp_path / "p.csv")
    assert r.returncode == 0, r.stderr
    final = float(r.stdout.split("predicted final loss ")[1].split()[0].rstrip(","))
    assert 2.5 < final < 4.0
    assert "interval" in r.stdout.split("predicted final loss ")[1].splitlines()[0]


# ---------------------------------------------------------------------------------------
# 3. A good store on a read-only file system is read, never called corrupt, never written
# ---------------------------------------------------------------------------------------

def test_a_good_store_on_a_read_only_file_system_is_read(tmp_path, read_only):
    src = record_runs(tmp_path / "sweep")
    before = _digest(src)
    ro = read_only(src)
    r = advisor("results", ro)
    assert r.returncode == 0, r.stderr
    assert "4 runs in" in r.stdout and "corrupt" not in r.stderr
    r = advisor("results", ro, "--format", "json")
    assert r.returncode == 0 and len(json.loads(r.stdout)["runs"]) == 4
    r = advisor("fit", ro, "--out", tmp_path / "laws.yaml")
    assert "corrupt" not in r.stderr and "move it aside" not in r.stderr, r.stderr
    assert _digest(src) == before                     # not a byte written, no -wal, no -shm


def test_a_summary_never_writes_to_what_it_summarises(tmp_path):
    src = record_runs(tmp_path / "sweep")
    before = _digest(src)["results.sqlite"]
    assert advisor("results", src).returncode == 0
    # the database is not written; a WAL reader's lock files may appear, empty of data
    assert _digest(src)["results.sqlite"] == before
    assert not (src / "results.sqlite-wal").exists() or \
        (src / "results.sqlite-wal").stat().st_size == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "results.sqlite").write_bytes(b"")        # created, killed before its schema
    r = advisor("results", empty)
    assert r.returncode == 0 and "0 runs" in r.stdout, r.stderr
    assert (empty / "results.sqlite").stat().st_size == 0
    assert sorted(p.name for p in empty.iterdir()) == ["results.sqlite"]


# ---------------------------------------------------------------------------------------
# 4. A fit refuses data without information; no RuntimeWarning, no inf in any file
# ---------------------------------------------------------------------------------------

def _grid_csv(path, loss=lambda lr, n: 3.0, lr_override=None, width=None):
    """A Step Law-layout grid of 3 cells; ``width(n)``: also an ``h`` column (d_model)."""
    rows = ["N,D,lr,bs,loss,smooth loss" + (",h" if width else "")]
    for n in (1e7, 3e7, 1e8):
        for lr in (1e-3, 2e-3, 4e-3, 8e-3):
            for bs in (64, 128):
                x = loss(lr, n)
                rows.append(f"{n},{20 * n},{lr},{bs},{x},{x}" + (f",{width(n)}" if width else ""))
    if lr_override is not None:
        parts = rows[5].split(",")
        parts[2] = lr_override
        rows[5] = ",".join(parts)
    path.write_text("\n".join(rows) + "\n")
    return path


def test_fit_refuses_runs_that_all_share_one_loss(tmp_path):
    out = tmp_path / "laws.yaml"
    r = advisor("fit", _grid_csv(tmp_path / "flat.csv"), "--out", out)
    one_error_line(r, "same loss", "no information")
    assert not out.exists()


def test_fit_refuses_an_absurd_lr_naming_the_file_without_a_numpy_warning(tmp_path):
    csv_path = _grid_csv(tmp_path / "runs.csv",
                         loss=lambda lr, n: 3 + (math.log(lr / 3e-3)) ** 2 / 10 - math.log(n) / 50,
                         lr_override="1e300")
    r = advisor("fit", csv_path, "--out", tmp_path / "laws.yaml")
    one_error_line(r, str(csv_path), "lr 1e+300")
    assert "RuntimeWarning" not in r.stderr


def test_schedule_fit_refuses_flat_and_noise_only_curves_and_writes_no_inf(tmp_path):
    import random
    rng = random.Random(0)
    for name, noise in (("flat", 0.0), ("noise", 1e-3)):
        lines = ["step,lr,loss"]
        for s in range(10, 2001, 10):
            lr = 3e-4 * 0.5 * (1 + math.cos(math.pi * s / 2000))
            lines.append(f"{s},{lr},{3.0 + rng.gauss(0, noise) if noise else 3.0}")
        src = tmp_path / f"{name}.csv"
        src.write_text("\n".join(lines) + "\n")
        out = tmp_path / f"{name}-law.yaml"
        r = advisor("schedule", "fit", src, "--out", out)
        one_error_line(r, "no information")
        assert "inf%" not in r.stdout and not out.exists()


# ---------------------------------------------------------------------------------------
# 5. A full disk is named as such, at creation and mid-sweep; nothing is lost
# ---------------------------------------------------------------------------------------

@needs_calibration
def test_a_full_disk_at_store_creation_is_not_corruption(tmp_path, small_disk):
    _fill(small_disk)
    plan = tiny_plan(tmp_path)
    for _ in range(2):                  # and again, on what the first attempt left behind
        r = advisor("calibrate", plan, "--out", small_disk / "sweep", "--device", "cpu",
                    "--no-progress")
        line = one_error_line(r, "disk is full")
        assert "corrupt" not in line and "internal error" not in line


@needs_calibration
def test_a_full_disk_on_resuming_a_sweep_keeps_every_stored_run(tmp_path, small_disk):
    out = small_disk / "sweep"
    r = advisor("calibrate", tiny_plan(tmp_path, "one.yaml", lrs="[0.004]"), "--out", out,
                "--device", "cpu", "--no-progress")
    assert r.returncode == 0, r.stderr
    plan = tiny_plan(tmp_path, lrs="[0.002, 0.004, 0.008]")
    filler = _fill(small_disk)
    r = advisor("calibrate", plan, "--out", out, "--device", "cpu", "--no-progress")
    line = one_error_line(r, "disk is full", "the runs stored so far are kept")
    assert "rollback" not in line and "corrupt" not in line and "internal" not in line
    filler.unlink()
    assert advisor("results", out).stdout.startswith("1 runs in")
    r = advisor("calibrate", plan, "--out", out, "--device", "cpu", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "1 were already stored" in r.stdout
    assert advisor("results", out).stdout.startswith("3 runs in")


# ---------------------------------------------------------------------------------------
# 6. Sweep outcomes judged; a plan's time and LRs checked before any compute
# ---------------------------------------------------------------------------------------

@needs_calibration
def test_a_sweep_whose_every_run_diverged_exits_1_with_a_message(tmp_path):
    # diverge_factor 0.5: a run stops as diverged once its smoothed loss is above half its
    # first loss (after step 10), which every run of 20 steps is
    plan = tiny_plan(tmp_path, diverge=0.5)
    r = advisor("calibrate", plan, "--out", tmp_path / "out", "--device", "cpu",
                "--no-progress")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "2 diverged" in r.stdout and "every run of plan rel-fail diverged" in r.stderr


@needs_calibration
def test_a_plan_of_months_is_refused_unless_forced_and_dry_run_states_its_time(tmp_path):
    plan = tiny_plan(tmp_path, tokens=20_000_000_000)
    out = tmp_path / "out"
    t0 = time.perf_counter()
    r = advisor("calibrate", plan, "--out", out, "--device", "cpu", "--no-progress")
    one_error_line(r, "would take at least", "--force")
    assert time.perf_counter() - t0 < 60 and not out.exists()
    r = advisor("calibrate", plan, "--out", out, "--device", "cpu", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "taking at least" in r.stdout and "days" in r.stdout
    assert "--force" in r.stderr
    r = advisor("calibrate", tiny_plan(tmp_path, "small.yaml"), "--out", out, "--device",
                "cpu", "--dry-run")
    assert "taking at least" in r.stdout and "warning" not in r.stderr


@needs_calibration
@pytest.mark.parametrize("lr", ["1e6", "1e-12"])
def test_a_plan_with_an_lr_no_model_trains_at_is_refused(tmp_path, lr):
    r = advisor("calibrate", tiny_plan(tmp_path, lrs=f"[{lr}]"), "--out", tmp_path / "out",
                "--dry-run")
    one_error_line(r, "lr", "outside")


# ---------------------------------------------------------------------------------------
# 7. One target check for every command that takes a target
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["recommend", "compare"])
def test_recommend_and_compare_refuse_the_same_target(command):
    r = advisor(command, "--params", "7e9", "--tokens", "1e3")
    one_error_line(r, "tokens_per_param", "below 0.01")
    assert r.stdout == ""
    assert advisor(command, "--params", "7e9", "--tokens", "1e11").returncode == 0


# ---------------------------------------------------------------------------------------
# 8. --factory and check-spectral's options: found before training
# ---------------------------------------------------------------------------------------

@needs_calibration
def test_a_factory_with_a_syntax_error_is_one_error_line(tmp_path):
    (tmp_path / "broken_factory.py").write_text("def make(width:\n    pass\n")
    r = advisor("check-spectral", "--factory", "broken_factory:make", "--steps", "1",
                cwd=tmp_path)
    one_error_line(r, "broken_factory.py", "line 1", "syntax error")


@needs_calibration
def test_a_factory_in_the_current_directory_is_importable_and_a_missing_one_is_hinted(tmp_path):
    (tmp_path / "my_factory.py").write_text(
        "import torch\n"
        "def make(width):\n"
        "    raise ValueError('reached the factory')\n")
    r = advisor("check-spectral", "--factory", "my_factory:make", "--steps", "1", "--seeds",
                "1", cwd=tmp_path)
    assert "cannot import" not in r.stderr and "reached the factory" in r.stderr, r.stderr
    r = advisor("check-spectral", "--factory", "no_such_factory:make", "--steps", "1",
                cwd=tmp_path)
    one_error_line(r, "cannot import", str(tmp_path), "PYTHONPATH")


@needs_calibration
@pytest.mark.parametrize("args,needle", [
    (["--widths", "64,128,1000000"], "would need about"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
])
def test_check_spectral_options_are_checked_before_training(args, needle):
    t0 = time.perf_counter()
    r = advisor("check-spectral", *args, "--steps", "1")
    one_error_line(r, needle)
    assert "training" not in r.stderr and time.perf_counter() - t0 < 60


# ---------------------------------------------------------------------------------------
# 9. No silent fix-ups
# ---------------------------------------------------------------------------------------

def test_a_warmup_longer_than_the_run_is_refused_not_clipped(tmp_path):
    r = advisor("schedule", "predict", "--law", law_file(tmp_path), "--schedule",
                "cosine:warmup=5000", "--steps", "2000", "--no-plot", "--csv",
                tmp_path / "p.csv")
    one_error_line(r, "warmup=5000", "2000 steps")


def test_a_sequence_longer_than_the_batch_is_refused():
    one_error_line(advisor("recommend", "--params", "7e9", "--seq-len", "16777216"),
                   "--seq-len 16777216", "longer than the batch")


def test_an_output_file_never_creates_folders(tmp_path):
    missing = tmp_path / "no" / "such" / "dir"
    one_error_line(advisor("recommend", "--params", "7e9", "-o", missing / "f.yaml"),
                   str(missing), "does not exist")
    link = tmp_path / "link.yaml"
    link.symlink_to(missing / "target.yaml")           # dangling, into a missing folder
    one_error_line(advisor("recommend", "--params", "7e9", "-o", link), "symlink")
    assert not (tmp_path / "no").exists()


def test_evaluate_names_a_law_file_by_its_path_and_flags_implausible_predictions(tmp_path):
    d = yaml.safe_load((REPO / "recipes" / "laws" / "step-law.yaml").read_text())
    law = d["laws"]["learning_rate"]
    law.update(exponents={"N": -1.0}, fitted_range={"N": [1e9, 1e10]},
               coefficient=1e-3 * 3e9)                  # plausible inside its range only
    law.pop("uncertainty", None)
    path = tmp_path / "impostor.yaml"                   # its internal name says step-law
    path.write_text(yaml.safe_dump(d))
    grid = _grid_csv(tmp_path / "grid.csv",
                     loss=lambda lr, n: 3 + (math.log(lr / 3e-3)) ** 2 / 10 - math.log(n) / 50)
    r = advisor("evaluate", "--grid", grid, "--law", path)
    assert r.returncode == 0, r.stderr
    assert f"(file {path})" in r.stdout
    assert "warning: the law predicts a LR outside" in r.stdout


WIDTH = {1e7: 256, 3e7: 384, 1e8: 640}      # d_model of the grid's three models


def test_a_law_in_the_width_is_evaluated_at_each_cells_width_or_refused_naming_the_column(
        tmp_path):
    """optima-fit's LR law reads W = d_model: evaluate and plot take it from the grid's h
    column (Step Law's layout; a results store writes it); a grid without it is one error
    line naming the column, before any figure is drawn."""
    from advisor.laws.lawset import load_lawset

    bowl = lambda lr, n: 3 + (math.log(lr / 3e-3)) ** 2 / 10 - math.log(n) / 50   # noqa: E731
    plain = _grid_csv(tmp_path / "plain.csv", loss=bowl)
    one_error_line(advisor("evaluate", "--grid", plain, "--law", "optima-fit"),
                   "width W", "'h' column")
    with_h = _grid_csv(tmp_path / "with_h.csv", loss=bowl, width=WIDTH.get)
    r = advisor("evaluate", "--grid", with_h, "--law", "optima-fit", "--format", "json")
    assert r.returncode == 0, r.stderr
    law = load_lawset("optima-fit")
    for cell in json.loads(r.stdout)["cells"]:
        assert cell["pred_lr"] == pytest.approx(law.predict(
            "learning_rate", N=cell["N"], D=cell["D"], W=WIDTH[cell["N"]]))
    if importlib.util.find_spec("matplotlib") is None:
        return
    one_error_line(advisor("plot", plain, "--laws", "optima-fit", "--out", tmp_path / "a"),
                   "width W", "'h' column")
    assert not any((tmp_path / "a").glob("*.png"))
    r = advisor("plot", with_h, "--laws", "optima-fit", "--out", tmp_path / "b")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "b" / "laws.png").stat().st_size > 1000


def test_plot_compare_is_checked_before_the_fit(tmp_path):
    pytest.importorskip("matplotlib")
    grid = _grid_csv(tmp_path / "grid.csv",
                     loss=lambda lr, n: 3 + (math.log(lr / 3e-3)) ** 2 / 10 - math.log(n) / 50)
    r = advisor("plot", grid, "--out", tmp_path / "figs", "--compare", "nosuch")
    one_error_line(r, "unknown law set 'nosuch'")
    assert "fitting" not in r.stderr and not (tmp_path / "figs").exists()


# ---------------------------------------------------------------------------------------
# 10. Messages that say what and where; numbers rounded
# ---------------------------------------------------------------------------------------

@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_standard_output_is_named():
    with open("/dev/full", "w") as full:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        r = subprocess.run([sys.executable, "-m", "advisor.cli", "recommend", "--params",
                            "7e9"], stdout=full, stderr=subprocess.PIPE, text=True, env=env,
                           cwd=REPO, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: cannot write to standard output: No space left on device"


def test_row_errors_and_count_errors_say_where_and_what(tmp_path):
    csv_path = _grid_csv(tmp_path / "runs.csv", lr_override="fast")
    one_error_line(advisor("fit", csv_path, "--out", tmp_path / "l.yaml"),
                   f"{csv_path}, row 6", "'lr'")
    one_error_line(advisor("recommend", "--params", "7e9", "--base-width", "abc"),
                   "base-width", "width in channels")


def test_install_hints_cover_what_the_command_needs(tmp_path):
    r = advisor("calibrate", "ci", "--out", tmp_path / "o", block=("torch", "mup"))
    one_error_line(r, "pip install 'hp-advisor[calibrate]'", "pip install --no-deps mup==1.0.0")
    r = advisor("schedule", "predict", "--law", law_file(tmp_path), "--schedule", "cosine",
                "--steps", "1000", "--plot", tmp_path / "p.png", block=("matplotlib",))
    one_error_line(r, "pip install 'hp-advisor[plot]'", "--no-plot")


def test_recommend_writes_counts_as_whole_numbers():
    r = advisor("recommend", "--params", "7e9", "--format", "json")
    t = json.loads(r.stdout)["target"]
    assert t["params_total"] == 7_000_000_000 and isinstance(t["params_total"], int)
    assert isinstance(t["tokens"]["value"], int)
    assert len(f"{t['tokens']['value']:.0f}".rstrip("0")) <= 4      # 4 significant digits
    assert t["tokens_per_param"] == float(f"{t['tokens_per_param']:.4g}")
    text = advisor("recommend", "--params", "7e9").stdout
    assert "139272622563" not in text and "20.66845" not in text


# ---------------------------------------------------------------------------------------
# 11. A person at a terminal: a short table first; the depth note in every export
# ---------------------------------------------------------------------------------------

def _on_a_terminal(*args) -> str:
    """Run the CLI with standard output on a pseudo-terminal; what it printed."""
    main, sub = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="120")
    p = subprocess.Popen([sys.executable, "-m", "advisor.cli", *args], stdout=sub,
                         stderr=subprocess.PIPE, env=env, cwd=REPO)
    os.close(sub)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    p.wait(timeout=120)
    os.close(main)
    assert p.returncode == 0, p.stderr.read()
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_recommend_at_a_terminal_prints_a_short_table_first():
    out = _on_a_terminal("recommend", "--params", "7e9")
    lines = out.splitlines()
    assert len(lines) < 40
    assert "95% interval" in lines[2] and lines[3].startswith("peak LR")
    assert "warnings (" in out and "--format yaml" in lines[-1]
    # the full record is one option away, and a pipe still gets it by default
    assert _on_a_terminal("recommend", "--params", "7e9", "--format", "yaml").startswith("target:")
    r = advisor("recommend", "--params", "7e9")
    assert r.stdout.startswith("target:") and len(r.stdout.splitlines()) > 200


@pytest.mark.parametrize("fmt", ["yaml", "json", "nanogpt", "hf", "torchtitan"])
def test_the_depth_multiplier_says_when_it_applies_in_every_export(fmt):
    r = advisor("recommend", "--params", "7e9", "--format", fmt)
    assert r.returncode == 0, r.stderr
    text = " ".join((r.stdout + r.stderr).replace("#", " ").split())   # YAML/TOML wrapping
    said = text.split("multiply every residual branch")
    assert len(said) > 1
    for before in said[:-1]:
        assert "only with an LR transferred from a depth-scaled proxy" in before[-300:]
