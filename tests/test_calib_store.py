"""The results store: atomic per-run writes, final rows never overwritten, Step Law CSV layout."""
import csv
import math
import sqlite3

import pytest

from advisor.errors import AdvisorError
from advisor.runs.store import STEPLAW_COLUMNS, ResultsStore, write_steplaw_csv

SETTINGS = dict(width=64, depth=2, lr=0.01, weight_decay=0.0, batch_size=8, seq_len=64,
                tokens=51200, schedule="constant", seed=0, parameterization="mup",
                arch={"heads": 4, "ffn_hidden": 176})
CURVE = dict(step=[10, 20], tokens=[5120, 10240], lr=[0.01, 0.01], train_loss=[3.0, 2.5],
             val_loss=[3.1, float("nan")])


def test_round_trip(tmp_path):
    st = ResultsStore.create(tmp_path)
    assert st.record("a1", SETTINGS, "finished", curve=CURVE, diagnostics=[(10, "g", 1.5)],
                     final_train_loss=2.5, final_val_loss=2.6, n_params=100,
                     n_params_non_embedding=60, tokens_seen=10240, wall_time_s=1.0)
    st.close()
    st = ResultsStore.open(tmp_path)
    (r,) = st.runs()
    assert r.run_id == "a1" and r.status == "finished" and r.settings["width"] == 64
    assert (r.final_val_loss, r.n_params_non_embedding, r.tokens_seen) == (2.6, 60, 10240)
    c = st.curve("a1")
    assert c["step"].tolist() == [10, 20] and c["train_loss"].tolist() == [3.0, 2.5]
    assert c["val_loss"][0] == 3.1 and math.isnan(c["val_loss"][1])
    assert st.diagnostics("a1") == [{"step": 10, "name": "g", "value": 1.5}]
    assert st.runs(status="failed") == []


def test_final_rows_are_never_overwritten_but_failed_ones_are_retried(tmp_path):
    st = ResultsStore.create(tmp_path)
    st.record("a", SETTINGS, "finished", curve=CURVE, final_val_loss=2.6)
    assert not st.record("a", SETTINGS, "failed", error="boom")
    assert st.runs()[0].status == "finished" and len(st.curve("a")["step"]) == 2
    st.record("b", SETTINGS, "failed", error="CUDA out of memory")
    assert st.final_ids() == {"a"}
    assert st.record("b", SETTINGS, "finished", curve=CURVE, final_val_loss=2.7)
    assert st.final_ids() == {"a", "b"}


def test_a_failed_write_leaves_nothing(tmp_path):
    st = ResultsStore.create(tmp_path)
    bad_curve = dict(CURVE, step=[10, 10])          # duplicate step violates the primary key
    with pytest.raises(sqlite3.IntegrityError):
        st.record("a", SETTINGS, "finished", curve=bad_curve)
    assert st.runs() == [] and len(st.curve("a")["step"]) == 0


def test_missing_and_corrupt_stores_are_one_clear_error(tmp_path):
    with pytest.raises(AdvisorError, match="no results store"):
        ResultsStore.open(tmp_path)
    (tmp_path / "results.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(AdvisorError, match="corrupt"):
        ResultsStore.open(tmp_path)
    with pytest.raises(AdvisorError, match="corrupt"):
        ResultsStore.create(tmp_path)                 # never resets an existing file
    assert (tmp_path / "results.sqlite").read_bytes().startswith(b"this is not")


def test_steplaw_csv_has_the_published_layout(tmp_path, external_data):
    st = ResultsStore.create(tmp_path)
    st.record("a", SETTINGS, "finished", curve=CURVE, final_train_loss=2.5, final_val_loss=2.6,
              n_params_non_embedding=60_000)
    rows = st.steplaw_rows()
    with open(external_data / "steplaw_dense_lr_bs_loss.csv") as f:
        published = next(csv.reader(f))
    assert STEPLAW_COLUMNS[:len(published)] == published
    r = rows[0]
    assert (r["h"], r["ffnh"], r["numh"], r["numl"], r["ti"]) == (64, 176, 4, 2, 100)
    assert r["bs"] == pytest.approx(512 / 2048) and r["bs_tokens"] == 512
    assert r["D"] == 51200 and r["N"] == 60_000 and r["D/N"] == pytest.approx(51200 / 60000)
    write_steplaw_csv(rows, tmp_path / "out.csv")
    with open(tmp_path / "out.csv") as f:
        back = list(csv.DictReader(f))
    assert float(back[0]["lr"]) == 0.01 and back[0]["status"] == "finished"


def test_a_store_killed_before_its_schema_was_written_is_reused(tmp_path):
    sqlite3.connect(tmp_path / "results.sqlite").close()      # an empty database file
    st = ResultsStore.open(tmp_path)
    assert st.runs() == []
    assert st.record("a", SETTINGS, "finished", curve=CURVE)


# ---------------------------------------------------------------- leases and attempts
def _dead_pid():
    """A pid that just ended (reaped), so nothing runs under it."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_version_1_store_is_migrated_in_place(tmp_path):
    con = sqlite3.connect(tmp_path / "results.sqlite")
    con.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE runs (run_id TEXT PRIMARY KEY, settings TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('finished', 'diverged', 'failed')),
            error TEXT NOT NULL DEFAULT '', final_train_loss REAL, final_val_loss REAL,
            n_params INTEGER, n_params_non_embedding INTEGER, tokens_seen INTEGER,
            wall_time_s REAL, tokens_per_s REAL, device TEXT,
            recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')));
        CREATE TABLE curves (run_id TEXT NOT NULL, step INTEGER NOT NULL, tokens INTEGER NOT NULL,
            lr REAL, train_loss REAL, val_loss REAL, PRIMARY KEY (run_id, step));
        CREATE TABLE diagnostics (run_id TEXT NOT NULL, step INTEGER NOT NULL, name TEXT NOT NULL,
            value REAL);
        INSERT INTO meta VALUES ('schema_version', '1');
        INSERT INTO runs (run_id, settings, status, final_val_loss, wall_time_s)
            VALUES ('old', '{"width": 64}', 'finished', 2.5, 18.5);
    """)
    con.commit()
    con.close()
    st = ResultsStore.open(tmp_path)
    (r,) = st.runs()
    assert r.run_id == "old" and r.wall_time_s == 18.5 and math.isnan(r.startup_s)
    assert st.record("new", SETTINGS, "finished", curve=CURVE, wall_time_s=0.2, startup_s=1.5)
    assert {x.run_id: x.startup_s for x in st.runs()}["new"] == 1.5
    assert st.claim(["x"], "h:1:a", 60, since=0)[0] == ["x"]
    st.close()
    con = sqlite3.connect(tmp_path / "results.sqlite")
    assert con.execute("SELECT value FROM meta").fetchone()[0] == "3"
    con.close()


