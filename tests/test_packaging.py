"""A plain (non-editable) install from a wheel finds its recipes and answers `recommend`."""
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_in_a_fresh_virtualenv_recommends_7b(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(REPO)], check=True, capture_output=True)
    (wheel,) = wheels.glob("hp_advisor-*.whl")
    env_dir = tmp_path / "venv"
    # system site-packages only lends numpy/scipy/click/pyyaml if the base Python has them;
    # pip installs whatever is missing. Our own package comes from the wheel alone.
    venv.EnvBuilder(with_pip=True, system_site_packages=True).create(env_dir)
    py = env_dir / "bin" / "python"
    # without PYTHONPATH: a checkout on it (with the egg-info the wheel build leaves there)
    # would make pip think hp-advisor is installed already, and install nothing
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], check=True,
                   capture_output=True, cwd=tmp_path, env=env)
    where = subprocess.run([str(py), "-c", "import advisor, recipes; print(advisor.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert str(env_dir) in where.stdout, "advisor was not imported from the wheel install"
    r = subprocess.run([str(env_dir / "bin" / "advisor"), "recommend", "--params", "7e9",
                        "--format", "json"], cwd=tmp_path, env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert 1e-4 < json.loads(r.stdout)["learning_rate"]["value"] < 1e-3
    laws = subprocess.run([str(env_dir / "bin" / "advisor"), "laws", "--format", "json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert len(json.loads(laws.stdout)) >= 8
    # the core install has no torch: training commands say which extra they need
    helptext = subprocess.run([str(env_dir / "bin" / "advisor"), "--help"], cwd=tmp_path,
                              env=env, capture_output=True, text=True)
    assert helptext.returncode == 0 and "recommend" in helptext.stdout, helptext.stderr
    has_torch = subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode == 0
    if not has_torch:
        r = subprocess.run([str(env_dir / "bin" / "advisor"), "calibrate", "ci"], cwd=tmp_path,
                           env=env, capture_output=True, text=True)
        assert r.returncode == 2 and "calibrate" in r.stderr and "Traceback" not in r.stderr
