"""Schedule laws on the published curves of Luo et al. 2025 (shared/data/external).

The authors' split: fit on cosine_24000, constant_24000 and wsdcon_9; test on the six
other schedules. Reported test errors (mean relative error over test points, averaged over
the six curves): 25M 0.110%, 100M 0.142%, 400M 0.168% (arXiv 2503.12811; figures
recomputed in shared/data/external/README.md).
"""
import numpy as np
import pytest

from advisor.errors import AdvisorError
from advisor.schedule import multipower as mp
from advisor.schedule import tissue
from advisor.schedule.curves import MP_TEST, MP_TRAIN, load_multipower_size, multipower_lrs
from advisor.schedule.fitting import FitOptions, curve_errors, fit_law

# Constants the authors publish (thu-yao-01-luo/MultiPowerLaw, src/config.py), absolute LRs.
AUTHORS = {
    "25M": [3.04045406, 0.52468604, 0.50786857, 363.78751622, 2.06560812, 0.58279013, 0.64142257],
    "100M": [2.6514477, 0.60115152, 0.45295811, 437.9464276, 2.13245612, 0.59785199, 0.65523644],
    "400M": [2.37474466, 0.65421216, 0.42878731, 523.42464371, 2.02462735, 0.59350493, 0.63472457],
}
REPORTED_MEAN = {"25M": 0.00110, "100M": 0.00142, "400M": 0.00168}


@pytest.fixture(scope="module")
def curves(external_data):
    root = external_data / "multipower_loss_curves"
    return {s: load_multipower_size(s, root=root) for s in ("25M", "100M", "400M")}


def test_block_plan_matches_the_defining_sum():
    # A WSD schedule with warmup, a 1-sqrt-like cooldown and a step drop: every kind of LR change.
    T = 3000
    u = np.ones(T + 1)
    u[:200] = np.linspace(0, 1, 200)
    u[1800:2400] = 1 - np.sqrt(np.linspace(0, 1, 600)) * 0.8
    u[2400:] = 0.15
    steps = np.array([50, 199, 400, 1000, 1800, 1801, 1900, 2100, 2399, 2400, 2401, 2999, 3000])
    th = np.array([2.5, 20.0, 0.45, 0.2, 0.02, 0.6, 0.65])
    exact = mp.predict_exact(th, u, steps)
    fast = mp.predict(th, mp.make_plan(u, steps, warmup_in_ld=True))
    # blocks cost at most 1e-4 relative, ten times below the laws' own test error
    assert np.max(np.abs(fast - exact) / exact) < 1e-4


def test_tissue_annealing_area_is_the_momentum_recurrence():
    u = np.concatenate([np.ones(100), np.linspace(1, 0.1, 50), np.full(30, 0.1)])
    steps = np.arange(1, len(u))
    plan = tissue.make_plan(u, steps, lam=0.99)
    m, S2 = 0.0, []
    for i in range(1, len(u)):
        m = 0.99 * m + (u[i - 1] - u[i])
        S2.append((S2[-1] if S2 else 0.0) + m)
    assert np.allclose(plan.S2, S2)
    assert np.allclose(plan.S1, np.cumsum(u)[steps])


@pytest.mark.parametrize("size", ["25M", "100M", "400M"])
def test_authors_constants_reproduce_their_reported_test_error(curves, size):
    # Checks our per-step LR reconstruction and law evaluation against the paper's numbers.
    th = mp.params_from_raw(AUTHORS[size], 3e-4)
    errs = []
    for n in MP_TEST:
        c = curves[size][n]
        pred = mp.predict(th, mp.make_plan(c.lrs / 3e-4, c.steps, warmup_in_ld=True))
        errs.append(np.mean(np.abs(pred - c.loss) / c.loss))
    assert np.mean(errs) == pytest.approx(REPORTED_MEAN[size], abs=0.00003)


@pytest.mark.parametrize("size", ["25M", "100M", "400M"])
@pytest.mark.parametrize("law,opts,bound", [
    ("multipower", FitOptions(), 0.0025),
    ("multipower", FitOptions(fix=(("beta", 0.6), ("gamma", 0.65))), 0.0023),
    ("tissue", FitOptions(), 0.0025),
])
def test_paper_split_test_error(curves, size, law, opts, bound):
    """Our fits on the authors' split predict the six test curves to about the paper's
    accuracy (measured: multi-power 0.14/0.18/0.23%, with beta, gamma fixed
    0.12/0.14/0.22%, Tissue 0.21/0.20/0.23% at 25M/100M/400M)."""
    fit = fit_law(law, [curves[size][n] for n in MP_TRAIN], opts)
    errs = [curve_errors(fit, curves[size][n]) for n in MP_TEST]
    mean = np.mean([e["mean_rel"] for e in errs])
    assert mean < bound
    # and the fit reproduces its own training curves closely
    train = [curve_errors(fit, curves[size][n])["mean_rel"] for n in MP_TRAIN]
    assert max(train) < 0.0025


def test_rebuilt_schedules_have_the_documented_shape():
    lr = multipower_lrs("wsd_20000_24000")
    assert len(lr) == 24000 and lr[0] == 0 and lr[2159] == pytest.approx(3e-4)
    assert lr[19999] == pytest.approx(3e-4) and lr[23999] == pytest.approx(3e-5, rel=1e-3)
    con = multipower_lrs("wsdcon_3")
    assert len(con) == 16000 and con[8000] == pytest.approx(3e-5)
    with pytest.raises(AdvisorError):
        multipower_lrs("onecycle_100")


def test_constant_lr_only_is_not_identifiable(curves):
    with pytest.raises(AdvisorError, match="not identifiable"):
        fit_law("multipower", [curves["25M"]["constant_24000"]])


@pytest.mark.slow
def test_cv_choice_beats_the_plain_fit_on_final_losses_at_400m(curves):
    """At 400M the law chosen by cross-validation on the three training curves predicts the
    six held-out final losses better than the plain multi-power fit (measured: worst 0.50%
    vs 1.01%), and exaggerates the WSD-over-cosine gain less than the published constants
    (0.034 vs 0.057 nats predicted; 0.017 measured). It does NOT reach 0.3% (see README)."""
    from advisor.schedule.fitting import predict_curve
    from advisor.schedule.select import select_and_fit
    cs = curves["400M"]
    train = [cs[n] for n in MP_TRAIN]
    ours, _ = select_and_fit(train)
    plain = fit_law("multipower", train)

    def worst_final(fit):
        return max(abs(curve_errors(fit, cs[n])["final_rel"]) for n in MP_TEST)

    assert worst_final(ours) < 0.006 < worst_final(plain)
    gain = lambda pred: pred("cosine_24000") - pred("wsd_20000_24000")
    true_gain = gain(lambda n: cs[n].final_loss)
    ours_gain = gain(lambda n: predict_curve(ours, cs[n])[-1])
    th = mp.params_from_raw(AUTHORS["400M"], 3e-4)
    auth_gain = gain(lambda n: mp.predict(th, mp.make_plan(cs[n].lrs / 3e-4, cs[n].steps,
                                                           warmup_in_ld=True))[-1])
    assert abs(ours_gain - true_gain) < 0.5 * abs(auth_gain - true_gain)
