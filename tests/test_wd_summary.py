"""calibration.analyze.wd_summary: best weight decay and knee per width per rule, against the decay-per-
step prediction, on synthetic stores whose optimum is known."""
import math
from types import SimpleNamespace

import pytest

from advisor.errors import AdvisorError
from calibration.analyze.wd_summary import (knee, markdown_table, no_decay_losses, plot,
                                    rule_verdicts, wd_rows)

BASE = 32


def run(rule, width, wd, loss, status="finished", lr=2 ** -6, optimizer="muadamw"):
    s = {"optimizer": optimizer, "parameterization": "mup", "width": width, "lr": lr,
         "tokens": 204800, "weight_decay": wd, "wd_rule": rule, "model": {"base_width": BASE}}
    return SimpleNamespace(settings=s, status=status, final_val_loss=loss)


def synthetic(best_log2=-3.0):
    """Loss a bowl in log2 of the hidden matrices' decay per step: the best base-width wd
    moves as m^(1 - e) (none m, sqrt m^1/2, mup flat)."""
    e = {"mup": 1.0, "sqrt": 0.5, "none": 0.0}
    runs = []
    for k in range(-6, 3):
        runs.append(run("mup", BASE, 2.0 ** k, 2.0 + 0.05 * (k - best_log2) ** 2))
    for rule, ex in e.items():
        for width in (64, 128):
            m = width / BASE
            for k in range(-6, 3):
                x = k + (ex - 1) * math.log2(m)          # log2 of wd relative to decay per step
                runs.append(run(rule, width, 2.0 ** k, 1.9 + 0.05 * (x - best_log2) ** 2))
    runs.append(run("none", 128, 4.0, math.nan, status="diverged"))
    runs.append(run("none", 128, 8.0, math.nan, status="failed"))
    return runs


def test_each_rule_moves_the_best_as_the_decay_per_step_predicts():
    rows = wd_rows(synthetic())
    v = rule_verdicts(rows, BASE)
    assert set(v) == {"mup", "sqrt", "none"}
    assert v["mup"].shift_pow2 == (0, 0, 0)
    assert v["none"].shift_pow2 == (0, 1, 2)
    assert v["sqrt"].shift_pow2[2] == 1
    for rule in v:
        assert v[rule].predicted_pow2[2] == pytest.approx(v[rule].shift_pow2[2])
        assert v[rule].knee_shift_pow2[2] == pytest.approx(v[rule].predicted_pow2[2],
                                                               abs=1e-9)
    # the base width's curve is shared by every rule
    assert {r.best_loss for r in rows if r.width == BASE} == {2.0}
    none128 = next(r for r in rows if r.rule == "none" and r.width == 128)
    assert math.isinf(dict(none128.curve)[4.0]) and 8.0 not in dict(none128.curve)
    runs = synthetic() + [run("mup", w, 0.0, 2.5) for w in (BASE, 64, 128)]
    assert no_decay_losses(runs) == {BASE: 2.5, 64: 2.5, 128: 2.5}
    assert wd_rows(runs) == rows                         # weight decay 0 is not on the curves
    table = markdown_table(rows, BASE, no_decay_losses(runs))
    assert "| none | 128 | 2^-1 | 1.9000 | -0.6000 | +2.0 |" in table


def test_knee_is_found_when_the_best_is_at_the_low_end():
    rows = wd_rows([run("mup", BASE, 2.0 ** k, 2.0 + 0.02 * 2 ** k) for k in range(-5, 2)]
                   + [run("none", 64, 2.0 ** k, 2.0 + 0.005 * 2 ** k) for k in range(-5, 2)])
    v = rule_verdicts(rows, BASE)
    assert v["none"].edge == (BASE, 64)
    # best + 0.02 nats: at the base between wd 1 and 2 (log2 1/32 by interpolation); at
    # width 64 (half the slope) never reached in the grid
    assert v["none"].knee_log2[0] == pytest.approx(1 / 32)
    assert math.isnan(v["none"].knee_log2[1])
    assert math.isnan(knee(rows[-1], nats=10.0))


def test_bad_stores_are_one_clear_error():
    with pytest.raises(AdvisorError, match="one lr"):
        wd_rows([run("mup", BASE, 0.1, 2.0), run("mup", 64, 0.1, 2.0, lr=0.1)])
    with pytest.raises(AdvisorError, match="muP AdamW"):
        wd_rows([run("mup", BASE, 0.1, 2.0, optimizer="adamw")])
    with pytest.raises(AdvisorError, match="base width"):
        wd_rows([run("mup", 64, 0.1, 2.0)])
    with pytest.raises(AdvisorError, match="no finished"):
        wd_rows([run("mup", BASE, 0.0, 2.0)])


def test_plot_and_cli(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    rows = wd_rows(synthetic())
    out = tmp_path / "wd.png"
    plot(rows, out, BASE)
    assert out.stat().st_size > 1000
    from advisor.cli.app import main
    with pytest.raises(SystemExit) as exc:
        main(["results", str(tmp_path / "nothing-here"), "--by", "wd-rule"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_a_curve_without_a_knee_shows_a_dash_not_nan():
    """Loss still falling at the top of the grid: no knee, so no knee shift to print."""
    runs = [run("mup", w, 2.0 ** k, 2.0 - 0.01 * k) for w in (BASE, 64) for k in range(-3, 1)]
    table = markdown_table(wd_rows(runs), BASE)
    assert "nan" not in table.lower()
    assert "| mup | 64 | 2^0 | 2.0000 | - | +0.0 | - | - | +0.0 |" in table
