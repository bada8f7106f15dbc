"""The results store: one SQLite file per sweep directory (``DIR/results.sqlite``).

Torch-free: the fitting code and ``advisor results`` read it with numpy only.

Tables: ``runs`` (one row per run: its settings as JSON plus the summary columns),
``curves`` (one row per recorded point of a run), ``diagnostics`` (step, name, value rows a
training callback returned), ``meta`` (schema version), ``claims`` (the lease a worker holds
on a run while it trains it: owner, heartbeat, expiry) and ``attempts`` (one row per
training start: who, when, and how it ended; an attempt whose worker died stays open).
Workers that share a store claim each run before training it (:meth:`ResultsStore.claim`),
so they split the work instead of repeating it; see docs/calibration-store.md. The database runs in WAL mode, and
a run is written in ONE transaction together with its curve and diagnostics, so a sweep
killed at any moment leaves either the whole run or nothing. Rows with status ``finished``
or ``diverged`` are final and are never overwritten; a ``failed`` row may be replaced by a
later attempt. A run's id is a hash of its settings (advisor.specs.runspec.RunSpec.run_id), so
re-running the same plan skips what is already there.

Each run row carries its conventions (``advisor.specs.conventions.Conventions`` as JSON: LR
convention, muP base width and depth, depth exponent, weight-decay width rule, optimizer, Muon
convention, sequence length), taken from its settings and proxy model when it is recorded;
schema version 3 added the column, and a run stored before it gets them derived from its
settings when it is read.

Units: ``tokens`` and ``tokens_seen`` in tokens, ``batch_size`` in sequences, losses in
nats per token, ``wall_time_s`` (the training steps) and ``startup_s`` (model build, compile,
first-step warm-up) in seconds, claim and attempt times in seconds since the Unix epoch.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
import json
import math
import os
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advisor.errors import AdvisorError
from advisor.specs.conventions import STEPLAW_SEQ_LEN, Conventions, of_run
from advisor.specs.runspec import RunSpec

DB_NAME = "results.sqlite"
SCHEMA_VERSION = 3
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
    recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    startup_s REAL,
    conventions TEXT
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

# Added in schema version 2 (also what a version-1 store gains when it is opened).
_SCHEMA_V2 = """
CREATE TABLE IF NOT EXISTS claims (
    run_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    origin TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    heartbeat REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
    attempt INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    status TEXT,
    took_over TEXT
);
CREATE INDEX IF NOT EXISTS attempts_run ON attempts(run_id, started_at);
"""

# A lease lasts this long without a heartbeat ($ADVISOR_LEASE_TTL_S overrides); the owner's
# heartbeat renews it every quarter of that. Seconds.
LEASE_TTL_S = 60.0


def lease_ttl_s() -> float:
    """The lease length in seconds: $ADVISOR_LEASE_TTL_S, else LEASE_TTL_S."""
    env = os.environ.get("ADVISOR_LEASE_TTL_S")
    if not env:
        return LEASE_TTL_S
    try:
        v = float(env)
    except ValueError:
        v = math.nan
    if not math.isfinite(v) or v < 1:
        raise AdvisorError(f"ADVISOR_LEASE_TTL_S must be a number of seconds >= 1, got {env!r}")
    return v


def new_owner_id() -> str:
    """A worker's id: ``host:pid:uuid`` (the uuid tells apart two lives of one pid)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


@functools.lru_cache(maxsize=1)
def _origin() -> str:
    """What makes a pid meaningful: this boot of this kernel and this pid namespace. Two
    containers with the same host name but their own pid namespaces have different origins,
    so neither judges the other's workers by pid."""
    parts = [socket.gethostname()]
    try:
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        pass
    return "|".join(parts)


