"""One pass over a run in progress: fit, health, and every requested prediction (pure).

:func:`analyze` returns the fitted :class:`~advisor.schedule.inflight.forecast.Model` and a plain
dict (the JSON of ``advisor run --json``):

* ``model``: how the run was modelled (law fitted on the curve, or progress + prior);
* ``health``: :func:`advisor.schedule.inflight.health.check_health`'s findings;
* ``predictions``: one entry per scenario -- ``plan`` (final loss of the planned schedule),
  ``constant`` (never cooling down), ``cooldown_now``, ``cooldown_at``, ``extension`` --
  each with loss and interval, or ``not_predicted`` and the reason;
* ``best_cooldown``: for the target budget, the cooldown start (and shape) of lowest
  predicted final loss and the band of starts within ``BAND_REL`` of it.

The fit is done twice when the first pass flags points above the band: the second fit
leaves them out, so a spike or a divergence does not drag the expected curve.
"""
from __future__ import annotations

from advisor.schedule.inflight import scenarios as sc
from advisor.schedule.inflight.forecast import NotPredictable, fit_model
from advisor.schedule.inflight.health import check_health
from advisor.schedule.optimize import BAND_REL


def model_label(model) -> str:
    if model.kind == "law":
        return f"{model.fit.law} [{model.fit.options.label()}] fitted on the run"
    if model.kind == "anchored":
        return f"{model.prior.law} prior (--law), level re-fitted on the run"
    if model.fallback is not None:
        return ("progress at constant LR: Lc + A S^-alpha; decays from the shipped prior "
                f"({model.fallback.law} law, recipes/schedule/prior.yaml), level re-fitted "
                "on the run")
    return "progress at constant LR: Lc + A S^-alpha (no prior)"


def model_params(model) -> dict:
    from advisor.schedule.forms import FORMS

    if model.kind == "law":
        return dict(model.fit.params)
    if model.kind == "anchored":
        return dict(zip(FORMS[model.prior.law].params, map(float, model.theta)))
    return dict(zip(("Lc", "A", "alpha"), model.progress))


def settled_step(curve) -> int:
    """First step judged by the health check: twice the warmup, and past the first 5% of
    the logged points (the laws do not describe the warmup transient)."""
    return int(max(2 * curve.ipeak(), curve.steps[int(0.05 * len(curve.steps))]))


def _pred(model, lrs, step, **extra):
    try:
        return dict(model.predict(lrs, step), **extra)
    except NotPredictable as exc:
        return dict(extra, step=int(step), not_predicted=str(exc))


def analyze(log, plan, prior=None, *, cooldown_length=None, shape: str = "linear",
            final: float = 0.0, cooldown_at=(), extend_to=(), budget: int | None = None,
            since: int | None = None, fallback=None) -> dict:
    """``fallback``: the law for decays of a run at constant LR so far when ``prior`` is
    None (``advisor run`` passes the shipped prior, forecast.shipped_prior)."""
    curve = plan.curve
    model = fit_model(curve, plan.peak_lr, prior, fallback=fallback)
    pred = model.in_sample(curve.steps)
    gn = None if log.grad_norm is None else log.grad_norm[: len(curve.steps)]
    lg = None if log.logit is None else log.logit[: len(curve.steps)]
    settled = settled_step(curve)
    health = check_health(curve.steps, curve.loss, pred, gn, since, settled=settled, logit=lg)
    if health["above_band"].any():
        mask = ~health["above_band"]
        if mask.sum() >= 8:
            model = fit_model(curve, plan.peak_lr, prior, mask=mask, fallback=fallback)
            pred = model.in_sample(curve.steps)
            health = check_health(curve.steps, curve.loss, pred, gn, since,
                                  sigma=model.sigma, settled=settled, logit=lg)
    out = {"now": plan.now, "peak_lr": plan.peak_lr, "lr_from": plan.source_of_lr,
           "schedule": plan.spec, "total_steps": plan.total_steps,
           "model": {"kind": model.kind, "law": model_label(model),
                     "params": model_params(model),
                     "residual_sigma_rel": model.sigma,
                     "prior": None if prior is None else prior.doc.get("law"),
                     "warnings": model.warnings},
           "fitted": {"steps": curve.steps.tolist(), "loss": curve.loss.tolist(),
                      "law": pred.tolist()},
           "health": {k: v for k, v in health.items() if k != "above_band"}}
    preds = []
    if health["diverging"]:
        d = next(f for f in health["findings"] if f["kind"] == "divergence")
        out["predictions"] = [{"scenario": "all", "not_predicted":
                               f"the run is diverging since step {d['start_step']}: its "
                               f"loss no longer follows any schedule law"}]
        out["best_cooldown"] = None
        return model, out
    if plan.planned_lrs is not None:
        preds.append(_pred(model, plan.planned_lrs, plan.total_steps, scenario="plan",
                           spec=plan.spec))
    horizon = plan.total_steps or None
    if horizon and horizon > plan.now and sc.has_stable_phase(plan):
        preds.append(_pred(model, sc.stable_lrs(plan, horizon), horizon,
                           scenario="constant", what="no cooldown: the stable LR held"))
    L = sc.cooldown_length(cooldown_length, plan.now)
    preds.append(_pred(model, sc.cooldown_lrs(plan, plan.now, L, shape, final), plan.now + L,
                       scenario="cooldown_now", start=plan.now, length=L, shape=shape))
    for s in cooldown_at:
        Ls = sc.cooldown_length(cooldown_length, s)
        preds.append(_pred(model, sc.cooldown_lrs(plan, s, Ls, shape, final), s + Ls,
                           scenario="cooldown_at", start=int(s), length=Ls, shape=shape))
    for T2 in extend_to:
        lrs, start = sc.extension_lrs(plan, int(T2), shape, final)
        preds.append(_pred(model, lrs, int(T2), scenario="extension", start=start,
                           length=int(T2) - start, shape=shape))
    out["predictions"] = preds
    B = budget or plan.total_steps
    out["best_cooldown"] = best_cooldown(model, plan, B, final) if B else None
    return model, out


def best_cooldown(model, plan, budget: int, final: float = 0.0) -> dict:
    """The cooldown start and shape of lowest predicted loss at ``budget`` steps."""
    rows = []
    for shape in sc.SHAPES:
        for s in sc.cooldown_starts(plan.now, budget):
            r = _pred(model, sc.cooldown_lrs(plan, s, budget - s, shape, final), budget,
                      start=s, shape=shape)
            if "not_predicted" in r:
                return {"budget": budget, "not_predicted": r["not_predicted"]}
            rows.append(r)
    if not rows:
        return {"budget": budget, "not_predicted": "the budget is not after the last "
                                                   "logged step"}
    best = min(rows, key=lambda r: r["loss"])
    tol = BAND_REL * best["loss"]
    band = [r["start"] for r in rows if r["shape"] == best["shape"]
            and r["loss"] <= best["loss"] + tol]
    return {"budget": budget, "start": best["start"], "length": budget - best["start"],
            "shape": best["shape"], "loss": best["loss"], "lo": best["lo"], "hi": best["hi"],
            "band": [min(band), max(band)], "band_rel": BAND_REL,
            "at_now": min((r for r in rows if r["start"] == plan.now and
                           r["shape"] == best["shape"]), key=lambda r: r["loss"])["loss"]}
