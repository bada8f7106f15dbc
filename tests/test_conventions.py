"""One record of a proxy's conventions, and one map from a base LR to the target's groups.

The bug these pin (issue 22): with ``law="minicpm", base_width=128`` the LR note and the depth
view gave the embedding LR as 0.01 and the Muon view as 0.02, and the depth view's hidden LR
was half the recommended one: the LR went base -> target -> base with two base widths. Now
every view and export reads the groups of ``advisor.specs.transfer.target_groups``, mapped
once under the law's conventions.
"""
import re

import numpy as np
import pytest
import yaml

from advisor.errors import AdvisorError
from advisor.export import export
from advisor.recommendation.core import recommend
from advisor.specs.conventions import Conventions, of_lawset, of_run
from advisor.specs.runspec import RunSpec
from advisor.specs.transfer import target_groups


def _embedding_lrs(rec) -> dict:
    """Every place a recommendation states the embedding's peak LR."""
    out = {"mup view": rec.mup.groups[0].lr,
           "depth view": next(g.with_width.lr for g in rec.depth.groups
                              if g.group == "embedding")}
    m = re.search(r"vector-like parameters keep ([0-9.e-]+)", rec.learning_rate.note or "")
    if m:
        out["LR note"] = float(m.group(1))
    assert rec.mup.groups[0].group == "embedding"
    yaml_mup = yaml.safe_load(export(rec, "yaml"))["mup"]["groups"][0]
    out["yaml export"] = yaml_mup["lr"]
    return out


def _muon_embedding_lrs(rec) -> dict:
    snippet = export(rec, "pytorch")
    adamw_lr = float(re.search(r"^\s*ADAMW_LR = (\S+)", snippet, re.M).group(1))
    return {"muon view": rec.optimizer.adamw.groups[0].lr, "pytorch export": adamw_lr}


def _hidden_lrs(rec) -> dict:
    return {"learning_rate": rec.learning_rate.value, "mup view": rec.mup.groups[1].lr,
            "depth view (alpha 1)": next(g.with_width.lr for g in rec.depth.groups
                                         if g.group == "hidden")}


@pytest.mark.parametrize("base_width", [None, 128, 512])
def test_minicpm_states_one_embedding_lr_whatever_the_base_width(base_width):
    rec = recommend(params=7e9, law="minicpm", base_width=base_width)
    lrs = _embedding_lrs(rec)
    assert set(lrs.values()) == {0.01}, lrs                 # MiniCPM's base LR, as the law says
    hidden = _hidden_lrs(rec)
    assert set(hidden.values()) == {0.01 * 256 / 4096}, hidden
    muon = recommend(params=7e9, law="minicpm", base_width=base_width, optimizer="muon")
    assert set(_muon_embedding_lrs(muon).values()) == {0.01}
    assert muon.optimizer.muon.lr.value == rec.learning_rate.value   # Moonlight: reused
    if base_width not in (None, 256):
        assert any("muP base LR at width 256" in w for w in rec.warnings)


def test_the_mup_view_multipliers_stay_relative_to_the_asked_base_width():
    rec = recommend(params=7e9, law="minicpm", base_width=128)
    assert rec.mup.base_width == 128 and rec.mup.groups[1].lr_multiplier == 128 / 4096
    # ... while the decay per step is the law's: lr x torch weight_decay, group by group
    for g in rec.mup.groups[:2]:
        assert g.decay_per_step == pytest.approx(g.lr * g.torch_weight_decay, rel=2e-2)


