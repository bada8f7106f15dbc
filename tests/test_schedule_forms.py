"""One registry of schedule-law forms (advisor/schedule/forms.py), read by the fitter, the
law file and prediction alike: a law fitted, written and loaded back predicts what the fit
predicted, for every registered form; a store's curves are grouped by one named key."""
import numpy as np
import pytest

from advisor.rules.lr_schedule import parse_schedule
from advisor.schedule import tissue
from advisor.schedule.curves import Curve, curve_group_key
from advisor.schedule.fitting import FitOptions, fit_law, predict_curve
from advisor.schedule.forms import FORMS
from advisor.schedule.lawfile import (build_document, dump_schedule_law, load_schedule_law,
                                      validate_schedule_law_dict)

T, PEAK = 3000, 1e-3
STEPS = np.arange(25, T + 1, 25)


def _curves():
    """Constant and cosine-to-10% curves from a known Tissue law (absolute LRs)."""
    out = []
    for sched in ("constant", "cosine:final=0.1"):
        lr = PEAK * np.concatenate([[1.0], parse_schedule(sched).multipliers(T)])
        loss = tissue.predict([2.0, 10.0, 0.5, 2e-4], tissue.make_plan(lr / PEAK, STEPS))
        out.append(Curve(name=sched, lrs=lr, steps=STEPS, loss=loss, source="synthetic"))
    return out


@pytest.mark.parametrize("law", sorted(FORMS))
def test_every_form_fits_writes_and_predicts_the_same_from_its_file(law, tmp_path):
    curves = _curves()
    fit = fit_law(law, curves, FitOptions(max_points=60, coarse_points=30, n_refine=1))
    assert set(fit.params) == set(FORMS[law].params)
    doc = build_document(fit, curves)
    loaded = load_schedule_law(dump_schedule_law(doc, tmp_path / f"{law}.yaml"))
    wsd = PEAK * np.concatenate([[1.0], parse_schedule("wsd:cooldown=0.3").multipliers(T)])
    np.testing.assert_allclose(loaded.predict(wsd, STEPS), predict_curve(fit, wsd, STEPS),
                               rtol=1e-12)
    assert ("valley law: ours" in " ".join(doc["provenance"]["references"])) == \
        FORMS[law].ours
    # every optimizer call of the fit is in the provenance, with its outcome and its cost
    calls = doc["provenance"]["calls"]
    assert calls and all(c["nfev"] > 0 and c["message"] and c["converged"] in (True, False)
                         for c in calls)
    assert len(calls) == (1 if FORMS[law].fitter == "grid" else 2)
    assert doc["provenance"]["unidentified"] == []


def test_form_rules_are_read_from_the_registry():
    base = {"schema": "hp-advisor/schedule-law/v1", "lr_scale": 1e-3,
            "total_steps_fitted": 100}
    from advisor.errors import AdvisorError
    tis = dict(base, law="tissue", lam=1.5,
               params={"L0": 2.0, "A": 1.0, "alpha": 0.5, "C": 1e-3})
    with pytest.raises(AdvisorError, match="lam in"):
        validate_schedule_law_dict(tis)
    val = dict(base, law="valley", params={"L0": 2.0, "A": 1.0, "alpha": 0.5, "K": 0.1,
                                           "p": 5.0, "c": 1e-3, "rho": 1.0})
    with pytest.raises(AdvisorError, match="p in"):
        validate_schedule_law_dict(val)
    validate_schedule_law_dict(dict(val, params=dict(val["params"], p=0.5)))


def test_curves_group_by_everything_but_schedule_seed_and_horizon():
    a = {"width": 64, "lr": 1e-3, "schedule": "constant", "seed": 0, "tokens": 100}
    assert curve_group_key(a) == curve_group_key(dict(a, schedule="cosine", seed=1,
                                                      tokens=200))
    # unlike the stack key, a different peak LR is another law
    assert curve_group_key(a) != curve_group_key(dict(a, lr=2e-3))