def pid_alive(pid: int) -> bool:
    """Is process ``pid`` of this pid namespace running (a zombie counts as dead)?"""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True              # someone else's process: alive
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def owner_alive(owner: str, origin: str, my_origin: str) -> bool:
    """False only when the owner certainly died: it ran where this process runs (same
    origin) and its pid is gone. Elsewhere only its lease's expiry can tell."""
    if origin != my_origin:
        return True
    try:
        pid = int(owner.split(":")[-2])
    except (IndexError, ValueError):
        return True
    return pid_alive(pid)


@dataclass(kw_only=True)
class RunMetrics:
    """What a run measured, as the store keeps it (units in the module docstring). Shared by
    :class:`RunRecord` (a stored run) and ``calibration.train.runtime.RunResult`` (a run being
    trained), so the two cannot drift apart."""

    error: str = ""
    final_train_loss: float = math.nan
    final_val_loss: float = math.nan
    n_params: int = 0
    n_params_non_embedding: int = 0
    tokens_seen: int = 0
    wall_time_s: float = 0.0         # seconds in training steps
    tokens_per_s: float = 0.0        # tokens per second of those steps
    device: str = ""


@dataclass
class RunRecord(RunMetrics):
    """One stored run: its id, settings and status, then :class:`RunMetrics` (keywords)."""

    run_id: str
    settings: dict
    status: str
    recorded_at: str = ""
    startup_s: float = math.nan      # NaN for runs stored before it was measured
    conventions: Conventions | None = None   # None: the settings do not build a run

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["conventions"] = None if self.conventions is None else self.conventions.to_dict()
        for k in ("final_train_loss", "final_val_loss", "startup_s"):
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


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if SQLite has not already (it does after a full disk
    or an I/O error, and a second ROLLBACK would hide that error behind its own)."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass


@contextmanager
def _immediate(conn: sqlite3.Connection):
    """One write transaction (BEGIN IMMEDIATE ... COMMIT), rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


class StoreError(AdvisorError):
    """SQLite could not use a results store; the message names the cause and what to do."""


# SQLite's primary result codes (https://www.sqlite.org/rescode.html) -> cause and advice.
_SQLITE_CAUSES = {
    "SQLITE_FULL": ("the disk is full", "free space on its file system and run the same "
                    "command again; the runs stored so far are kept"),
    "SQLITE_READONLY": ("it is read-only here (file permissions or a read-only file system)",
                        "run the command where the store is writable, or copy the sweep "
                        "folder somewhere writable; its results are intact"),
    "SQLITE_BUSY": ("another process has held it locked for over a minute",
                    "wait for that process (another sweep or a writer) and run again"),
    "SQLITE_LOCKED": ("another connection holds a lock on it",
                      "wait for that process and run again"),
    "SQLITE_CANTOPEN": ("it cannot be opened (permissions, or its folder's file system)",
                        "check that this user can read the folder and the file"),
    "SQLITE_IOERR": ("an I/O error occurred (a failing disk, a full or read-only file "
                     "system, or a network file system without locking)",
                     "check the disk and its free space, then run again"),
    "SQLITE_PERM": ("access was denied", "check the file's permissions"),
    "SQLITE_CORRUPT": ("it is corrupt", "move it aside to start a new one"),
    "SQLITE_NOTADB": ("it is not an SQLite database (corrupt, or another file)",
                      "move it aside to start a new one"),
}


def _sqlite_code(exc: sqlite3.Error) -> str:
    """SQLite's primary result code name for ``exc`` (from the error code where Python has
    it, else from SQLite's standard message text)."""
    name = getattr(exc, "sqlite_errorname", None)
    if name:
        for code in _SQLITE_CAUSES:
            if name == code or name.startswith(code + "_"):
                return code
    text = str(exc).lower()
    for needle, code in (("disk is full", "SQLITE_FULL"), ("readonly", "SQLITE_READONLY"),
                         ("read-only", "SQLITE_READONLY"), ("is locked", "SQLITE_BUSY"),
                         ("unable to open", "SQLITE_CANTOPEN"), ("i/o error", "SQLITE_IOERR"),
                         ("malformed", "SQLITE_CORRUPT"), ("not a database", "SQLITE_NOTADB"),
                         ("missing tables", "SQLITE_NOTADB"), ("schema version", "SQLITE_NOTADB"),
                         ("quick_check", "SQLITE_CORRUPT")):
        if needle in text:
            return code
    if type(exc) is sqlite3.DatabaseError:
        return "SQLITE_CORRUPT"
    return ""


