"""`advisor schedule fit | predict | optimize` end to end, and bad input as one clear line."""
import csv

import numpy as np
import pytest
import yaml

from advisor.cli import main
from advisor.rules.lr_schedule import parse_schedule
from advisor.schedule import recommend_schedule
from advisor.schedule.lawfile import SCHEMA, load_schedule_law


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.fixture(scope="module")
def law_file(external_data, tmp_path_factory):
    """A multi-power law fitted by the CLI on the 25M authors' training split."""
    out = tmp_path_factory.mktemp("law") / "law.yaml"
    with pytest.raises(SystemExit) as exc:
        main(["schedule", "fit", str(external_data / "multipower_loss_curves" / "25M"),
              "--law", "multipower", "--out", str(out)])
    assert exc.value.code == 0
    return out


def test_fit_writes_a_valid_law_file(law_file):
    d = yaml.safe_load(law_file.read_text())
    assert d["schema"] == SCHEMA and d["law"] == "multipower"
    assert {c["name"] for c in d["fit"]["curves"]} == {"cosine_24000", "constant_24000", "wsdcon_9"}
    assert all(c["mean_rel"] < 0.002 for c in d["fit"]["curves"])
    assert d["lr_scale"] == pytest.approx(3e-4)
    law = load_schedule_law(law_file)
    assert law.total_steps_fitted == 23936


def test_predict_writes_csv_and_plot(law_file, tmp_path, capsys):
    code, out, err = run(["schedule", "predict", "--law", str(law_file), "--schedule",
                          "wsd:cooldown=0.2,shape=1-sqrt,warmup=2160", "--steps", "24000",
                          "--csv", str(tmp_path / "p.csv"), "--plot", str(tmp_path / "p.png")],
                         capsys)
    assert code == 0, err
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    loss = np.array([float(r["predicted_loss"]) for r in rows])
    lr = np.array([float(r["lr"]) for r in rows])
    assert rows[-1]["step"] == "24000" and lr[-1] == 0.0
    # the cooldown lowers the loss faster than the stable phase before it
    n = len(loss)
    assert loss[-1] < loss[int(0.8 * n)] - 0.05
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_optimize_and_recommend_schedule(law_file, capsys):
    code, out, err = run(["schedule", "optimize", "--law", str(law_file), "--steps", "24000"],
                         capsys)
    assert code == 0, err
    assert "best:" in out and "branch at step" in out
    r = recommend_schedule(law_file, 24000)
    parse_schedule(r.schedule)                       # a spec the product can use
    assert r.gain_over_cosine_nats > 0
    lo, hi = r.cooldown_band
    assert 0 < lo <= hi < 1
    # branch points: each branch leaves the constant run at (1 - cooldown) of its length
    wsd = parse_schedule(r.wsd_schedule)
    for b in r.branch_points:
        assert b.branch_step == wsd.decay_start(b.total_steps)
        assert b.cooldown_steps == b.total_steps - b.branch_step
    losses = [b.predicted_final_loss for b in r.branch_points]
    assert losses == sorted(losses, reverse=True)    # longer runs end lower
    # another peak LR: the shape is chosen at the law's own peak, with a note saying so
    other = recommend_schedule(law_file, 24000, peak_lr=1e-3)
    assert any("do not carry the peak LR" in n for n in other.notes)
    assert other.predicted_final_loss == r.predicted_final_loss
    from advisor.errors import AdvisorError
    with pytest.raises(AdvisorError):
        recommend_schedule(law_file, 5)
    with pytest.raises(AdvisorError):
        recommend_schedule(law_file.parent / "missing.yaml", 24000)


def _write(path, rows):
    with open(path, "w") as fh:
        fh.write("step,lr,loss\n")
        for r in rows:
            fh.write(",".join(str(x) for x in r) + "\n")
    return path


def _cosine_rows(n=60):
    steps = np.arange(1, n + 1) * 100
    lr = 1e-3 * (0.1 + 0.45 * (1 + np.cos(np.pi * steps / steps[-1])))
    loss = 3.0 + 5.0 * (np.cumsum(lr) * 100) ** -0.5
    return [list(r) for r in zip(steps.tolist(), lr.tolist(), loss.tolist())]


@pytest.mark.parametrize("mutate,needle", [
    (lambda r: r.__setitem__(10, [r[10][0], r[10][1], "nan"]), "NaN"),
    (lambda r: r.__setitem__(10, [r[8][0], r[10][1], r[10][2]]), "not strictly increasing"),
    (lambda r: r.__delitem__(slice(10, 30)), "gap"),
    (lambda r: [x.__setitem__(1, 1e-3) for x in r], "not identifiable"),
    (lambda r: r.__setitem__(5, [r[5][0], "fast", r[5][2]]), "not a number"),
])
def test_bad_curves_fail_with_one_line(tmp_path, capsys, mutate, needle):
    rows = _cosine_rows()
    mutate(rows)
    code, out, err = run(["schedule", "fit", str(_write(tmp_path / "c.csv", rows)),
                          "--out", str(tmp_path / "law.yaml")], capsys)
    assert code == 2
    assert err.startswith("error:") and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "law.yaml").exists()


