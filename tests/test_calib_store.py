"""The results store: atomic per-run writes, final rows never overwritten, Step Law CSV layout."""
import csv
import math
import sqlite3

import pytest

from advisor.errors import AdvisorError
from calibration.store import STEPLAW_COLUMNS, ResultsStore, write_steplaw_csv

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