def _no_space_left(path) -> bool:
    """Is the file system that holds ``path`` out of space for this user?"""
    try:
        st = os.statvfs(Path(path).parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def sqlite_error(exc: sqlite3.Error, path, action: str) -> StoreError:
    """One line for an SQLite error on the store at ``path`` while ``action`` (open, create,
    write): its cause (disk full, read-only, locked, corrupt, ...) and the advice that fits.
    Only a store that SQLite itself finds corrupt or not a database is called corrupt."""
    code = _sqlite_code(exc)
    if code in ("SQLITE_IOERR", "SQLITE_CANTOPEN") and _no_space_left(path):
        code = "SQLITE_FULL"       # SQLite reports a full disk as an I/O error at times
    cause, advice = _SQLITE_CAUSES.get(code, ("SQLite failed", "run again; if it persists, "
                                              "set ADVISOR_DEBUG=1 and report it"))
    verb = {"open": "cannot open", "create": "cannot create", "write": "cannot write to"}[action]
    return StoreError(f"{verb} results store {path}: {cause} ({exc}); {advice}")


class ResultsStore:
    """A sweep's results in ``DIR/results.sqlite``."""

    readonly = False

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self._conn = conn

    # Opening --------------------------------------------------------------------------
    @staticmethod
    def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
        """A connection to ``path``. ``readonly``: SQLite's ``mode=ro`` (it never writes the
        file, nor creates it); where even that cannot open (a WAL store on a read-only file
        system, its -shm file gone), ``immutable=1``: nobody can write there either."""
        if not readonly:
            conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None)
            conn.execute("PRAGMA busy_timeout = 60000")
            conn.execute("PRAGMA foreign_keys = ON")
            return conn
        from urllib.parse import quote

        uri = "file:" + quote(str(Path(path).resolve()))
        try:
            conn = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=60.0,
                                   isolation_level=None)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            if os.access(Path(path).parent, os.W_OK) and os.access(path, os.W_OK):
                raise
            conn = sqlite3.connect(uri + "?immutable=1", uri=True, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 60000")
        return conn

    @classmethod
    def open(cls, directory, readonly: bool = False) -> "ResultsStore":
        """Open an existing store; AdvisorError if it is missing or not a valid store, or
        when SQLite cannot use it (:func:`sqlite_error`: disk full, read-only, locked,
        corrupt, each with its advice).

        ``readonly``: for readers (summaries, fits): nothing is written to the file, not even
        its schema or an upgrade of an older one, so a store on a read-only file system
        reads as it is, and a 0-byte store (created, then killed before its schema was
        written) reads as empty."""
        d = Path(directory)
        path = d / DB_NAME
        if path.is_dir():
            raise AdvisorError(f"{path} is a directory, not a results store file; move it "
                               f"aside (a results store is the file {DB_NAME} in {d})")
        if d.is_file():
            raise AdvisorError(f"{d} is a file; give the sweep directory that holds "
                               f"{DB_NAME}" + (f" ({d.parent})" if d.name == DB_NAME else ""))
        if not path.is_file():
            raise AdvisorError(f"no results store in {d} (expected {path})")
        conn = None
        try:
            conn = cls._connect(path, readonly)
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(check)
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not tables:                # created but killed before its schema was committed
                if readonly:
                    conn.close()
                    conn = sqlite3.connect(":memory:", isolation_level=None)
                cls._init_schema(conn)
                tables = {"meta", "runs", "curves", "diagnostics"}
            if not {"meta", "runs", "curves", "diagnostics"} <= tables:
                raise sqlite3.DatabaseError("missing tables")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row is not None and str(row[0]).isdigit() else None
            if version is not None and version > SCHEMA_VERSION:
                conn.close()
                raise AdvisorError(f"results store {path} has schema version {version}, newer "
                                   f"than this hp-advisor's {SCHEMA_VERSION}: upgrade hp-advisor")
            if version not in range(1, SCHEMA_VERSION + 1):
                raise sqlite3.DatabaseError(f"schema version {row and row[0]}")
            if version < SCHEMA_VERSION and not readonly:
                try:
                    cls._migrate(conn)
                except sqlite3.OperationalError as exc:
                    conn.close()
                    raise AdvisorError(f"results store {path} has schema version {version} and "
                                       f"could not be upgraded to {SCHEMA_VERSION} in place "
                                       f"({exc}); open it once where it is writable") from None
            if not readonly and conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            if not _sqlite_code(exc):
                raise
            raise sqlite_error(exc, path, "open") from None
        store = cls(path, conn)
        store.readonly = readonly
        return store

    @classmethod
    def create(cls, directory) -> "ResultsStore":
        """Create a store in DIR (made if needed); an existing store is opened, never reset."""
        d = Path(directory)
        if (d / DB_NAME).exists():
            return cls.open(d)
        if d.exists() and not d.is_dir():
            raise AdvisorError(f"{d} exists and is not a directory")
        d.mkdir(parents=True, exist_ok=True)
        try:
            conn = cls._connect(d / DB_NAME)
            conn.execute("PRAGMA journal_mode = WAL")
            cls._init_schema(conn)
        except sqlite3.Error as exc:
            if not _sqlite_code(exc):
                raise
            raise sqlite_error(exc, d / DB_NAME, "create") from None
        return cls(d / DB_NAME, conn)

    @staticmethod
    def _init_schema(conn: sqlite3.Connection) -> None:
        """Create the tables in one transaction (idempotent)."""
        with _immediate(conn):
            for stmt in (_SCHEMA + _SCHEMA_V2).split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                         (str(SCHEMA_VERSION),))

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        """Bring an older store to the current version in one transaction: version 2 added
        the ``startup_s`` column (NULL for old runs: not measured) and the claims and
        attempts tables, version 3 the ``conventions`` column (NULL for old runs: derived
        from their settings when read). Safe when several processes open the same old store
        at once (the version is re-read under the write lock)."""
        with _immediate(conn):
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            cols = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
            if int(row[0]) < 2:
                if "startup_s" not in cols:
                    conn.execute("ALTER TABLE runs ADD COLUMN startup_s REAL")
                for stmt in _SCHEMA_V2.split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
            if int(row[0]) < 3:
                if "conventions" not in cols:
                    conn.execute("ALTER TABLE runs ADD COLUMN conventions TEXT")
                conn.execute("UPDATE meta SET value=? WHERE key='schema_version'",
                             (str(SCHEMA_VERSION),))

    @classmethod
    def open_or_create(cls, directory) -> "ResultsStore":
        return cls.create(directory)

    def close(self):
        self._conn.close()

    @contextmanager
    def _writing(self):
        """One write transaction on this store; an SQLite error names its cause (disk full,
        read-only, locked, ...) with what to do, as an AdvisorError."""
        try:
            with _immediate(self._conn):
                yield
        except sqlite3.Error as exc:
            if _sqlite_code(exc):
                raise sqlite_error(exc, self.path, "write") from None
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # Writing --------------------------------------------------------------------------
    def record(self, run_id: str, settings: dict, status: str, *, curve: dict | None = None,
               diagnostics=(), error: str = "", final_train_loss=None, final_val_loss=None,
               n_params=0, n_params_non_embedding=0, tokens_seen=0, wall_time_s=0.0,
               tokens_per_s=0.0, device="", startup_s=None, owner: str | None = None,
               conventions: Conventions | None = None) -> bool:
        """Write one run with its curve and diagnostics in a single transaction.

        Returns False (and writes no run) when the run is already stored as finished or
        diverged: final results are never overwritten. ``owner``: the worker that trained
        it; its attempt is closed with ``status`` and its claim released in the same
        transaction. ``conventions``: the run's (default: derived from ``settings``).
        """
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        if conventions is None:
            conventions = conventions_of(settings)
        conv_json = None if conventions is None else json.dumps(conventions.to_dict(),
                                                                sort_keys=True)
        c = self._conn
        with self._writing():
            if owner is not None:
                c.execute("UPDATE attempts SET ended_at=?, status=? WHERE run_id=? AND owner=? "
                          "AND ended_at IS NULL", (time.time(), status, run_id, owner))
                c.execute("DELETE FROM claims WHERE run_id=? AND owner=?", (run_id, owner))
            row = c.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone()
            if row is not None and row[0] in FINAL:
                return False
            if row is not None:
                c.execute("DELETE FROM curves WHERE run_id=?", (run_id,))
                c.execute("DELETE FROM diagnostics WHERE run_id=?", (run_id,))
                c.execute("DELETE FROM runs WHERE run_id=?", (run_id,))
            c.execute(
                "INSERT INTO runs (run_id, settings, status, error, final_train_loss, "
                "final_val_loss, n_params, n_params_non_embedding, tokens_seen, wall_time_s, "
                "tokens_per_s, device, startup_s, conventions) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, json.dumps(settings, sort_keys=True), status, error,
                 _num(final_train_loss), _num(final_val_loss), int(n_params),
                 int(n_params_non_embedding), int(tokens_seen), float(wall_time_s),
                 float(tokens_per_s), str(device), _num(startup_s), conv_json))
            if curve:
                rows = zip(curve["step"], curve["tokens"], curve["lr"],
                           curve["train_loss"], curve["val_loss"])
                c.executemany("INSERT INTO curves VALUES (?,?,?,?,?,?)",
                              [(run_id, int(s), int(t), _num(lr), _num(tr), _num(v))
                               for s, t, lr, tr, v in rows])
            if diagnostics:
                c.executemany("INSERT INTO diagnostics VALUES (?,?,?,?)",
                              [(run_id, int(s), str(n), _num(v)) for s, n, v in diagnostics])
        return True

    def record_result(self, result, owner: str | None = None) -> bool:
        """Store a calibration.train.runtime.RunResult (duck-typed: no torch import here)."""
        settings = result.spec.settings()
        if getattr(result, "arch", None):
            settings["arch"] = dict(result.arch)
        return self.record(
            result.spec.run_id, settings, result.status, curve=result.curve,
            diagnostics=result.diagnostics, error=result.error,
            final_train_loss=result.final_train_loss, final_val_loss=result.final_val_loss,
            n_params=result.n_params, n_params_non_embedding=result.n_params_non_embedding,
            tokens_seen=result.tokens_seen, wall_time_s=result.wall_time_s,
            tokens_per_s=result.tokens_per_s, device=result.device,
            startup_s=getattr(result, "startup_s", None), owner=owner)

    # Sharing the work: leases -----------------------------------------------------------
    def claim(self, run_ids, owner: str, ttl_s: float, since: float) -> tuple[list, set, set]:
        """Claim, in one transaction, those of ``run_ids`` nobody else is training.

        A run is skipped as *done* when it is stored as finished or diverged, or when an
        attempt at it that started at or after ``since`` (seconds since the epoch: when this
        sweep began) has ended (e.g. it failed in another worker: it is retried by the next
        sweep, not by every worker of this one). It is skipped as *held* when another owner's
        lease on it is alive: unexpired, and that owner is not known to be dead (same host
        and pid namespace, pid gone). Otherwise it is claimed for ``owner`` for ``ttl_s``
        seconds (a dead or expired lease is taken over) and an attempt row is opened.

        Returns (claimed ids in the given order, held ids, done ids).
        """
        now = time.time()
        mine = _origin()
        claimed, held, done = [], set(), set()
        c = self._conn
        with self._writing():
            for rid in run_ids:
                row = c.execute("SELECT status FROM runs WHERE run_id=?", (rid,)).fetchone()
                if row is not None and row[0] in FINAL:
                    done.add(rid)
                    continue
                if c.execute("SELECT 1 FROM attempts WHERE run_id=? AND started_at>=? AND "
                             "ended_at IS NOT NULL LIMIT 1", (rid, since)).fetchone():
                    done.add(rid)
                    continue
                lease = c.execute("SELECT owner, origin, expires FROM claims WHERE run_id=?",
                                  (rid,)).fetchone()
                took_over = None
                if lease is not None:
                    if lease[0] == owner:
                        claimed.append(rid)
                        continue
                    if lease[2] > now and owner_alive(lease[0], lease[1], mine):
                        held.add(rid)
                        continue
                    took_over = lease[0]
                c.execute("INSERT OR REPLACE INTO claims VALUES (?,?,?,?,?,?)",
                          (rid, owner, mine, now, now, now + ttl_s))
                c.execute("INSERT INTO attempts (run_id, owner, started_at, took_over) "
                          "VALUES (?,?,?,?)", (rid, owner, now, took_over))
                claimed.append(rid)
        return claimed, held, done

    def release(self, owner: str, run_ids=None) -> None:
        """Drop ``owner``'s leases (all, or those on ``run_ids``), so another worker may
        claim those runs at once. Their attempts stay open: started, never recorded."""
        c = self._conn
        with self._writing():
            if run_ids is None:
                c.execute("DELETE FROM claims WHERE owner=?", (owner,))
            else:
                c.executemany("DELETE FROM claims WHERE run_id=? AND owner=?",
                              [(rid, owner) for rid in run_ids])

    def heartbeat(self, owner: str, ttl_s: float) -> int:
        """Renew every lease of ``owner`` for ``ttl_s`` seconds from now; how many it holds."""
        now = time.time()
        cur = self._conn.execute("UPDATE claims SET heartbeat=?, expires=? WHERE owner=?",
                                 (now, now + ttl_s, owner))
        return cur.rowcount

    def attempts(self, run_id: str | None = None) -> list[dict]:
        """Training starts: run_id, owner, started_at, ended_at, status (None while running
        or when its worker died), took_over (the owner whose dead or expired lease it
        replaced)."""
        q = "SELECT run_id, owner, started_at, ended_at, status, took_over FROM attempts"
        args = ()
        if run_id is not None:
            q += " WHERE run_id=?"
            args = (run_id,)
        keys = ("run_id", "owner", "started_at", "ended_at", "status", "took_over")
        return [dict(zip(keys, r)) for r in self._conn.execute(q + " ORDER BY attempt", args)]

    def claims(self) -> list[dict]:
        """Leases held now: run_id, owner, origin, claimed_at, heartbeat, expires."""
        keys = ("run_id", "owner", "origin", "claimed_at", "heartbeat", "expires")
        return [dict(zip(keys, r)) for r in self._conn.execute(
            "SELECT run_id, owner, origin, claimed_at, heartbeat, expires FROM claims "
            "ORDER BY run_id")]

    # Reading --------------------------------------------------------------------------
    def final_ids(self) -> set[str]:
        """Ids of runs that need no re-run (finished or diverged)."""
        return {r[0] for r in self._conn.execute(
            "SELECT run_id FROM runs WHERE status IN ('finished', 'diverged')")}

    def runs(self, status: str | None = None) -> list[RunRecord]:
        cols = {r[1] for r in self._conn.execute("PRAGMA table_info(runs)")}
        startup = "startup_s" if "startup_s" in cols else "NULL"      # a version-1 store
        conv = "conventions" if "conventions" in cols else "NULL"     # before version 3
        q = ("SELECT run_id, settings, status, error, final_train_loss, final_val_loss, "
             "n_params, n_params_non_embedding, tokens_seen, wall_time_s, tokens_per_s, "
             f"device, recorded_at, {startup}, {conv} FROM runs")
        args = ()
        if status is not None:
            if status not in STATUSES:
                raise AdvisorError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
            q += " WHERE status=?"
            args = (status,)
        out = []
        for r in self._conn.execute(q + " ORDER BY recorded_at, run_id", args):
            out.append(RunRecord(r[0], json.loads(r[1]), r[2], error=r[3],
                                 final_train_loss=_nan(r[4]), final_val_loss=_nan(r[5]),
                                 n_params=r[6] or 0, n_params_non_embedding=r[7] or 0,
                                 tokens_seen=r[8] or 0, wall_time_s=r[9] or 0.0,
                                 tokens_per_s=r[10] or 0.0, device=r[11] or "",
                                 recorded_at=r[12], startup_s=_nan(r[13]),
                                 conventions=(Conventions.from_dict(json.loads(r[14]))
                                              if r[14] else conventions_of(json.loads(r[1])))))
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

    def diagnostics_by_prefix(self, prefix: str) -> dict:
        """{run_id: [(step, name, value), ...]} of every diagnostics row whose name starts
        with ``prefix`` (e.g. the stability probes, ``stab.``), in step order; one query."""
        out: dict = {}
        for rid, s, n, v in self._conn.execute(
                "SELECT run_id, step, name, value FROM diagnostics WHERE substr(name, 1, ?) = ? "
                "ORDER BY run_id, step, rowid", (len(prefix), prefix)):
            out.setdefault(rid, []).append((s, n, _nan(v)))
        return out

    def smoothed_train_loss(self, run_id: str) -> float:
        """The mean train loss (nats per token) over the last 10% of a run's recorded points
        (at least one), NaN where none was recorded: the fit's ``smooth`` loss."""
        tl = self.curve(run_id)["train_loss"]
        tl = tl[np.isfinite(tl)]
        return float(np.mean(tl[-max(1, len(tl) // 10):])) if len(tl) else math.nan

    def steplaw_rows(self) -> list[dict]:
        """Every run as a row in Step Law's CSV layout (shared/data/external/
        steplaw_dense_lr_bs_loss.csv) plus our own columns: the export adapter of
        ``advisor results --format csv`` (the fitter reads the typed records,
        ``advisor.runs.table.table_from_store``).

        h = width, ffnh = SwiGLU hidden size, numh = heads, numl = depth, lr = the run's
        LR as its ``lr_convention`` says (``mup_base``: muP's base-width LR, hidden matrices
        trained at lr * base_width / width; ``peak``: every group's peak LR), ``base_width``
        = the muP base width (empty unless mup_base), ``wd_rule`` = how the hidden matrices'
        weight decay scaled with width (advisor.rules.optim_rules.WD_WIDTH_RULES; empty unless
        mup_base, where ``weight_decay`` is the base width's coefficient),
        bs = batch in sequences of STEPLAW_SEQ_LEN = 2048 tokens (Step Law's unit, fractional for us),
        ti = steps, loss = final train loss, smooth loss = mean train loss over the last
        10% of recorded points (:meth:`smoothed_train_loss`), D = training tokens, N = non-embedding parameters.
        """
        rows = []
        for r in self.runs():
            s = r.settings
            try:
                spec = RunSpec.from_settings(s)
                cfg = spec.model_config()
            except AdvisorError as exc:
                raise AdvisorError(f"{self.path.parent}: run {r.run_id}'s stored settings do "
                                   f"not build a proxy model: {exc}") from None
            arch = s.get("arch") or {"heads": cfg.heads, "ffn_hidden": cfg.ffn_hidden}
            width, depth, seq = int(s["width"]), int(s["depth"]), int(s["seq_len"])
            ffn, n_heads = arch.get("ffn_hidden"), arch.get("heads")
            conv = r.conventions or of_run(spec, cfg)
            convention = conv.lr
            bs_tokens = int(s["batch_size"]) * seq
            D = int(s["tokens"])
            N = int(r.n_params_non_embedding)
            smooth = self.smoothed_train_loss(r.run_id)
            steps = D // bs_tokens
            rows.append({
                "h": width, "ffnh": ffn, "numh": n_heads, "numl": depth, "lr": s["lr"],
                "bs": bs_tokens / STEPLAW_SEQ_LEN, "ti": steps, "loss": r.final_train_loss,
                "smooth loss": smooth, "exp_name": r.run_id, "D": D, "N": N,
                "D/N": D / N if N else math.nan,
                "bs_tokens": bs_tokens, "seq_len": seq, "weight_decay": s["weight_decay"],
                "status": r.status, "seed": s["seed"], "schedule": s["schedule"],
                "width": width, "val_loss": r.final_val_loss,
                "parameterization": s.get("parameterization", ""),
                "optimizer": conv.optimizer_label or "",
                "lr_convention": convention,
                "base_width": conv.base_width if convention == "mup_base" else "",
                "wd_rule": conv.wd_rule if convention == "mup_base" else "",
            })
        return rows


class LeaseKeeper:
    """A worker's identity on a store plus a daemon thread that renews its leases.

    Use as a context manager around the work; on exit the thread stops and every lease the
    owner still holds is released. The thread has its own SQLite connection (connections
    are not shared across threads) and beats every quarter of the lease, so a lease only
    expires when its process stops running (killed, frozen, or its host gone).
    """

    def __init__(self, store: "ResultsStore", ttl_s: float | None = None,
                 owner: str | None = None):
        self.store = store
        self.ttl_s = lease_ttl_s() if ttl_s is None else float(ttl_s)
        self.owner = owner or new_owner_id()
        self.since = time.time()
        self._stop = threading.Event()
        self._thread = None

    def _beat(self) -> None:
        conn = ResultsStore._connect(self.store.path)
        try:
            beat = ResultsStore(self.store.path, conn)
            while not self._stop.wait(self.ttl_s / 4):
                try:
                    beat.heartbeat(self.owner, self.ttl_s)
                except sqlite3.Error:
                    pass               # busy for a minute: the next beat tries again
        finally:
            conn.close()

    def claim(self, run_ids) -> tuple[list, set, set]:
        return self.store.claim(run_ids, self.owner, self.ttl_s, self.since)

    def __enter__(self):
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.store.release(self.owner)
        except (sqlite3.Error, StoreError):
            pass                       # the leases expire on their own


def conventions_of(settings: dict) -> Conventions | None:
    """A run's conventions from its stored settings (its RunSpec and proxy model), or None
    where the settings do not build a run (a hand-written row)."""
    try:
        spec = RunSpec.from_settings(settings)
        return of_run(spec, spec.model_config())
    except (AdvisorError, TypeError, ValueError):
        return None


STEPLAW_COLUMNS = ["h", "ffnh", "numh", "numl", "lr", "bs", "ti", "loss", "smooth loss",
                   "exp_name", "D", "N", "D/N", "bs_tokens", "seq_len", "weight_decay",
                   "status", "seed", "schedule", "width", "val_loss", "parameterization",
                   "optimizer", "lr_convention", "base_width", "wd_rule"]


def steplaw_csv_text(rows: list[dict]) -> str:
    """The rows as CSV text in STEPLAW_COLUMNS order (NaN as an empty field)."""
    import csv
    import io

    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=STEPLAW_COLUMNS)
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if isinstance(r[k], float) and math.isnan(r[k]) else r[k])
                    for k in STEPLAW_COLUMNS})
    return buf.getvalue()


def write_steplaw_csv(rows: list[dict], path) -> None:
    """Write rows in STEPLAW_COLUMNS order, atomically (advisor.common.outputs.atomic_write_text)."""
    from advisor.common.outputs import atomic_write_text

    atomic_write_text(path, steplaw_csv_text(rows), "CSV file")
