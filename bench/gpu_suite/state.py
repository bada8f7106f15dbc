"""What the suite has done so far, kept in ``DIR/state.json`` so that a rerun with the same
DIR keeps finished stages and resumes the others.

Per stage: status (``done`` | ``partial`` | ``failed`` | ``skipped``), the estimate and the
actual wall time of its last attempt (seconds), its figures, and a note. A ``done`` stage is
never rerun (delete its entry, or pass ``--redo NAME``, to redo it); ``partial`` and
``failed`` stages run again and pick up their own results stores. Every write is atomic
(temporary file, then rename), so a process killed at any moment leaves the last state.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

STATE_FILE = "state.json"
SCHEMA = "hp-advisor/gpu-suite-state/v1"


def _clean(x):
    """JSON has no NaN/inf: write them as null (a figure not measured)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as JSON atomically (NaN/inf become null)."""
    write_text(path, json.dumps(_clean(obj), indent=2, sort_keys=False, default=str) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write text atomically: a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_json(path: Path, default=None):
    path = Path(path)
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable ({exc}); remove it to start that part afresh") \
            from None


class SuiteState:
    """The state file of one suite directory."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / STATE_FILE
        raw = read_json(self.path, default=None)
        if raw is None:
            raw = {"schema": SCHEMA, "stages": {}, "calls": []}
        if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
            raise ValueError(f"{self.path}: not a gpu-suite state file (schema {SCHEMA})")
        self.data = raw

    def stage(self, name: str) -> dict:
        return self.data["stages"].get(name, {})

    def set_stage(self, name: str, **entry) -> None:
        cur = dict(self.data["stages"].get(name, {}))
        cur.update(entry)
        self.data["stages"][name] = cur
        self.save()

    def forget(self, name: str) -> None:
        self.data["stages"].pop(name, None)
        self.save()

    def add_call(self, call: dict) -> None:
        self.data["calls"].append(call)
        self.save()

    def save(self) -> None:
        write_json(self.path, self.data)
