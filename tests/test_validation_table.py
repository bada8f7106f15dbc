"""How `advisor validate` measures and shows a loss gap (advisor/fit/validation.py).

Specification: each way of choosing the LR at the held-out width is judged by the measured
held-out loss of a run at that LR minus the best loss measured at that width (grid and
choices); a diverged run is an infinite gap, never a silent skip.
"""
from __future__ import annotations

import math

import pytest

from advisor.errors import AdvisorError
from advisor.fit.validation import best_lr, markdown, transfer_table

GRID = {2 ** -9: 3.30, 2 ** -8: 3.08, 2 ** -7: 2.99, 2 ** -6: 3.00, 2 ** -5: math.inf}


def test_gap_is_measured_loss_minus_the_best_measured():
    rows = transfer_table(GRID, {"law": 2 ** -6, "Step Law": 0.003, "muP": 2 ** -7},
                          {"law": 3.00, "Step Law": 3.14, "muP": 2.99})
    by = {r["choice"]: r for r in rows}
    assert rows[0]["choice"] == "best measured"
    assert by["best measured"]["lr"] == 2 ** -7 and by["best measured"]["loss"] == 2.99
    assert by["law"]["gap"] == pytest.approx(0.01)
    assert by["law"]["gap_pct"] == pytest.approx(100 * 0.01 / 2.99)
    assert by["Step Law"]["gap"] == pytest.approx(0.15)
    assert by["muP"]["gap"] == 0.0
    assert by["law"]["log2_lr_vs_best"] == pytest.approx(1.0)


def test_a_diverged_choice_is_an_infinite_gap_and_says_so():
    rows = transfer_table(GRID, {"bold": 2 ** -5}, {"bold": math.inf})
    assert math.isinf(rows[1]["gap"])
    assert "| bold | 0.0312 | diverged | inf |" in markdown(rows, "t")


def test_a_grid_with_no_finished_run_is_an_error():
    with pytest.raises(AdvisorError, match="no finished run"):
        best_lr({1e-3: math.inf, 2e-3: math.nan})


def test_the_json_of_a_diverged_choice_has_no_infinity_and_says_diverged(tmp_path):
    import json

    from calibration.analyze.validate import write_json

    rows = transfer_table(GRID, {"bold": 2 ** -5, "law": 2 ** -7}, {"bold": math.inf,
                                                                    "law": 2.99})
    write_json({"rows": rows}, tmp_path / "v.json")

    def refuse(constant):
        raise AssertionError(f"{constant} in the JSON")

    doc = json.loads((tmp_path / "v.json").read_text(), parse_constant=refuse)
    bold = doc["rows"][1]
    assert bold["diverged"] is True and bold["loss"] is None and bold["gap"] is None
    assert doc["rows"][2]["diverged"] is False and doc["rows"][2]["gap"] == 0.0
