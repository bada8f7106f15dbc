"""Issue 11, part A, through the real CLI in a subprocess: exit codes that tell the truth,
missing optional dependencies found before any work, output paths checked up front and
written carefully, inputs that mean what they say, and work bounded before it starts.

Missing modules are simulated by a meta-path finder installed in the child process before
the CLI runs (the module is really unimportable there); nothing in the command is mocked.
"""
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# Runs the CLI with some top-level modules made unimportable and, optionally, an address-space
# limit of N MiB above what the process holds after importing the modules it names.
_RUNNER = textwrap.dedent(r'''
    import importlib.abc, sys
    blocked = {m for m in sys.argv[1].split(",") if m}
    limit_mib, preload = sys.argv[2], [m for m in sys.argv[3].split(",") if m]

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Blocker())
    for m in preload:
        __import__(m)
    if limit_mib:
        import resource
        with open("/proc/self/status") as f:
            vm = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:"))
        lim = vm + (int(limit_mib) << 20)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    sys.argv = ["advisor"] + sys.argv[4:]
    from advisor.cli import main
    main()
''')


def advisor(*args, block=(), cwd=None, limit_mib=None, preload=(), umask=None, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1")
    env.pop("ADVISOR_DEBUG", None)
    pre = (lambda: os.umask(umask)) if umask is not None else None
    cmd = [sys.executable, "-c", _RUNNER, ",".join(block), str(limit_mib or ""),
           ",".join(preload), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=cwd or REPO, preexec_fn=pre)


def one_error_line(r, *needles):
    """Exit 2 with exactly one `error: ...` line on stderr that contains every needle."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture
def law_file(tmp_path):
    """A multi-power schedule law (constants in lr_scale units, of the authors' magnitude)."""
    p = tmp_path / "law.yaml"
    p.write_text(yaml.safe_dump({
        "schema": "hp-advisor/schedule-law/v1", "law": "multipower",
        "params": {"L0": 3.0, "A": 29.0, "alpha": 0.5, "B": 0.15, "C": 0.1, "beta": 0.6,
                   "gamma": 0.6},
        "lr_scale": 3e-4, "total_steps_fitted": 24000}))
    return p


@pytest.fixture
def store_dir(tmp_path):
    from advisor.runs.store import ResultsStore
    d = tmp_path / "sweep"
    ResultsStore.create(d).close()
    return d


# ---------------------------------------------------------------------------------------
# 1. Exit codes
# ---------------------------------------------------------------------------------------

FAIL_PLAN = """\
name: rel-fail
description: one tiny run that trains, one too large for the child's address-space limit
settings:
  family: proxy-llama
  data: stdlib
  depth: 1
  head_dim: 16
  base_width: 32
  seq_len: 32
  batch_size: 4
  tokens: 1280
  schedule: "wsd:warmup=2,cooldown=0.25,shape=1-sqrt"
  weight_decay: 0.0
  eval_interval: 5
  eval_sequences: 8
  seed: 0
  lr: 0.004
grid:
  parameterization: [mup]
  width: WIDTHS
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc")
def test_a_sweep_with_a_failed_run_exits_1_and_one_with_none_exits_0(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("mup")
    both = tmp_path / "both.yaml"
    both.write_text(FAIL_PLAN.replace("WIDTHS", "[32, 4096]"))
    small = tmp_path / "small.yaml"
    small.write_text(FAIL_PLAN.replace("WIDTHS", "[32]"))
    out = tmp_path / "out"
    # width 4096 needs ~0.8 GB of weights: the run fails for real (allocation refused)
    r = advisor("calibrate", both, "--out", out, "--device", "cpu", "--no-progress",
                limit_mib=400, preload=("torch", "mup"))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "1 failed" in r.stdout and "1 finished" in r.stdout
    # the same store, a plan of the finished run only: nothing failed, exit 0
    r = advisor("calibrate", small, "--out", out, "--device", "cpu", "--no-progress")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "(1 finished)" in r.stdout


def test_calibrate_help_says_which_exit_code_means_failed_runs():
    r = advisor("calibrate", "--help")
    assert r.returncode == 0
    assert "1 when" in r.stdout and "failed" in r.stdout


def test_usage_errors_and_help_keep_their_codes():
    assert advisor("--help").returncode == 0
    assert advisor("recommend").returncode == 2           # missing --params
    assert advisor("no-such-command").returncode == 2


# ---------------------------------------------------------------------------------------
# 2. Missing optional dependencies: found before any work, exact install command, exit 2
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dry", [False, True])
def test_calibrate_without_mup_stops_before_training(tmp_path, dry):
    out = tmp_path / "out"
    r = advisor("calibrate", "ci", "--out", out, "--device", "cpu", "--no-progress",
                *(["--dry-run"] if dry else []), block=("mup",))
    one_error_line(r, "mup", "pip install --no-deps mup==1.0.0")
    assert not (out / "results.sqlite").exists()


def test_calibrate_without_torch_names_the_extra(tmp_path):
    r = advisor("calibrate", "ci", "--out", tmp_path / "out", block=("torch",))
    one_error_line(r, "torch", "pip install 'hp-advisor[calibrate]'")


def test_check_spectral_without_mup_exits_2_with_the_command():
    r = advisor("check-spectral", "--steps", "1", block=("mup",))
    one_error_line(r, "pip install --no-deps mup==1.0.0")


def test_schedule_predict_without_matplotlib_writes_nothing(law_file, tmp_path):
    csv_path = tmp_path / "p.csv"
    r = advisor("schedule", "predict", "--law", law_file, "--schedule", "cosine",
                "--steps", "1000", "--csv", csv_path, "--plot", tmp_path / "p.png",
                block=("matplotlib",))
    one_error_line(r, "matplotlib", "pip install 'hp-advisor[plot]'")
    assert not csv_path.exists()
    # --no-plot needs no matplotlib
    r = advisor("schedule", "predict", "--law", law_file, "--schedule", "cosine",
                "--steps", "1000", "--csv", csv_path, "--no-plot", block=("matplotlib",))
    assert r.returncode == 0, r.stderr
    assert csv_path.is_file()


def test_results_plot_without_matplotlib(store_dir, tmp_path):
    r = advisor("results", store_dir, "--plot", tmp_path / "x.png", block=("matplotlib",))
    one_error_line(r, "pip install 'hp-advisor[plot]'")


# ---------------------------------------------------------------------------------------
# 3. Environment errors: the user's path, exit 2, before the work
# ---------------------------------------------------------------------------------------

def test_fit_checks_its_output_before_fitting(external_data, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = blocker / "dir" / "laws.yaml"
    t0 = time.perf_counter()
    r = advisor("fit", external_data / "steplaw_dense_lr_bs_loss.csv", "--out", out)
    one_error_line(r, str(out))
    assert "fitting" not in r.stderr
    assert time.perf_counter() - t0 < 30


@pytest.mark.parametrize("writer", [
    ["recommend", "--params", "7e9", "-o"],
    ["fit", "/nonexistent-results", "--out"],
    ["schedule", "predict", "--law", "LAW", "--schedule", "cosine", "--steps", "100",
     "--no-plot", "--csv"],
    ["schedule", "predict", "--law", "LAW", "--schedule", "cosine", "--steps", "100",
     "--csv", "OK.csv", "--plot"],
    ["schedule", "fit", "/nonexistent-curves", "--out"],
    ["results", "STORE", "--csv"],
    ["results", "STORE", "--plot"],
])
def test_every_writer_names_the_users_path_when_its_folder_is_a_file(writer, law_file,
                                                                     store_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = blocker / "x.out"
    args = [str(law_file) if a == "LAW" else str(store_dir) if a == "STORE" else
            str(tmp_path / a) if a == "OK.csv" else a for a in writer]
    r = advisor(*args, out)
    line = one_error_line(r, str(out))
    assert "internal error" not in line and ".tmp" not in line


def test_directory_arguments_are_checked_before_the_work(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    r = advisor("calibrate", "ci", "--out", blocker / "sweep", "--dry-run")
    one_error_line(r, str(blocker / "sweep"))
    r = advisor("plot", "/nonexistent-results", "--out", blocker / "figs")
    one_error_line(r, str(blocker / "figs"))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_read_only_output_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        r = advisor("recommend", "--params", "7e9", "-o", ro / "x.yaml")
        one_error_line(r, str(ro / "x.yaml"))
    finally:
        ro.chmod(0o755)


# ---------------------------------------------------------------------------------------
# 4. Writers: through symlinks, never over non-regular files, umask honoured
# ---------------------------------------------------------------------------------------

def test_a_symlink_is_written_through_to_its_target(tmp_path):
    target = tmp_path / "real.yaml"
    target.write_text("old\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    r = advisor("recommend", "--params", "7e9", "-o", link)
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "learning_rate" in target.read_text()
    # a dangling link creates its target
    dangling = tmp_path / "dangling.yaml"
    dangling.symlink_to(tmp_path / "new.yaml")
    assert advisor("recommend", "--params", "7e9", "-o", dangling).returncode == 0
    assert dangling.is_symlink() and (tmp_path / "new.yaml").is_file()


def test_png_and_csv_writers_follow_symlinks_too(law_file, tmp_path):
    png, csv_path = tmp_path / "real.png", tmp_path / "real.csv"
    png.write_bytes(b"")
    csv_path.write_text("")
    (tmp_path / "p.png").symlink_to(png)
    (tmp_path / "p.csv").symlink_to(csv_path)
    r = advisor("schedule", "predict", "--law", law_file, "--schedule", "cosine", "--steps",
                "1000", "--csv", tmp_path / "p.csv", "--plot", tmp_path / "p.png")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p.png").is_symlink() and (tmp_path / "p.csv").is_symlink()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert csv_path.read_text().startswith("step,lr,predicted_loss")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("writer", [
    ["recommend", "--params", "7e9", "-o"],
    ["fit", "/nonexistent-results", "--out"],
    ["schedule", "predict", "--law", "LAW", "--schedule", "cosine", "--steps", "100",
     "--no-plot", "--csv"],
    ["results", "STORE", "--csv"],
])
def test_a_fifo_is_refused_and_left_alone(writer, law_file, store_dir, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    args = [str(law_file) if a == "LAW" else str(store_dir) if a == "STORE" else a
            for a in writer]
    r = advisor(*args, fifo, timeout=60)
    one_error_line(r, str(fifo), "FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_directory_is_refused_by_writers_without_click_checks(law_file, tmp_path):
    d = tmp_path / "adir"
    d.mkdir()
    r = advisor("schedule", "predict", "--law", law_file, "--schedule", "cosine",
                "--steps", "100", "--no-plot", "--csv", d)
    one_error_line(r, str(d), "directory")
    assert d.is_dir() and not any(d.iterdir())


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_honour_the_umask(tmp_path, umask, mode):
    out = tmp_path / "x.yaml"
    r = advisor("recommend", "--params", "7e9", "-o", out, umask=umask)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == mode


def test_a_replaced_file_keeps_its_mode(tmp_path):
    out = tmp_path / "x.yaml"
    out.write_text("old\n")
    out.chmod(0o640)
    assert advisor("recommend", "--params", "7e9", "-o", out, umask=0o022).returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert "learning_rate" in out.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["x.yaml"]   # no temporary files left


# ---------------------------------------------------------------------------------------
# 5. Stores, empty law files, law-set names
# ---------------------------------------------------------------------------------------

def test_a_directory_named_results_sqlite_gets_a_clear_message(tmp_path):
    (tmp_path / "sweep" / "results.sqlite").mkdir(parents=True)
    r = advisor("results", tmp_path / "sweep")
    one_error_line(r, str(tmp_path / "sweep" / "results.sqlite"), "is a directory")


def test_giving_the_store_file_instead_of_its_folder(store_dir):
    r = advisor("results", store_dir / "results.sqlite")
    one_error_line(r, str(store_dir), "is a file")


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_an_empty_law_file_is_named(tmp_path, text):
    p = tmp_path / "empty.yaml"
    p.write_text(text)
    one_error_line(advisor("recommend", "--params", "7e9", "--laws", p), str(p), "empty")
    one_error_line(advisor("laws", "--show", p), str(p), "empty")


def test_shipped_names_do_not_depend_on_the_working_directory(tmp_path):
    (tmp_path / "porian").mkdir()
    (tmp_path / "step-law").write_text("not a law set")
    for law in ("porian", "step-law"):
        r = advisor("recommend", "--params", "7e10", "--law", law, "--format", "json",
                    cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    r = advisor("laws", "--show", "porian", cwd=tmp_path)
    assert r.returncode == 0 and "porian" in r.stdout


def test_a_path_is_a_path(tmp_path):
    r = advisor("recommend", "--params", "7e9", "--law", "./porian", cwd=tmp_path)
    one_error_line(r, "./porian")
    # a file of a non-shipped name without a suffix: the hint says how to read it
    (tmp_path / "mine").write_text("x")
    r = advisor("recommend", "--params", "7e9", "--law", "mine", cwd=tmp_path)
    one_error_line(r, "./mine")


# ---------------------------------------------------------------------------------------
# 6. Inputs
# ---------------------------------------------------------------------------------------

def _target(*args):
    import json
    r = advisor("recommend", "--format", "json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["target"]


@pytest.mark.parametrize("args", [
    ["recommend", "--params", "1,5B"],
    ["recommend", "--params", "7e9", "--tokens", "1,4T"],
    ["compare", "--params", "1,5B"],
    ["recommend", "--params", "7e9", "--seq-len", "4096.5"],
    ["recommend", "--params", "7e9", "--seq-len", "1"],
    ["recommend", "--params", "7e9", "--seq-len", "3"],
    ["recommend", "--params", "7e9", "--seq-len", "8,192"],
    ["compare", "--params", "7e9", "--seq-len", "8"],
    ["fit", "/nonexistent", "--out", "x.yaml", "--seq-len", "4"],
    ["evaluate", "--grid", "/nonexistent", "--law", "step-law", "--seq-len", "2048.5"],
])
def test_inputs_that_used_to_be_misread_are_refused(args, tmp_path):
    args = [str(tmp_path / a) if a == "x.yaml" else a for a in args]
    line = one_error_line(advisor(*args))
    assert ("params" in line or "tokens" in line or "seq-len" in line), line


def test_seq_len_k_is_1024_and_counts_stay_decimal():
    t = _target("--params", "7B", "--tokens", "1.4T", "--seq-len", "8k")
    assert t["seq_len"] == 8192
    assert t["params_total"] == 7e9 and t["tokens"]["value"] == 1.4e12
    assert _target("--params", "7e9", "--seq-len", "16")["seq_len"] == 16
    r = advisor("recommend", "--help")
    assert "k = 1024" in r.stdout


# ---------------------------------------------------------------------------------------
# 7. Bounds on work
# ---------------------------------------------------------------------------------------

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc")
def test_a_billion_step_prediction_is_refused_before_allocating(law_file, tmp_path):
    # the address-space limit keeps a regression from taking the machine's memory
    t0 = time.perf_counter()
    r = advisor("schedule", "predict", "--law", law_file, "--schedule", "cosine", "--steps",
                "1000000000", "--no-plot", "--csv", tmp_path / "p.csv", limit_mib=2048,
                preload=("numpy",))
    line = one_error_line(r, "would need about", "GiB")
    assert "available" in line
    assert time.perf_counter() - t0 < 30
    assert not (tmp_path / "p.csv").exists()
    r = advisor("schedule", "optimize", "--law", law_file, "--steps", "1000000000",
                limit_mib=2048, preload=("numpy",))
    one_error_line(r, "would need about")


def test_optimize_with_too_few_steps_for_the_default_warmup(law_file):
    line = one_error_line(advisor("schedule", "optimize", "--law", law_file, "--steps", "10"))
    assert "--warmup" in line and "None" not in line
    r = advisor("schedule", "optimize", "--law", law_file, "--steps", "10", "--warmup", "2")
    assert r.returncode == 0, r.stderr
    assert "best:" in r.stdout
    one_error_line(advisor("schedule", "optimize", "--law", law_file, "--steps", "10",
                           "--warmup", "10"), "--warmup")
