"""Training-log readers, one module per format, and the choice of reader.

Each module defines ``read(path, keys) -> RunLog`` (``keys``: {quantity: key chosen by the
user, or None}); :data:`READERS` maps a format name to it. :func:`detect` picks a format
from the file itself: a folder or ``*tfevents*`` file -> tensorboard; JSON with
``log_history`` -> hf; a JSON object per line -> jsonl; a step line (a step and a loss)
among the first 50 lines -> text; a CSV header -> csv (a W&B export is a CSV: its
"<run> - <metric>" columns are read by the same reader); else text.
"""
from __future__ import annotations

import json
from pathlib import Path

from advisor.errors import AdvisorError
from advisor.schedule.inflight.log import RunLog, strip_ansi
from advisor.schedule.inflight.readers import hf, table, tensorboard, text

READERS = {"csv": table.read_csv, "wandb": table.read_csv, "jsonl": table.read_jsonl,
           "hf": hf.read, "tensorboard": tensorboard.read, "text": text.read}
FORMATS = ("auto",) + tuple(READERS)


def detect(path: Path) -> str:
    if path.is_dir():
        if (path / "trainer_state.json").is_file():
            return "hf"
        return "tensorboard"
    if "tfevents" in path.name:
        return "tensorboard"
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise AdvisorError(f"cannot read {path}: {exc.strerror}") from None
    s = head.lstrip()
    if path.suffix == ".json" or s.startswith("{"):
        first = s.splitlines()[0] if s else ""
        try:
            obj = json.loads(first)
            if isinstance(obj, dict) and "log_history" not in obj:
                return "jsonl"
        except json.JSONDecodeError:
            pass
        return "hf"
    if path.suffix == ".jsonl":
        return "jsonl"
    lines = [strip_ansi(line) for line in s.splitlines()[:50]]
    first = lines[0] if lines else ""
    if any(text.STEP.search(line) and text.LOSS.search(line) for line in lines):
        # "iter 10: loss 3.9, time ..." and torchtitan's "tps: 1,024" have commas too, and
        # a trainer's console prints other lines (config, banners) before its first step
        return "text"
    if "," in first and not any(ch.isdigit() for ch in first.split(",")[0][:1]):
        return "csv"
    return "text"


def read_log(path, fmt: str = "auto", keys: dict | None = None) -> RunLog:
    """Read a training log (a file, or a TensorBoard folder / HF checkpoint folder)."""
    p = Path(path)
    if not p.exists():
        raise AdvisorError(f"no such log: {path}")
    if fmt not in FORMATS:
        raise AdvisorError(f"unknown log format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = detect(p)
    if p.is_dir() and fmt == "hf":
        p = p / "trainer_state.json"
    if p.is_dir() and fmt != "tensorboard":
        raise AdvisorError(f"{path} is a folder; a {fmt} log is a file")
    return READERS[fmt](p, dict(keys or {}))
