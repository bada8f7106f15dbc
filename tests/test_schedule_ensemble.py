"""Model averaging across schedule-law forms (advisor/schedule/ensemble.py): the weights are
1 / (cross-validation score)**2, normalised; the prediction is the weighted mean of the
members' fits; the interval adds twice the members' weighted spread to the caller's
allowance; a member that cannot be fitted gets no weight."""
import numpy as np
import pytest

from advisor.errors import AdvisorError
from advisor.rules.lr_schedule import parse_schedule
from advisor.schedule import tissue
from advisor.schedule.curves import Curve
from advisor.schedule.ensemble import (SPREAD_Z, average_fits, best_per_form, cv_weights,
                                       select_and_average)
from advisor.schedule.fitting import FitOptions, fit_law, predict_curve

T, PEAK = 3000, 1e-3
STEPS = np.arange(25, T + 1, 25)
TRUE = [2.0, 10.0, 0.5, 2e-4]          # a Tissue law: the data's own form
FAST = FitOptions(max_points=60, coarse_points=30, n_refine=1)


def _curve(spec):
    lr = PEAK * np.concatenate([[1.0], parse_schedule(spec).multipliers(T)])
    loss = tissue.predict(TRUE, tissue.make_plan(lr / PEAK, STEPS))
    return Curve(name=spec, lrs=lr, steps=STEPS, loss=loss, source="synthetic")


@pytest.fixture(scope="module")
def fit_set():
    return [_curve("constant"), _curve("cosine:final=0.1")]


def test_weights_are_inverse_squared_scores_and_unusable_scores_get_none():
    w = cv_weights([0.01, 0.02, float("inf"), float("nan")])
    assert w == pytest.approx([0.8, 0.2, 0.0, 0.0])
    assert cv_weights([0.03]) == pytest.approx([1.0])
    with pytest.raises(AdvisorError, match="no candidate"):
        cv_weights([float("inf"), float("nan")])


def test_prediction_is_the_weighted_mean_and_the_interval_grows_with_disagreement(fit_set):
    rows = [{"law": "tissue", "options": FAST, "label": "tissue", "score": 0.01},
            {"law": "valley", "options": FAST, "label": "valley", "score": 0.02},
            {"law": "no such law", "options": FAST, "label": "bad", "score": 0.005}]
    ens = average_fits(fit_set, rows)
    # the unfittable row (the best score) is dropped and the others renormalised
    assert ens.labels == ("tissue", "valley")
    assert ens.weights == pytest.approx((0.8, 0.2))
    wsd = _curve("wsd:cooldown=0.2")
    p1 = predict_curve(fit_law("tissue", fit_set, FAST), wsd)
    p2 = predict_curve(fit_law("valley", fit_set, FAST), wsd)
    assert ens.predict(wsd) == pytest.approx(0.8 * p1 + 0.2 * p2, rel=1e-9)
    spread = np.sqrt(0.8 * 0.2) * np.abs(p1 - p2)
    assert ens.spread(wsd) == pytest.approx(spread, rel=1e-6, abs=1e-12)
    mean, lo, hi = ens.interval(wsd, rel=0.01)
    half = 0.01 * mean + SPREAD_Z * spread
    assert hi - mean == pytest.approx(half, rel=1e-6)
    assert mean - lo == pytest.approx(half, rel=1e-6)
    # two standard deviations reach every member here, with the caller's allowance beyond
    assert np.all(lo < np.minimum(p1, p2)) and np.all(hi > np.maximum(p1, p2))
    # forms that agree add nothing to the caller's allowance
    same = average_fits(fit_set, [dict(rows[0], score=0.01), dict(rows[0], score=0.03)])
    m, lo, hi = same.interval(wsd, rel=0.01)
    assert hi - m == pytest.approx(0.01 * m, rel=1e-9)


def test_cross_validated_average_leans_on_the_form_that_generated_the_data(fit_set):
    ens, rows = select_and_average(fit_set, [("tissue", FAST), ("valley", FAST)])
    assert sum(ens.weights) == pytest.approx(1.0)
    assert dict(zip(ens.labels, ens.weights))[rows[0]["label"]] == max(ens.weights)
    assert rows[0]["law"] == "tissue"
    wsd = _curve("wsd:cooldown=0.2")
    # a schedule it was not fitted on: the final loss within 0.5% of the truth
    assert abs(ens.predict(wsd)[-1] / wsd.loss[-1] - 1) < 0.005


def test_power_sharpens_the_weights_up_to_the_single_best_and_per_form_keeps_one_per_law():
    scores = [0.01, 0.02, 0.04]
    assert cv_weights(scores, power=4) == pytest.approx(np.array([1, 1 / 16, 1 / 256])
                                                        / (1 + 1 / 16 + 1 / 256))
    assert list(cv_weights(scores, power=float("inf"))) == [1.0, 0.0, 0.0]
    rows = [{"law": "valley", "score": 0.03}, {"law": "multipower", "score": 0.01},
            {"law": "multipower", "score": 0.02}, {"law": "valley", "score": 0.02}]
    assert [(r["law"], r["score"]) for r in best_per_form(rows)] == [("multipower", 0.01),
                                                                      ("valley", 0.02)]