def test_a_fitted_law_set_at_base_width_64_states_one_embedding_lr(tmp_path, record_mup_sweep):
    from advisor.cli.app import main
    from advisor.runs.store import ResultsStore

    with ResultsStore.create(tmp_path / "sweep") as store:
        record_mup_sweep(store, np.random.default_rng(3), widths=(64, 128, 256), base_width=64)
    out = tmp_path / "laws.yaml"
    with pytest.raises(SystemExit) as exc:
        main(["fit", str(tmp_path / "sweep"), "--out", str(out), "--method", "best-point",
              "--bootstrap", "0"])
    assert exc.value.code == 0
    d = yaml.safe_load(out.read_text())
    assert d["mup"]["base_width"] == 64 and d["conventions"]["learning_rate"] == "mup_base"
    for base_width in (None, 128):
        rec = recommend(params=1e8, tokens=2e9, laws_file=str(out), base_width=base_width)
        lrs = _embedding_lrs(rec)
        assert len(set(lrs.values())) == 1, lrs
        muon = recommend(params=1e8, tokens=2e9, laws_file=str(out), base_width=base_width,
                         optimizer="muon")
        assert set(_muon_embedding_lrs(muon).values()) == set(lrs.values())
        # the embedding keeps the base LR, the hidden matrices get it x 64 / d_model
        d_model = rec.model.d_model
        emb = next(iter(lrs.values()))
        assert rec.learning_rate.value == pytest.approx(emb * 64 / d_model, rel=5e-3)


def test_a_peak_lr_law_gives_every_group_the_peak_lr_under_muon():
    rec = recommend(params=7e9, optimizer="muon")
    assert {g.lr for g in rec.optimizer.adamw.groups} == {rec.learning_rate.value}
    assert rec.optimizer.muon.lr.value == rec.learning_rate.value


def test_target_groups_apply_mup_from_the_conventions_base_width():
    conv = Conventions(lr="mup_base", base_width=256, wd_rule="mup")
    at_base = target_groups(conv, 0.01, 0.1, 256)
    assert {g.lr for g in at_base.groups} == {0.01}
    wide = target_groups(conv, 0.01, 0.1, 1024)
    assert wide["hidden"].lr == pytest.approx(0.0025) and wide["embedding"].lr == 0.01
    assert wide["hidden"].weight_decay == pytest.approx(0.4)          # MuAdamW: x m
    assert wide["block_vector"].weight_decay == 0.0
    # Muon converts the hidden LR only; spectral by 0.2 sqrt(width)
    spectral = target_groups(conv, 0.01, 0.1, 1024, optimizer="muon", muon_convention="spectral")
    assert spectral["hidden"].optimizer == "muon"
    assert spectral["hidden"].lr == pytest.approx(0.0025 * 0.2 * 32)
    assert spectral["embedding"].lr == 0.01
    # a peak LR is every group's, at any width
    peak = target_groups(Conventions(), 3e-4, 0.1, 4096)
    assert {g.lr for g in peak.groups} == {3e-4}


def test_conventions_round_trip_through_a_law_set_and_come_from_a_run():
    spec = RunSpec(width=64, depth=2, model={"base_width": 32, "head_dim": 16}, wd_rule="sqrt")
    conv = of_run(spec, spec.model_config())
    assert conv == Conventions(lr="mup_base", base_width=32, base_depth=4, depth_alpha=0.0,
                               wd_rule="sqrt", optimizer="muadamw", seq_len=256)
    assert of_lawset(*conv.lawset_fields()) == conv
    muon = of_run(RunSpec(optimizer="muon", muon_convention="match_rms_adamw"),
                  RunSpec().model_config())
    assert (muon.lr, muon.optimizer_label) == ("peak", "muon-match_rms_adamw")
    assert of_lawset(*muon.lawset_fields()) == muon


@pytest.mark.parametrize("conv, mup, msg", [
    ({"learning_rate": "mup_base"}, {}, "needs mup.base_width"),
    ({}, {"wd_rule": "linear"}, "mup.wd_rule must be one of mup, sqrt, none"),
    ({"optimizer": "muon-fast"}, {}, "Muon width convention"),
])
def test_a_law_set_whose_conventions_mean_nothing_is_refused(conv, mup, msg):
    with pytest.raises(AdvisorError, match=msg):
        of_lawset(conv, mup)


