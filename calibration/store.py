"""The results store: one SQLite file per sweep directory (``DIR/results.sqlite``).

Torch-free: the fitting code and ``advisor results`` read it with numpy only.

Tables: ``runs`` (one row per run: its settings as JSON plus the summary columns),
``curves`` (one row per recorded point of a run), ``diagnostics`` (step, name, value rows a
training callback returned), ``meta`` (schema version). The database runs in WAL mode, and
a run is written in ONE transaction together with its curve and diagnostics, so a sweep
killed at any moment leaves either the whole run or nothing. Rows with status ``finished``
or ``diverged`` are final and are never overwritten; a ``failed`` row may be replaced by a
later attempt. A run's id is a hash of its settings (calibration.train.RunSpec.run_id), so
re-running the same plan skips what is already there.

Units: ``tokens`` and ``tokens_seen`` in tokens, ``batch_size`` in sequences, losses in
nats per token, ``wall_time_s`` in seconds.
"""
from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advisor.errors import AdvisorError

DB_NAME = "results.sqlite"
SCHEMA_VERSION = 1
FINAL = ("finished", "diverged")
STATUSES = ("finished", "diverged", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    settings TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('finished', 'diverged', 'failed')),
    error TEXT NOT NULL DEFAULT '',
    final_train_loss REAL,
    final_val_loss REAL,
    n_params INTEGER,
    n_params_non_embedding INTEGER,
    tokens_seen INTEGER,
    wall_time_s REAL,
    tokens_per_s REAL,
    device TEXT,
    recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS curves (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    lr REAL,
    train_loss REAL,
    val_loss REAL,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS diagnostics (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL
);
CREATE INDEX IF NOT EXISTS diagnostics_run ON diagnostics(run_id, step);
"""


@dataclass
class RunRecord:
    """One stored run (see the module docstring for units)."""

    run_id: str
    settings: dict
    status: str
    error: str = ""
    final_train_loss: float = math.nan
    final_val_loss: float = math.nan
    n_params: int = 0
    n_params_non_embedding: int = 0
    tokens_seen: int = 0
    wall_time_s: float = 0.0
    tokens_per_s: float = 0.0
    device: str = ""
    recorded_at: str = ""

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        for k in ("final_train_loss", "final_val_loss"):
            if d[k] is not None and not math.isfinite(d[k]):
                d[k] = None                      # JSON has no NaN
        return d


def _num(x):
    """NaN/inf -> NULL for storage."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _nan(x):
    return math.nan if x is None else float(x)


class ResultsStore:
    """A sweep's results in ``DIR/results.sqlite``."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self._conn = conn

    # Opening --------------------------------------------------------------------------
    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    @classmethod
    def open(cls, directory) -> "ResultsStore":
        """Open an existing store; AdvisorError if it is missing or not a valid store."""
        d = Path(directory)
        path = d / DB_NAME
        if not path.is_file():
            raise AdvisorError(f"no results store in {d} (expected {path})")
        try:
            conn = cls._connect(path)
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(check)
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not tables:                # created but killed before its schema was committed
                cls._init_schema(conn)
                tables = {"meta", "runs", "curves", "diagnostics"}
            if not {"meta", "runs", "curves", "diagnostics"} <= tables:
                raise sqlite3.DatabaseError("missing tables")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None or int(row[0]) != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"schema version {row and row[0]}")
        except sqlite3.DatabaseError as exc:
            raise AdvisorError(f"results store {path} is corrupt or not a results store "
                               f"({exc}); move it aside to start a new one") from None
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        return cls(path, conn)

    @classmethod
    def create(cls, directory) -> "ResultsStore":
        """Create a store in DIR (made if needed); an existing store is opened, never reset."""
        d = Path(directory)
        if (d / DB_NAME).exists():
            return cls.open(d)
        if d.exists() and not d.is_dir():
            raise AdvisorError(f"{d} exists and is not a directory")
        d.mkdir(parents=True, exist_ok=True)
        conn = cls._connect(d / DB_NAME)
        conn.execute("PRAGMA journal_mode = WAL")
        cls._init_schema(conn)
        return cls(d / DB_NAME, conn)

    @staticmethod
    def _init_schema(conn: sqlite3.Connection) -> None:
        """Create the tables in one transaction (idempotent)."""
        conn.execute("BEGIN IMMEDIATE")
        for stmt in _SCHEMA.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")

    @classmethod
    def open_or_create(cls, directory) -> "ResultsStore":
        return cls.create(directory)

    def close(self):
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # Writing --------------------------------------------------------------------------
    def record(self, run_id: str, settings: dict, status: str, *, curve: dict | None = None,
               diagnostics=(), error: str = "", final_train_loss=None, final_val_loss=None,
               n_params=0, n_params_non_embedding=0, tokens_seen=0, wall_time_s=0.0,
               tokens_per_s=0.0, device="") -> bool:
        """Write one run with its curve and diagnostics in a single transaction.

        Returns False (and writes nothing) when the run is already stored as finished or
        diverged: final results are never overwritten.
        """
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            row = c.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone()
            if row is not None and row[0] in FINAL:
                c.execute("ROLLBACK")
                return False
            if row is not None:
                c.execute("DELETE FROM curves WHERE run_id=?", (run_id,))
                c.execute("DELETE FROM diagnostics WHERE run_id=?", (run_id,))
                c.execute("DELETE FROM runs WHERE run_id=?", (run_id,))
            c.execute(
                "INSERT INTO runs (run_id, settings, status, error, final_train_loss, "
                "final_val_loss, n_params, n_params_non_embedding, tokens_seen, wall_time_s, "
                "tokens_per_s, device) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, json.dumps(settings, sort_keys=True), status, error,
                 _num(final_train_loss), _num(final_val_loss), int(n_params),
                 int(n_params_non_embedding), int(tokens_seen), float(wall_time_s),
                 float(tokens_per_s), str(device)))
            if curve:
                rows = zip(curve["step"], curve["tokens"], curve["lr"],
                           curve["train_loss"], curve["val_loss"])
                c.executemany("INSERT INTO curves VALUES (?,?,?,?,?,?)",
                              [(run_id, int(s), int(t), _num(lr), _num(tr), _num(v))
                               for s, t, lr, tr, v in rows])
            if diagnostics:
                c.executemany("INSERT INTO diagnostics VALUES (?,?,?,?)",
                              [(run_id, int(s), str(n), _num(v)) for s, n, v in diagnostics])
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return True

    def record_result(self, result) -> bool:
        """Store a calibration.train.RunResult (duck-typed: no torch import here)."""
        settings = result.spec.settings()
        if getattr(result, "arch", None):
            settings["arch"] = dict(result.arch)
        return self.record(
            result.spec.run_id, settings, result.status, curve=result.curve,
            diagnostics=result.diagnostics, error=result.error,
            final_train_loss=result.final_train_loss, final_val_loss=result.final_val_loss,
            n_params=result.n_params, n_params_non_embedding=result.n_params_non_embedding,
            tokens_seen=result.tokens_seen, wall_time_s=result.wall_time_s,
            tokens_per_s=result.tokens_per_s, device=result.device)

    # Reading --------------------------------------------------------------------------
    def final_ids(self) -> set[str]:
        """Ids of runs that need no re-run (finished or diverged)."""
        return {r[0] for r in self._conn.execute(
            "SELECT run_id FROM runs WHERE status IN ('finished', 'diverged')")}

    def runs(self, status: str | None = None) -> list[RunRecord]:
        q = ("SELECT run_id, settings, status, error, final_train_loss, final_val_loss, "
             "n_params, n_params_non_embedding, tokens_seen, wall_time_s, tokens_per_s, "
             "device, recorded_at FROM runs")
        args = ()
        if status is not None:
            if status not in STATUSES:
                raise AdvisorError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
            q += " WHERE status=?"
            args = (status,)
        out = []
        for r in self._conn.execute(q + " ORDER BY recorded_at, run_id", args):
            out.append(RunRecord(r[0], json.loads(r[1]), r[2], r[3], _nan(r[4]), _nan(r[5]),
                                 r[6] or 0, r[7] or 0, r[8] or 0, r[9] or 0.0, r[10] or 0.0,
                                 r[11] or "", r[12]))
        return out

    def curve(self, run_id: str) -> dict:
        """Arrays step, tokens, lr, train_loss, val_loss (NaN where not measured)."""
        rows = self._conn.execute(
            "SELECT step, tokens, lr, train_loss, val_loss FROM curves WHERE run_id=? "
            "ORDER BY step", (run_id,)).fetchall()
        cols = list(zip(*rows)) if rows else [()] * 5
        out = {}
        for name, col, dt in zip(("step", "tokens", "lr", "train_loss", "val_loss"), cols,
                                 (np.int64, np.int64, float, float, float)):
            if dt is float:
                out[name] = np.array([np.nan if v is None else v for v in col], dtype=float)
            else:
                out[name] = np.array(col, dtype=dt)
        return out

    def diagnostics(self, run_id: str) -> list[dict]:
        return [{"step": s, "name": n, "value": _nan(v)} for s, n, v in self._conn.execute(
            "SELECT step, name, value FROM diagnostics WHERE run_id=? ORDER BY step, rowid",
            (run_id,))]

    def steplaw_rows(self) -> list[dict]:
        """Every run as a row in Step Law's CSV layout (shared/data/external/
        steplaw_dense_lr_bs_loss.csv) plus our own columns; see the module docstring.

        h = width, ffnh = SwiGLU hidden size, numh = heads, numl = depth, lr = peak LR,
        bs = batch in sequences of 2048 tokens (Step Law's unit, fractional for us),
        ti = steps, loss = final train loss, smooth loss = mean train loss over the last
        10% of recorded points, D = training tokens, N = non-embedding parameters.
        """
        rows = []
        for r in self.runs():
            s = r.settings
            arch = s.get("arch") or _arch_from_settings(s)
            width, depth, seq = int(s["width"]), int(s["depth"]), int(s["seq_len"])
            ffn, n_heads = arch.get("ffn_hidden"), arch.get("heads")
            bs_tokens = int(s["batch_size"]) * seq
            D = int(s["tokens"])
            N = int(r.n_params_non_embedding)
            curve = self.curve(r.run_id)
            tl = curve["train_loss"][np.isfinite(curve["train_loss"])]
            smooth = float(np.mean(tl[-max(1, len(tl) // 10):])) if len(tl) else math.nan
            steps = D // bs_tokens
            rows.append({
                "h": width, "ffnh": ffn, "numh": n_heads, "numl": depth, "lr": s["lr"],
                "bs": bs_tokens / 2048, "ti": steps, "loss": r.final_train_loss,
                "smooth loss": smooth, "exp_name": r.run_id, "D": D, "N": N,
                "D/N": D / N if N else math.nan,
                "bs_tokens": bs_tokens, "seq_len": seq, "weight_decay": s["weight_decay"],
                "status": r.status, "seed": s["seed"], "schedule": s["schedule"],
                "width": width, "val_loss": r.final_val_loss,
                "parameterization": s.get("parameterization", ""),
                "optimizer": optimizer_label(s),
            })
        return rows


def optimizer_label(settings: dict) -> str:
    """A run's optimizer as one word: muadamw, adamw, or muon-<width convention>."""
    opt = settings.get("optimizer", "muadamw")
    if opt == "muon":
        return f"muon-{settings.get('muon_convention', 'spectral')}"
    return str(opt)


def _arch_from_settings(s: dict) -> dict:
    """Heads and MLP size from a run's settings and its family file (when a run was stored
    without them), the way calibration.model.ProxyConfig derives them; torch-free."""
    from advisor.yamlio import read_yaml_file
    from calibration.plan import PLANS_DIR

    kw = {}
    fam = PLANS_DIR.parent / "families" / f"{s.get('family', 'proxy-llama')}.yaml"
    if fam.is_file():
        kw.update((read_yaml_file(fam, "family file") or {}).get("architecture") or {})
    kw.update(s.get("model") or {})
    width = int(s["width"])
    heads = kw.get("n_heads") or width // int(kw.get("head_dim", 64))
    return {"heads": heads, "ffn_hidden": int(round(float(kw.get("ffn_mult", 2.75)) * width))}


STEPLAW_COLUMNS = ["h", "ffnh", "numh", "numl", "lr", "bs", "ti", "loss", "smooth loss",
                   "exp_name", "D", "N", "D/N", "bs_tokens", "seq_len", "weight_decay",
                   "status", "seed", "schedule", "width", "val_loss", "parameterization",
                   "optimizer"]


def write_steplaw_csv(rows: list[dict], path) -> None:
    """Write rows in STEPLAW_COLUMNS order, atomically (temp file + rename)."""
    import csv
    import os
    import tempfile

    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=STEPLAW_COLUMNS)
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if isinstance(r[k], float) and math.isnan(r[k]) else r[k])
                            for k in STEPLAW_COLUMNS})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
