"""Laws of optima: LR and batch laws fitted to tuned optima only, and their held-out test.

A published configuration is a choice; a tuned optimum is where a sweep found the lowest loss.
The laws here are fitted to tuned optima alone (``advisor.fit.evidence.Point`` with kind
``tuned_optimum``), each setup weighted equally:

    B*(N, D) = c_B N^a_B D^b_B                        (tokens; fitted to the optima's batches)
    lr*(W, D) = c W^a D^b                             (the LR at B*; W = d_model, channels)

The LR law reads the width, not the parameter count: Adam's per-weight update size, and with
it the LR that keeps hidden-layer updates of a fixed size, is set by the width (the muP
argument, Yang et al. 2022), while depth changes N at a fixed width. At a fixed N, Wen et al.'s
models (32 layers, width 512 at 130M) are far narrower than Step Law's (7 layers, width 960 at
215M); held out by setup, the width form misses by a third of what the N form misses
(docs/conditional.md; both forms are reported, the width form was chosen on that comparison).

and the LR at any other batch B is lr* moved along the ridge g of the loss surface
(``advisor.rules.lr_batch_rules``): lr*(B) = lr*(N, D) 2^g(log2 B / B*). To fit lr* each optimum's LR
is first moved along the ridge from its own batch to B*(N, D).

:func:`held_out` judges any law the way a user meets it: leave one setup out, fit on the
others, and predict each held-out optimum's LR at its own batch (conditioned) and at the
law's batch (unconditioned); 80% intervals from the spread on the training setups.
Units: N non-embedding parameters, D tokens, batch tokens per step, errors in octaves.
"""
from __future__ import annotations

import math
from dataclasses import replace
from statistics import median

from advisor.fit import evidence as ev
from advisor.rules.lr_batch_rules import Z80, ridge_offset_oct

SQRT_RIDGE = {"knots_oct": [-3.0, 3.0], "lr_offset_oct": [-1.5, 1.5]}   # the square-root rule


def _move(ridge, batch_from: float, batch_to: float) -> float:
    """Octaves the LR optimum moves from batch_from to batch_to along ``ridge``."""
    k, g = ridge["knots_oct"], ridge["lr_offset_oct"]
    return (ridge_offset_oct(math.log2(batch_to / batch_from), k, g)
            - ridge_offset_oct(0.0, k, g))


def width(p) -> float:
    """d_model (channels) of an evidence point's shape."""
    return float(p.shape.d_model)


def fit_optima_law(points, ridge, lr_var: str = "W") -> dict:
    """{"batch": coef, "lr": coef, "lr_var": ...} fitted to tuned optima ``points`` with their
    batch (coefs: ``advisor.fit.evidence.fit_power_law`` triples ln c, exponent of N, or of
    W = d_model for the LR with ``lr_var`` "W", exponent of D); each LR is first moved along
    ``ridge`` from its own batch to B*."""
    pts = [p for p in points if p.batch]
    cb = ev.fit_power_law(pts, "batch")
    moved = [replace(p, lr=p.lr * 2.0 ** _move(ridge, p.batch,
                                               ev.power_law_value(cb, p.n, p.d)),
                     n=width(p) if lr_var == "W" else p.n)
             for p in pts]
    return {"batch": cb, "lr": ev.fit_power_law(moved, "lr"), "lr_var": lr_var}


def predict(law: dict, ridge, p, batch: float | None) -> tuple:
    """(lr at the law's batch, B*, lr at ``batch``) of a fitted optima law at point ``p``."""
    b_star = ev.power_law_value(law["batch"], p.n, p.d)
    x = width(p) if law.get("lr_var") == "W" else p.n
    lr_star = ev.power_law_value(law["lr"], x, p.d)
    lr_b = lr_star if batch is None else lr_star * 2.0 ** _move(ridge, b_star, batch)
    return lr_star, b_star, lr_b


def _rms(xs) -> float:
    xs = list(xs)
    return math.sqrt(sum(x * x for x in xs) / len(xs)) if xs else float("nan")


def leave_one_size_out(points, ridge, lr_var: str = "W") -> dict:
    """{point id: log2 error of the conditioned LR} of an optima law fitted without the
    point's own model size (within the given points): out-of-sample spread on training data."""
    out = {}
    for n in sorted({p.n for p in points}):
        rest = [p for p in points if p.n != n]
        if len({q.n for q in rest}) < 2 or len({q.d for q in rest}) < 2:
            continue
        law = fit_optima_law(rest, ridge, lr_var)
        for p in points:
            if p.n == n:
                out[p.id] = math.log2(predict(law, ridge, p, p.batch)[2] / p.lr)
    return out


