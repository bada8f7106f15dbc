"""Hugging Face Trainer's ``trainer_state.json`` (in every ``checkpoint-*`` folder).

Its ``log_history`` is a list of dicts, one per logging event: training entries carry
``step``, ``loss``, ``learning_rate``, ``grad_norm`` (and ``epoch``); evaluation entries
carry ``eval_loss`` and no ``loss``; the last entry of a finished run is a summary with
``train_loss`` and no ``loss``. Only entries with ``loss`` are read. ``max_steps`` is the
run's planned horizon and is kept as ``RunLog.keys['max_steps']``.
"""
from __future__ import annotations

import json
from pathlib import Path

from advisor.errors import AdvisorError
from advisor.schedule.inflight.log import OPTIONAL, RunLog, pick_key
from advisor.schedule.inflight.readers.table import run_log


def read(path: Path, keys: dict) -> RunLog:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise AdvisorError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise AdvisorError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    hist = doc.get("log_history") if isinstance(doc, dict) else None
    if not isinstance(hist, list) or not all(isinstance(e, dict) for e in hist):
        raise AdvisorError(f"{path}: no log_history list (not a trainer_state.json)")
    names = {}
    for e in hist:
        names.update(dict.fromkeys(e))
    cols = {q: pick_key(list(names), q, keys.get(q), str(path))
            for q in ("step", "loss") + OPTIONAL}
    if cols["step"] is None or cols["loss"] is None:
        raise AdvisorError(f"{path}: log_history has no training loss entries (step, loss)")
    recs = [(f"log_history[{i}]", e) for i, e in enumerate(hist) if cols["loss"] in e]
    log = run_log(recs, cols, path, "hf")
    ms = doc.get("max_steps")
    if isinstance(ms, int) and ms > 0:
        log.keys["max_steps"] = ms
    return log
