"""Every predicted final loss of `advisor schedule predict / optimize` comes with an interval
and its reason (advisor/schedule/uncertainty.py), from a real fit on the committed curves:
Schaipp et al. 2025's 124M constant and cosine-to-10% runs at peak LR 5e-4
(recipes/schedule/inputs/schaipp-124m-lr5e-4/)."""
import csv
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from advisor.cli import main
from advisor.schedule.curves import load_csv
from advisor.schedule.lawfile import load_schedule_law
from advisor.schedule.optimize import final_interval, optimize
from advisor.schedule.uncertainty import (EXTRAP_REL, HORIZON_REL, IN_SAMPLE_UNRECORDED,
                                          SHAPE_REL, in_sample_rel)

INPUTS = Path(__file__).resolve().parents[1] / "recipes/schedule/inputs/schaipp-124m-lr5e-4"
COS10 = "cosine:final=0.1,warmup=300"          # the fitted cos10_50000 curve's schedule
WSD = "wsd:cooldown=0.2,shape=linear,final=0,warmup=300"   # not among the fitted curves


@pytest.fixture(scope="module")
def law_file(tmp_path_factory):
    """The valley law fitted by the CLI on the two committed curves (as a user would)."""
    out = tmp_path_factory.mktemp("law") / "law.yaml"
    with pytest.raises(SystemExit) as exc:
        main(["schedule", "fit", str(INPUTS / "const_50000.csv"), "--curve",
              str(INPUTS / "cos10_50000.csv"), "--law", "valley", "--out", str(out)])
    assert exc.value.code == 0
    return out


def test_refit_and_predict_of_a_fitted_curve_gets_the_narrow_in_sample_interval(
        law_file, tmp_path, cli):
    law = load_schedule_law(law_file)
    iv = final_interval(law, COS10, 50000)
    ins, _ = in_sample_rel(law)
    doc = yaml.safe_load(law_file.read_text())
    expect = max(abs(c["final_rel"]) + c["mean_rel"] for c in doc["fit"]["curves"])
    assert iv.kind == "in-sample" and iv.matched == "cos10_50000"
    assert iv.rel == pytest.approx(expect) and ins == pytest.approx(expect)
    assert iv.rel < SHAPE_REL["valley"] / 2          # narrow: a fitted curve, not a new shape
    truth = load_csv(INPUTS / "cos10_50000.csv").final_loss
    assert iv.contains(truth)
    code, out, _ = cli(["schedule", "predict", "--law", str(law_file), "--schedule", COS10,
                        "--steps", "50000", "--csv", str(tmp_path / "p.csv"), "--no-plot"])
    assert code == 0 and "schedule and horizon of fitted curve cos10_50000" in out


def test_a_schedule_unlike_the_fitted_ones_gets_the_shape_allowance(law_file, tmp_path, cli):
    law = load_schedule_law(law_file)
    iv = final_interval(law, WSD, 50000)
    assert iv.kind == "shape" and iv.matched is None
    assert iv.rel == pytest.approx(SHAPE_REL["valley"])   # within the fitted horizon
    assert iv.lo < iv.loss < iv.hi
    code, out, _ = cli(["schedule", "predict", "--law", str(law_file), "--schedule", WSD,
                        "--steps", "50000", "--csv", str(tmp_path / "p.csv"), "--no-plot"])
    assert code == 0
    assert f"+-{SHAPE_REL['valley']:.2%}" in out and "unlike the fitted curves" in out


def test_the_interval_widens_with_each_doubling_of_the_horizon(law_file):
    law = load_schedule_law(law_file)
    T0 = law.total_steps_fitted
    rels = [final_interval(law, WSD, T0 * k).rel for k in (1, 2, 4, 8)]
    assert rels == sorted(rels) and len(set(rels)) == 4
    # one doubling adds HORIZON_REL[law] each time
    assert np.diff(rels) == pytest.approx([HORIZON_REL["valley"]] * 3)
    # the fitted cosine at twice its horizon: in-sample + one doubling, narrower than a new
    # shape at the same horizon
    cos2 = final_interval(law, COS10, 2 * T0)
    assert cos2.kind == "horizon"
    assert cos2.rel == pytest.approx(in_sample_rel(law)[0] + HORIZON_REL["valley"])
    assert cos2.rel < final_interval(law, WSD, 2 * T0).rel


def test_the_first_steps_of_a_fitted_curve_are_in_sample(law_file):
    """The law's loss at step t depends only on the LRs up to t: a constant run of 20k steps
    is the fitted 50k constant run's first 20k steps."""
    law = load_schedule_law(law_file)
    iv = final_interval(law, "constant:warmup=300", 20000)
    assert iv.kind == "in-sample" and iv.matched == "const_50000"
    assert "first steps of fitted curve const_50000" in iv.reason
    # a cosine compressed into 20k steps is not the fitted 50k cosine's first steps
    assert final_interval(law, "cosine:final=0.1,warmup=300", 20000).kind != "in-sample"


