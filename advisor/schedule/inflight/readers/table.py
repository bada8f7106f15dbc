"""CSV (also a W&B "Export CSV" of a panel) and JSON-lines logs.

CSV: a header row naming the columns (see :data:`advisor.schedule.inflight.log.KEYS`); W&B exports
name them "<run name> - <metric>" and add "__MIN"/"__MAX" columns, which are skipped. An
empty cell means "not logged at this step" (W&B writes one row per step of any metric);
"nan" is a logged NaN. JSONL: one JSON object per line, as many loggers write; lines
without a loss are skipped (eval lines, for instance).
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from advisor.errors import AdvisorError
from advisor.schedule.inflight.log import OPTIONAL, RunLog, make_log, pick_key, to_float


def _columns(rows_keys, keys, where):
    out = {}
    for q in ("step", "loss") + OPTIONAL:
        out[q] = pick_key(rows_keys, q, keys.get(q), where)
    if out["step"] is None:
        raise AdvisorError(f"{where}: no step column (looked for step, _step, global_step, "
                           f"iter); name it with --step-key")
    if out["loss"] is None:
        raise AdvisorError(f"{where}: no loss column (looked for loss, train_loss, train/loss, "
                           f"...); name it with --loss-key")
    return out


def run_log(records, cols, path: Path, fmt: str) -> RunLog:
    """The :class:`RunLog` of ``(where, record)`` pairs read from ``path`` in format ``fmt``,
    with ``cols`` naming the step, loss and optional columns (the readers' one builder)."""
    steps, loss, missing = [], [], []
    opt = {q: [] for q in OPTIONAL}
    for where, rec in records:
        try:
            v = rec.get(cols["loss"])
            missing.append(v is None or (isinstance(v, str) and not v.strip()))
            loss.append(math.nan if missing[-1] else to_float(v))
            s = to_float(rec.get(cols["step"]))
            steps.append(s)
            for q in OPTIONAL:
                opt[q].append(to_float(rec.get(cols[q])) if cols[q] else math.nan)
        except (ValueError, TypeError):
            raise AdvisorError(f"{path}, {where}: a value is not a number") from None
        if not missing[-1] and math.isnan(s):
            raise AdvisorError(f"{path}, {where}: a loss without a step")
    got = {q: (opt[q] if cols[q] else None) for q in OPTIONAL}
    return make_log(steps, loss, got["lr"], got["grad_norm"], logit=got["logit"],
                    source=str(path), fmt=fmt, keys={k: v for k, v in cols.items() if v},
                    missing=missing)


def read_csv(path: Path, keys: dict) -> RunLog:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise AdvisorError(f"cannot read {path}: {exc}") from None
    if len(rows) < 2:
        raise AdvisorError(f"{path}: no rows below the header")
    header = [h.strip() for h in rows[0]]
    cols = _columns(header, keys, str(path))
    recs = []
    for i, row in enumerate(rows[1:], start=2):
        if not row or all(not x.strip() for x in row):
            continue
        recs.append((f"line {i}", dict(zip(header, row))))
    fmt = "wandb" if any(" - " in h for h in header) else "csv"
    return run_log(recs, cols, path, fmt)


def read_jsonl(path: Path, keys: dict) -> RunLog:
    recs, names = [], {}
    try:
        with open(path, encoding="utf-8") as fh:
            for i, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    raise AdvisorError(f"{path}, line {i}: not a JSON object") from None
                if not isinstance(obj, dict):
                    raise AdvisorError(f"{path}, line {i}: not a JSON object")
                names.update(dict.fromkeys(obj))
                recs.append((f"line {i}", obj))
    except (OSError, UnicodeDecodeError) as exc:
        raise AdvisorError(f"cannot read {path}: {exc}") from None
    if not recs:
        raise AdvisorError(f"{path}: empty log")
    cols = _columns(list(names), keys, str(path))
    return run_log(recs, cols, path, "jsonl")