def summarise(errors: dict, sds: dict) -> dict:
    """Median |log2 error|, 80% coverage and median 80% width (factor hi/lo) of held-out
    predictions: ``errors`` {id: log2(pred / optimum)}, ``sds`` {id: sd in ln units}."""
    ids = sorted(errors)
    if not ids:
        return {"n": 0}
    cover = [abs(errors[i] * math.log(2.0)) <= Z80 * sds[i] for i in ids]
    widths = [math.exp(2 * Z80 * sds[i]) for i in ids]
    return {"n": len(ids), "median_abs_log2_error": round(median(abs(errors[i]) for i in ids), 3),
            "coverage_80": round(sum(cover) / len(ids), 3),
            "median_width_80": round(median(widths), 2)}


def spread(fn, train) -> dict:
    """{"conditioned": sd, "unconditioned": sd} (ln units) of a law's errors on its training
    points: leave-one-size-out for a law fitted on them (``fn.train_errors``), else plain."""
    out = {}
    for mode in ("conditioned", "unconditioned"):
        cond = mode == "conditioned"
        errs = getattr(fn, "train_errors", lambda c: None)(cond)
        if errs is None:
            errs = [math.log(fn(p, cond) / p.lr) for p in train]
        out[mode] = _rms(errs)
    return out


def held_out(points, law_fn, ridge_for) -> dict:
    """Leave one setup out.

    ``law_fn(train_points, ridge)`` -> callable(point, conditioned: bool) -> LR (a law that
    may be fitted on ``train_points``; a published law ignores them); ``ridge_for(held)`` the
    ridge to condition with when setup ``held`` is left out (its data must not be used).
    The 80% interval of each held-out prediction has the sd (ln units) of the law's errors on
    the training setups (its own in-sample points replaced by leave-one-size-out errors via
    ``law_fn``'s ``in_sample`` attribute where it has one). Returns per mode
    ("conditioned", "unconditioned"): errors, sds and :func:`summarise`.
    """
    res = {m: {"errors": {}, "sds": {}} for m in ("conditioned", "unconditioned")}
    for g in sorted({p.group for p in points}):
        train = [p for p in points if p.group != g]
        held = [p for p in points if p.group == g]
        ridge = ridge_for(g)
        fn = law_fn(train, ridge)
        sds = spread(fn, train)
        for mode in res:
            cond = mode == "conditioned"
            sd = sds[mode]
            for p in held:
                res[mode]["errors"][p.id] = math.log2(fn(p, cond) / p.lr)
                res[mode]["sds"][p.id] = sd
    for mode in res:
        res[mode]["summary"] = summarise(res[mode]["errors"], res[mode]["sds"])
    return res


def optima_law_fn(train, ridge, lr_var: str = "W"):
    """``law_fn`` for :func:`held_out`: the optima law fitted on ``train``; its training
    spread is leave-one-size-out (out of sample)."""
    law = fit_optima_law(train, ridge, lr_var)

    def fn(p, conditioned):
        lr_star, _, lr_b = predict(law, ridge, p, p.batch)
        return lr_b if conditioned else lr_star

    def train_errors(conditioned):
        loso = leave_one_size_out(train, ridge, lr_var)
        if conditioned:
            return [e * math.log(2.0) for e in loso.values()]
        out = []
        for n in sorted({p.n for p in train}):
            rest = [p for p in train if p.n != n]
            if len({q.n for q in rest}) < 2 or len({q.d for q in rest}) < 2:
                continue
            sub = fit_optima_law(rest, ridge, lr_var)
            out += [math.log(predict(sub, ridge, p, None)[0] / p.lr)
                    for p in train if p.n == n]
        return out

    fn.train_errors = train_errors
    fn.law = law
    return fn


def fixed_law_fn(values: dict, batches: dict, fallback_batch):
    """``law_fn`` for a published law: ``values`` {point id: its LR}, ``batches`` {point id:
    its batch (tokens) or None}; without a batch law, ``fallback_batch(point)`` is its B*."""
    def make(train, ridge):
        def fn(p, conditioned):
            lr = values[p.id]
            if not conditioned:
                return lr
            b = batches.get(p.id) or fallback_batch(p)
            return lr * 2.0 ** _move(ridge, b, p.batch)
        return fn
    return make


def held_out_batch(points, batch_of) -> dict:
    """Leave one setup out for the batch: ``batch_of(train_points)`` -> callable(point) ->
    the law's batch (tokens). Returns {point id: log2(law batch / the optimum's batch)}."""
    out = {}
    for g in sorted({p.group for p in points}):
        fn = batch_of([p for p in points if p.group != g])
        for p in points:
            if p.group == g and p.batch:
                b = fn(p)
                if b:
                    out[p.id] = math.log2(b / p.batch)
    return out


def optima_batch_of(train):
    """``batch_of`` for :func:`held_out_batch`: the optima batch law fitted on ``train``."""
    coef = ev.fit_power_law([p for p in train if p.batch], "batch")
    return lambda p: ev.power_law_value(coef, p.n, p.d)