def test_a_store_keeps_each_runs_conventions_and_derives_them_for_older_runs(tmp_path):
    import sqlite3

    from advisor.runs.store import ResultsStore

    spec = RunSpec(width=64, depth=2, model={"base_width": 32, "head_dim": 16}, wd_rule="sqrt")
    with ResultsStore.create(tmp_path) as st:
        st.record(spec.run_id, spec.settings(), "finished", final_train_loss=3.0)
        (r,) = st.runs()
    assert r.conventions == of_run(spec, spec.model_config())
    assert (r.conventions.base_width, r.conventions.wd_rule) == (32, "sqrt")
    # the record is what was stored, not re-derived: overwrite it and read it back
    con = sqlite3.connect(tmp_path / "results.sqlite")
    stored = Conventions(lr="mup_base", base_width=48, optimizer="muadamw")
    con.execute("UPDATE runs SET conventions=?", (__import__("json").dumps(stored.to_dict()),))
    con.commit()
    with ResultsStore.open(tmp_path) as st:
        assert st.runs()[0].conventions == stored
        assert st.steplaw_rows()[0]["base_width"] == 48
    # a version-2 store (no conventions column) opens, migrates, and derives them
    con.execute("ALTER TABLE runs DROP COLUMN conventions")
    con.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    con.commit()
    con.close()
    with ResultsStore.open(tmp_path) as st:
        assert st.runs()[0].conventions == of_run(spec, spec.model_config())
    con = sqlite3.connect(tmp_path / "results.sqlite")
    assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "3"
    con.close()


def test_the_fitter_reads_a_stores_typed_records_with_their_units_and_conventions(tmp_path):
    """advisor.runs.table.table_from_store: the batch in tokens (batch_size x the run's own
    seq_len, not Step Law's 2048-token sequences), and what the LR means from the stored
    Conventions record, not re-derived from the proxy's family at read time."""
    import json
    import sqlite3

    from advisor.runs.store import ResultsStore
    from advisor.runs.table import load_runs

    with ResultsStore.create(tmp_path) as st:
        for i, lr in enumerate((1e-3, 2e-3, 4e-3, 8e-3)):
            spec = RunSpec(width=64, depth=2, lr=lr, batch_size=6, seq_len=96, tokens=2 ** 20,
                           model={"base_width": 32, "head_dim": 16})
            st.record(spec.run_id, spec.settings(), "finished", final_train_loss=3.0 + i / 10,
                      n_params_non_embedding=100_000,
                      curve={"step": [1, 2], "tokens": [576, 1152], "lr": [lr, lr],
                             "train_loss": [3.5, 3.0 + i / 10], "val_loss": [4.0, 4.0]})
    table = load_runs(tmp_path)
    assert set(table.batch_tokens) == {6 * 96} and set(table.D) == {2 ** 20}
    assert table.conventions() == Conventions(lr="mup_base", base_width=32, wd_rule="mup",
                                              optimizer="muadamw", seq_len=96)
    con = sqlite3.connect(tmp_path / "results.sqlite")
    stored = Conventions(lr="mup_base", base_width=48, wd_rule="sqrt", optimizer="muadamw",
                         seq_len=96)
    con.execute("UPDATE runs SET conventions=?", (json.dumps(stored.to_dict()),))
    con.commit()
    con.close()
    assert load_runs(tmp_path).conventions() == stored


def test_a_fitted_law_set_records_the_runs_sequence_length_and_reads_it_back_typed(tmp_path):
    from advisor.laws.lawset import load_lawset_file

    runs = tmp_path / "runs.csv"
    rows = ["N,D,lr,bs,loss"] + [f"{n},{d},{lr},{bs},{3 + abs(lr - 2e-3) * 100 + bs / 1e3}"
                                 for n in (1e8, 2e8) for d in (1e9, 4e9)
                                 for lr in (1e-3, 2e-3, 4e-3) for bs in (64, 128)]
    runs.write_text("\n".join(rows) + "\n")
    from advisor.cli.app import main

    for extra, seq in (([], 2048), (["--seq-len", "4096"], 4096)):
        out = tmp_path / f"laws{seq}.yaml"
        with pytest.raises(SystemExit) as exc:
            main(["fit", str(runs), "--out", str(out), "--method", "best-point",
                  "--bootstrap", "0", *extra])
        assert exc.value.code == 0
        ls = load_lawset_file(out)
        assert ls.conventions["seq_len"] == seq and ls.proxy_conventions.seq_len == seq
