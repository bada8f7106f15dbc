"""calibration.analyze.muon_summary: best LR and loss per width per optimizer arm, and the verdicts."""
import math
from types import SimpleNamespace

import pytest

from advisor.errors import AdvisorError
from calibration.analyze.muon_summary import arm_rows, markdown_table, plot, transfer_verdicts


def run(opt, width, lr, loss, conv="spectral", status="finished", tokens=40960):
    s = {"optimizer": opt, "width": width, "lr": lr, "tokens": tokens, "parameterization": "mup"}
    if opt == "muon":
        s["muon_convention"] = conv
    return SimpleNamespace(settings=s, status=status, final_val_loss=loss)


def _bowl(best_k, k, floor):
    return floor + 0.05 * (k - best_k) ** 2


def synthetic():
    runs = []
    for i, w in enumerate((16, 32, 64, 128)):
        for k in range(-9, -3):
            runs.append(run("muadamw", w, 2.0 ** k, _bowl(-7, k, 3.0 - 0.1 * i)))
            runs.append(run("muon", w, 2.0 ** k, _bowl(-5, k, 2.8 - 0.1 * i)))
            # match_rms: the optimum drifts by a factor of 2 per doubling of width
            runs.append(run("muon", w, 2.0 ** k, _bowl(-5 - i, k, 2.85 - 0.1 * i),
                            conv="match_rms_adamw"))
    runs.append(run("muon", 128, 2.0 ** -3, math.nan, status="diverged"))
    runs.append(run("muon", 128, 2.0 ** -2, math.nan, status="failed"))
    return runs


def test_verdicts_find_the_drift_and_the_best_losses():
    rows = arm_rows(synthetic())
    v = transfer_verdicts(rows)
    assert v["AdamW (muP)"].ok and v["Muon spectral"].max_shift == 0
    assert v["Muon match_rms_adamw"].max_shift == 3 and not v["Muon match_rms_adamw"].ok
    assert v["Muon match_rms_adamw"].edge == ()      # best 2^-8 at width 128: inside the grid
    assert v["Muon match_rms_adamw"].best_lr == (2.0 ** -5, 2.0 ** -6, 2.0 ** -7, 2.0 ** -8)
    for arm, want in (("Muon spectral", -5), ("AdamW (muP)", -7)):
        assert list(v[arm].smooth_log2_lr) == pytest.approx([want] * 4, abs=1e-6)
    spec128 = next(r for r in rows if r.arm == "Muon spectral" and r.width == 128)
    assert math.isinf(dict(spec128.curve)[2.0 ** -3])         # diverged counts as +inf
    table = markdown_table(rows)
    assert "| 16 | 2^-7, 3.000 | 2^-5, 2.800 |" in table and "-0.200" in table


def test_unequal_tokens_and_empty_stores_are_refused():
    with pytest.raises(AdvisorError, match="equal tokens"):
        arm_rows([run("muadamw", 16, 0.01, 3.0), run("muon", 16, 0.01, 3.0, tokens=1)])
    with pytest.raises(AdvisorError, match="no finished"):
        arm_rows([run("muon", 16, 0.01, 3.0, status="failed")])


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "m.png"
    plot(arm_rows(synthetic()), out)
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_cli_on_a_missing_store_is_one_error_line(tmp_path, capsys):
    from advisor.cli.app import main
    with pytest.raises(SystemExit) as exc:
        main(["results", str(tmp_path / "nothing"), "--by", "optimizer"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


def test_notes_say_so_when_the_best_is_at_a_grid_end_never_nan():
    from calibration.analyze.muon_summary import summary_lines

    runs = [run("muon", w, 2.0 ** k, 3.0 + 0.1 * k) for w in (16, 32) for k in (-6, -5, -4)]
    lines = summary_lines(arm_rows(runs))
    assert "nan" not in "\n".join(lines).lower()
    assert "Muon spectral: smooth optimum log2(LR) by width 16: - (best at a grid end), " \
           "32: - (best at a grid end)" in lines


def test_a_width_where_every_run_diverged_is_said_in_words():
    runs = [run("muon", 16, 2.0 ** k, 3.0 + 0.1 * (k + 5) ** 2) for k in (-6, -5, -4)]
    runs += [run("muon", 32, 2.0 ** k, math.nan, status="diverged") for k in (-6, -5, -4)]
    runs += [run("muadamw", w, 2.0 ** -7, 3.1) for w in (16, 32)]
    table = markdown_table(arm_rows(runs))
    assert table.splitlines()[3].endswith("| all diverged | - |")       # Muon - AdamW at 32
    assert "| 32 | 2^-7, 3.100 | all diverged |" in table
    assert "no (no best LR where every run diverged)" in table
    assert "nan" not in table.lower() and "inf" not in table.lower()


def test_runs_of_one_arm_that_differ_in_another_setting_are_never_averaged():
    """One grouping (advisor.specs.grouping.group_key): two weight decays of one arm at one
    width are two sweeps, not one curve."""
    runs = synthetic()
    odd = run("muon", 32, 2.0 ** -6, 2.0)
    odd.settings["weight_decay"] = 0.1
    with pytest.raises(AdvisorError, match="differ in weight_decay"):
        arm_rows(runs + [odd])