def test_a_store_from_a_newer_version_is_refused(tmp_path):
    ResultsStore.create(tmp_path).close()
    con = sqlite3.connect(tmp_path / "results.sqlite")
    con.execute("UPDATE meta SET value='99'")
    con.commit()
    con.close()
    with pytest.raises(AdvisorError, match="newer than this hp-advisor"):
        ResultsStore.open(tmp_path)


def test_a_live_lease_is_respected_a_dead_or_expired_one_taken_over(tmp_path):
    import os
    import time

    from advisor.runs.store import new_owner_id

    st = ResultsStore.create(tmp_path)
    me = new_owner_id()
    assert me.split(":")[1] == str(os.getpid()) and len(me.split(":")) == 3
    other_host = "elsewhere:123:abc"
    dead = f"{me.split(':')[0]}:{_dead_pid()}:dead0"
    t0 = time.time()
    assert st.claim(["a", "b"], other_host, 60, t0) == (["a", "b"], set(), set())
    con = sqlite3.connect(tmp_path / "results.sqlite", isolation_level=None)
    con.execute("UPDATE claims SET origin='far-host|boot|pidns'")   # claimed on another host
    # another host's unexpired lease: held, whatever its pid means here
    assert st.claim(["a"], me, 60, t0) == ([], {"a"}, set())
    # a dead process of this host (claims record this host's origin): taken over at once,
    # without waiting for its lease to expire
    st.claim(["c"], dead, 3600, t0)
    con.execute("UPDATE claims SET expires=? WHERE run_id='b'", (time.time() - 1,))  # expired
    con.close()
    got, held, done = st.claim(["a", "b", "c"], me, 60, t0)
    assert got == ["b", "c"] and held == {"a"} and done == set()
    takeovers = {a["run_id"]: a["took_over"] for a in st.attempts() if a["owner"] == me}
    assert takeovers == {"b": other_host, "c": dead}
    # recording closes the attempt and frees the lease; a final run is done for everyone
    st.record("b", SETTINGS, "finished", curve=CURVE, owner=me)
    assert [c["run_id"] for c in st.claims()] == ["a", "c"]
    (att,) = [a for a in st.attempts("b") if a["owner"] == me]
    assert att["status"] == "finished" and att["ended_at"] >= att["started_at"]
    assert st.claim(["b"], "h:9:z", 60, t0) == ([], set(), {"b"})
    # a failure in this sweep is done for this sweep (not retried by every worker) ...
    st.record("c", SETTINGS, "failed", error="boom", owner=me)
    assert st.claim(["c"], "h:9:z", 60, t0) == ([], set(), {"c"})
    # ... and retried by the next sweep
    assert st.claim(["c"], "h:9:z", 60, time.time() + 1)[0] == ["c"]
    st.release(other_host)
    assert st.claim(["a"], me, 60, t0)[0] == ["a"]


def test_the_heartbeat_renews_leases_and_exit_releases_them(tmp_path):
    import time

    from advisor.runs.store import LeaseKeeper

    st = ResultsStore.create(tmp_path)
    with LeaseKeeper(st, ttl_s=1.0) as lease:
        assert lease.claim(["a"])[0] == ["a"]
        first = st.claims()[0]["expires"]
        time.sleep(1.6)                           # past the first lease, beats every 0.25 s
        (c,) = st.claims()
        assert c["owner"] == lease.owner and c["expires"] > first and c["expires"] > time.time()
        other = ResultsStore.open(tmp_path)
        assert other.claim(["a"], "elsewhere:1:x", 60, 0)[1] == {"a"}
        other.close()
    assert st.claims() == []
    # the attempt stays open: started, never recorded
    (a,) = st.attempts("a")
    assert a["ended_at"] is None and a["status"] is None


def test_the_lease_length_comes_from_the_environment(monkeypatch):
    from advisor.runs.store import LEASE_TTL_S, lease_ttl_s

    monkeypatch.delenv("ADVISOR_LEASE_TTL_S", raising=False)
    assert lease_ttl_s() == LEASE_TTL_S
    monkeypatch.setenv("ADVISOR_LEASE_TTL_S", "5")
    assert lease_ttl_s() == 5.0
    for bad in ("0", "nan", "soon"):
        monkeypatch.setenv("ADVISOR_LEASE_TTL_S", bad)
        with pytest.raises(AdvisorError, match="ADVISOR_LEASE_TTL_S"):
            lease_ttl_s()