def test_predict_csv_and_text_carry_finite_intervals(law_file, tmp_path, cli):
    path = tmp_path / "p.csv"
    code, out, err = cli(["schedule", "predict", "--law", str(law_file), "--schedule", WSD,
                          "--steps", "100000", "--csv", str(path), "--plot",
                          str(tmp_path / "p.png")])
    assert code == 0, err
    rows = list(csv.DictReader(open(path)))
    assert list(rows[0]) == ["step", "lr", "predicted_loss", "lo", "hi"]
    vals = np.array([[float(r[k]) for k in ("predicted_loss", "lo", "hi")] for r in rows])
    assert np.isfinite(vals).all() and (vals > 0).all()
    assert (vals[:, 1] < vals[:, 0]).all() and (vals[:, 0] < vals[:, 2]).all()
    assert "interval" in out and "per doubling beyond the longest fitted curve" in out
    # each row is the final loss of a run of that many steps: in-sample while the WSD is
    # still the fitted constant run (after its first profile interval), wider past the
    # fitted horizon, widest with the cooldown beyond it; the last row is the printed one
    law = load_schedule_law(law_file)
    st = np.array([int(r["step"]) for r in rows])
    rel = vals[:, 2] / vals[:, 0] - 1
    ins = in_sample_rel(law)[0]
    early = (st > law.total_steps_fitted / 64) & (st <= law.total_steps_fitted)
    assert np.allclose(rel[early], ins, atol=2e-6)
    later = (st > 1.02 * law.total_steps_fitted) & (st < 80000)
    assert (np.diff(rel[later]) >= -2e-6).all() and (rel[later] > ins).all()
    assert rel[-1] == pytest.approx(final_interval(law, WSD, 100000).rel, abs=2e-6)
    for bad in ("nan", "inf"):
        assert bad not in out.lower().replace("interval", "").replace("information", "")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_optimize_says_when_the_runner_up_lies_inside_the_best_interval(law_file, cli):
    law = load_schedule_law(law_file)
    r = optimize(law, 50000)
    best, second = r.ranking[0], r.ranking[1]
    assert best.spec == r.best and best.lo < best.final_loss < best.hi
    # the flag is exactly "the runner-up's point prediction lies inside the best's interval"
    assert r.distinguishable == (not r.best_interval.contains(second.final_loss))
    assert r.within_best_interval == sum(r.best_interval.contains(x.final_loss)
                                         for x in r.ranking[1:])
    # with +-1.6% for new shapes and the best WSD cooldowns within 0.1% of each other, the
    # runner-up lies inside: it says so, and points to the measured ranking errors
    assert not r.distinguishable
    code, out, _ = cli(["schedule", "optimize", "--law", str(law_file), "--steps", "50000"])
    assert code == 0 and "within the interval: the runner-up" in out and "table C" in out
    best_line = next(l for l in out.splitlines() if l.startswith("best:"))
    assert f"[{r.best_interval.lo:.4f}, {r.best_interval.hi:.4f}]" in best_line
    code, js, _ = cli(["schedule", "optimize", "--law", str(law_file), "--steps", "50000",
                       "--json"])
    assert code == 0 and '"best_interval"' in js and '"distinguishable": false' in js


def test_old_law_files_without_curve_records_still_load_with_wider_intervals(law_file,
                                                                             tmp_path):
    doc = yaml.safe_load(law_file.read_text())
    for c in doc["fit"]["curves"]:
        del c["lr_profile"]
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump(doc))
    iv = final_interval(load_schedule_law(old), COS10, 50000)
    assert iv.kind == "shape" and "does not record its curves' schedules" in iv.reason
    del doc["fit"]
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump(doc))
    law = load_schedule_law(bare)
    assert in_sample_rel(law)[0] == IN_SAMPLE_UNRECORDED
    assert final_interval(law, WSD, 50000).rel == pytest.approx(SHAPE_REL["valley"])


@pytest.mark.parametrize("edit, needle", [
    (lambda c: c.update(lr_profile=c["lr_profile"][:10]), "lr_profile must be 65 numbers"),
    (lambda c: c.update(lr_profile=[float("nan")] * 65), "lr_profile must be 65 numbers"),
    (lambda c: c.update(final_rel="big"), "final_rel must be a finite number"),
    (lambda c: c.pop("total_steps"), "lr_profile needs total_steps"),
])
def test_a_broken_curve_record_is_one_error_line(law_file, tmp_path, cli, edit, needle):
    doc = yaml.safe_load(law_file.read_text())
    edit(doc["fit"]["curves"][0])
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    code, out, err = cli(["schedule", "predict", "--law", str(bad), "--schedule", WSD,
                          "--steps", "50000", "--csv", str(tmp_path / "p.csv"), "--no-plot"])
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p.csv").exists()


def test_advisor_run_keeps_its_per_doubling_rule():
    """forecast.half_width reads the same per-doubling rule: EXTRAP_REL[kind] per doubling of
    the step beyond the last logged one, at least a quarter doubling, + 2 x the level's error."""
    from advisor.schedule.inflight import forecast
    assert forecast.EXTRAP_REL is EXTRAP_REL
    assert forecast.half_width("law", 1000, 2000, 0.0) == EXTRAP_REL["law"]
    assert forecast.half_width("anchored", 1000, 4000, 0.001) == pytest.approx(
        2 * EXTRAP_REL["anchored"] + 0.002)
    assert forecast.half_width("progress", 1000, 1000, 0.0) == 0.25 * EXTRAP_REL["progress"]
    assert math.isfinite(forecast.half_width("shipped", 1, 10 ** 9, 0.0))