def test_bad_schedule_spec_and_law_file(law_file, tmp_path, capsys):
    code, _, err = run(["schedule", "predict", "--law", str(law_file), "--schedule",
                        "wsd:cooldown=fast", "--steps", "1000"], capsys)
    assert code == 2 and err.startswith("error: cannot parse schedule") and err.count("\n") == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema: hp-advisor/schedule-law/v1\nlaw: multipower\nparams: {L0: 1}\n")
    code, _, err = run(["schedule", "optimize", "--law", str(bad), "--steps", "1000"], capsys)
    assert code == 2 and "params lacks" in err and err.count("\n") == 1


def test_user_csv_fit_recovers_a_known_law(tmp_path, capsys):
    """A cosine + constant pair generated from a Tissue law: the fit recovers its curve."""
    from advisor.schedule import tissue
    T = 6000
    steps = np.arange(50, T + 1, 50)
    out = []
    for kind in ("cos", "const"):
        s = np.arange(T + 1)
        lr = 1e-3 * (0.1 + 0.45 * (1 + np.cos(np.pi * s / T))) if kind == "cos" else np.full(T + 1, 1e-3)
        plan = tissue.make_plan(lr / 1e-3, steps, lam=0.999)
        loss = tissue.predict([2.0, 10.0, 0.5, 2e-4], plan)
        p = _write(tmp_path / f"{kind}.csv", zip(steps, lr[steps], loss))
        out.append(str(p))
    code, o, err = run(["schedule", "fit", out[0], "--curve", out[1], "--law", "tissue",
                        "--out", str(tmp_path / "t.yaml")], capsys)
    assert code == 0, err
    d = yaml.safe_load((tmp_path / "t.yaml").read_text())
    assert max(c["mean_rel"] for c in d["fit"]["curves"]) < 2e-4


def test_fit_from_a_results_store_takes_the_group_that_differs_only_in_schedule(tmp_path, capsys):
    """Runs read back through advisor.runs.store: the group of runs sharing every setting but
    the schedule is fitted; a lone run of another width is left out."""
    from advisor.schedule import tissue
    from advisor.schedule.curves import load_store
    store_mod = pytest.importorskip("advisor.runs.store")
    store = store_mod.ResultsStore.create(tmp_path / "store")
    T, peak = 3000, 2e-3
    steps = np.arange(25, T + 1, 25)
    for width, sched in ((64, "constant"), (64, "cosine:final=0.1"), (128, "constant")):
        lr = peak * np.concatenate([[1.0], parse_schedule(sched).multipliers(T)])
        loss = tissue.predict([2.0, 10.0, 0.5, 2e-4], tissue.make_plan(lr / peak, steps))
        loss = loss + (0.05 if width == 128 else 0.0)
        settings = {"width": width, "depth": 2, "lr": peak, "schedule": sched, "seed": 0,
                    "batch_size": 16, "seq_len": 128, "tokens": 16 * 128 * T}
        run_id = f"w{width}-{sched.split(':')[0]}"
        store.record(run_id, settings, "finished",
                     curve={"step": steps, "tokens": steps * 2048, "lr": lr[steps],
                            "train_loss": loss, "val_loss": np.full(len(steps), np.nan)})
    store.close()
    curves = load_store(tmp_path / "store")
    assert sorted(c.meta["run_id"] for c in curves) == ["w64-constant", "w64-cosine"]
    code, out, err = run(["schedule", "fit", str(tmp_path / "store"), "--law", "tissue",
                          "--out", str(tmp_path / "law.yaml")], capsys)
    assert code == 0, err
    d = yaml.safe_load((tmp_path / "law.yaml").read_text())
    assert max(c["mean_rel"] for c in d["fit"]["curves"]) < 5e-4
    assert d["lr_scale"] == pytest.approx(peak)


def test_law_file_validation_and_rho_round_trip(tmp_path):
    from advisor.errors import AdvisorError
    from advisor.schedule.lawfile import dump_schedule_law, validate_schedule_law_dict
    good = {"schema": SCHEMA, "law": "multipower", "lr_scale": 3e-4, "lam": None, "rho": 0.6,
            "total_steps_fitted": 24000,
            "params": {"L0": 2.5, "A": 30.0, "alpha": 0.5, "B": 0.15, "C": 0.02,
                       "beta": 0.6, "gamma": 0.65}}
    path = dump_schedule_law(good, tmp_path / "l.yaml")
    law = load_schedule_law(path)
    assert law.rho == 0.6
    lrs = 3e-4 * np.concatenate([[0.0], parse_schedule("constant:warmup=100").multipliers(1000)])
    flat = load_schedule_law(dump_schedule_law(dict(good, rho=1.0), tmp_path / "m.yaml"))
    # rho < 1 gives a low-LR warmup step more area, so early predicted loss differs
    assert law.predict(lrs, [50])[0] != flat.predict(lrs, [50])[0]
    for broken, msg in ((dict(good, schema="v0"), "schema"),
                        (dict(good, law="cubic"), "law must be"),
                        (dict(good, params=dict(good["params"], B=-1.0)), "positive"),
                        (dict(good, rho=0), "rho"),
                        (dict(good, lr_scale="big"), "lr_scale")):
        with pytest.raises(AdvisorError, match=msg):
            validate_schedule_law_dict(broken)
    with pytest.raises(AdvisorError):
        dump_schedule_law(dict(good, law="cubic"), tmp_path / "bad.yaml")
    assert not (tmp_path / "bad.yaml").exists()
