"""How far a schedule law fitted on part of the evidence extrapolates (issue 27, docs/run.md).

Three held-out tests on the public curves (shared/data/external: Schaipp et al. 2025's 124M
runs at peak LR 5e-4 and 2e-3; Luo et al. 2025's multi-power curves at 25M/100M/400M), for
each candidate (law + fitting options, :data:`CANDS`):

A. **first half -> end**: a long run's curve up to half its steps, the plan known; the
   model of ``advisor run`` (:func:`advisor.schedule.inflight.forecast.fit_model`) predicts
   the final loss, (i) without a prior: the law fitted on the half curve if its LR has
   decayed, else the constant-LR progress fit (decays then not predicted); (ii) with B's
   law (the shorter runs of the same setup) as the prior, re-levelled on the half curve.
B. **short -> long horizons**: the law fitted on every curve of at most 25k steps (Schaipp)
   or 24k (multi-power) predicts the final loss of the longer runs (35k, 50k; 72k).
C. **held-out peak LR**: every candidate is fitted at this LR on const + cos10 (Schaipp)
   and predicts every other schedule's final loss; the rule on other data chooses the one
   with the lowest mean of max errors in A (prior) and B outside this LR and in C at the
   other LR (borrowed-shape candidates, :data:`SHARED`, may borrow only this LR's fit set
   there); :data:`AUTO` chooses by its own cross-validation on this LR's fit set.

:data:`ENS` (table D of docs/run.md): the forms averaged with weights 1 / (CV score)**p
(advisor.schedule.ensemble) in A (no prior; with --ens-a), B and C, for several p
(:data:`ENS_POWERS`), the averaging chosen by the same rule on the other data.

Each with the mean and max relative error of the final loss and the pairs of runs (same
setup and horizon, at least 0.002 nats apart in the data) that the predictions put in the
wrong order. Final loss: the last logged point (Schaipp: step T - 200).

    nice -n 10 python -m bench.bench_run_forecast [--out table.md] [--data shared/data/external]
    nice -n 10 python -m bench.bench_run_forecast --cands "ensemble (CV-weighted average)" --ens-a
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import pickle
import sys
import time
from pathlib import Path

import numpy as np

from advisor.errors import AdvisorError
from advisor.schedule.ensemble import average_fits, best_per_form
from advisor.schedule.inflight import forecast
from advisor.schedule.curves import Curve, load_csv, load_multipower_size
from advisor.schedule.fitting import FitOptions, fit_law, predict_curve, shape_options
from advisor.schedule.lawfile import ScheduleLaw

#: shared/ beside the repository (a git worktree may sit one level deeper: then --data)
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "external"
SCHAIPP, MP = DATA / "schaipp_lr_schedules", DATA / "multipower_loss_curves"
CANDS = {"valley": ("valley", FitOptions()), "valley rho0.6": ("valley", FitOptions(rho=0.6)),
         "multipower": ("multipower", FitOptions()),
         "multipower rho0.6": ("multipower", FitOptions(rho=0.6)),
         "tissue": ("tissue", FitOptions()),
         # late points weighted up (w *= 1 + late * t / t_last): for extrapolating in length
         "valley rho0.6 late1": ("valley", FitOptions(rho=0.6, late=1.0)),
         "multipower rho0.6 late1": ("multipower", FitOptions(rho=0.6, late=1.0)),
         "tissue late1": ("tissue", FitOptions(late=1.0)),
         # each curve the same total weight
         "valley rho0.6 curve": ("valley", FitOptions(rho=0.6, weighting="curve"))}
#: Borrowed-shape candidates (table C only): the base candidate's shape constants
#: (FORMS[law].shape) come from a fit on every curve available at the *other* peak LR; at
#: the held-out LR only the level and amplitudes are fitted on its fit set. Evaluated at a
#: held-out LR, every curve of the other LR is available; as a selection fold (the other LR
#: scored while this one is held out), only this LR's fit set is. In A and B they are their
#: base.
SHARED = {"valley shared": "valley", "valley rho0.6 shared": "valley rho0.6",
          "multipower rho0.6 shared": "multipower rho0.6", "tissue shared": "tissue"}
FIT_SET = ("const_50000", "cos10_50000")
#: The product's own choice, by cross-validation on the curves it is given
#: (advisor.schedule.select, `schedule fit --law auto`): in A (no prior) on the half curve,
#: in C on the held-out LR's fit set. Not in B (its leave-one-out folds over 20+ curves cost
#: hours on this machine).
AUTO = "auto (CV on the fit curves)"
#: Model averaging (advisor.schedule.ensemble): every candidate refitted, the predictions
#: averaged with weights 1 / (CV score)**2. In C the product's candidates and folds
#: (select.CANDIDATES, select.folds) on the held-out LR's fit set; in B the five base forms
#: above, weighted on select's horizon fold of B's fit set only (fit on the runs shorter than
#: 75% of the longest, predict the longest), as leave-one-out over 20+ curves costs hours.
#: Not in A (advisor run does not average).
ENS = "ensemble (CV-weighted average)"
#: The power p of the weights 1 / score**p: the ensemble's one constant. It is chosen per
#: held-out LR by the rule on the other data (B on the other four sets, C at the other LR);
#: p = inf is the single form the same cross-validation ranks first (`auto` in C).
#: "per form": only the best-scoring variant of each law is averaged.
ENS_POWERS = {"1/s^1": 1.0, "1/s^2": 2.0, "1/s^4": 4.0, "1/s^8": 8.0,
              "per form 1/s^1": 1.0, "per form 1/s^2": 2.0, "per form 1/s^4": 4.0,
              "per form 1/s^8": 8.0, "single best (same CV)": float("inf")}
ENS_FORMS_B = ("valley", "valley rho0.6", "multipower", "multipower rho0.6", "tissue")
#: modules of advisor/schedule that no fit depends on (left out of the cache key)
NOT_FITTING = ("ensemble.py", "uncertainty.py")
SEP = 0.002
CACHE = Path("/tmp/bench_run_forecast")


def cached_fit(law, curves, opts, tag):
    """fit_law, cached under /tmp by the schedule package's source and the tag."""
    src = "".join(p.read_text() for p in sorted(
        (Path(__file__).resolve().parents[1] / "advisor" / "schedule").glob("*.py"))
        if p.name not in NOT_FITTING)
    key = hashlib.sha1(f"{law}|{opts}|{tag}|{src}".encode()).hexdigest()[:16]
    path = CACHE / f"{key}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    f = fit_law(law, curves, opts)
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(f))
    return f


def as_law(f) -> ScheduleLaw:
    return ScheduleLaw(law=f.law, params=dict(f.params), lr_scale=f.lr_scale, lam=f.lam,
                       total_steps_fitted=1, doc={}, rho=f.options.rho)


def horizon(name):
    return int(name.rsplit("_", 1)[1]) if name.split("_")[0] != "wsdcon" else 16000


def datasets():
    out = {}
    for lr in ("0.0005", "0.002"):
        d = SCHAIPP / f"124m_lr{lr}"
        out[f"124M lr {lr}"] = {p.stem: load_csv(p) for p in sorted(d.glob("*_*.csv"))
                                if p.stem != "final_val"}
    for size in ("25M", "100M", "400M"):
        out[f"mp {size}"] = load_multipower_size(size, root=MP)
    return out


def metrics(pred: dict, true: dict) -> dict:
    names = sorted(pred)
    rel = [abs(pred[n] - true[n]) / true[n] for n in names]
    pairs = [(a, b) for a, b in itertools.combinations(names, 2)
             if horizon(a) == horizon(b) and abs(true[a] - true[b]) >= SEP]
    wrong = sum(np.sign(pred[a] - pred[b]) != np.sign(true[a] - true[b]) for a, b in pairs)
    return {"n": len(names), "mean": float(np.mean(rel)), "max": float(np.max(rel)),
            "wrong": int(wrong), "pairs": len(pairs), "rel": dict(zip(names, rel))}


def half(c: Curve) -> Curve:
    T = c.steps[-1]
    k = c.steps <= T // 2
    return Curve(name=c.name, lrs=c.lrs[: int(c.steps[k][-1]) + 1], steps=c.steps[k],
                 loss=c.loss[k], source=c.source, meta=c.meta)


def test_a(data, cand, priors=None):
    """first half -> end, per dataset; long runs: the longest horizon of each set."""
    forecast.FORM = ("auto", None) if cand == AUTO else CANDS[cand]
    out = {}
    for ds, curves in data.items():
        T = max(horizon(n) for n in curves)
        pred, true, inside, kinds = {}, {}, 0, {}
        for n, c in curves.items():
            if horizon(n) != T:
                continue
            h = half(c)
            m = forecast.fit_model(h, c.peak_lr, None if priors is None else priors[ds])
            try:
                p = m.predict(c.lrs, int(c.steps[-1]))
            except forecast.NotPredictable:
                continue                 # constant so far and decays later: needs a prior
            pred[n], true[n] = p["loss"], c.final_loss
            inside += p["lo"] <= c.final_loss <= p["hi"]
            kinds.setdefault(m.kind, []).append(abs(p["loss"] / c.final_loss - 1))
        out[ds] = dict(metrics(pred, true), inside=inside,
                       by_kind={k: max(v) for k, v in kinds.items()})
    return out


def test_b(data, cand):
    """(metrics per dataset, the fitted law per dataset)."""
    law, opts = CANDS[cand]
    out, laws = {}, {}
    for ds, curves in data.items():
        cut = 25000 if ds.startswith("124M") else 24000
        fit_c = [c for n, c in curves.items() if horizon(n) <= cut]
        held = {n: c for n, c in curves.items() if horizon(n) > cut}
        f = cached_fit(law, fit_c, opts, f"B {ds}")
        laws[ds] = as_law(f)
        pred = {n: float(predict_curve(f, c)[-1]) for n, c in held.items()}
        out[ds] = metrics(pred, {n: c.final_loss for n, c in held.items()})
    return out, laws


def cv_rows(curves, cands, tag, only=None):
    """select.cross_validate with cached fits: rows (law, options, label, score) best first.
    ``only``: keep the folds whose label starts with it."""
    from advisor.schedule.select import folds, score_fit
    fl = [f for f in folds(curves) if only is None or f[0].startswith(only)]
    rows = []
    for law, opts in cands:
        scores = []
        for label, fit_curves, held in fl:
            try:
                scores.append(score_fit(cached_fit(law, fit_curves, opts, f"{tag} {label}"),
                                        held)["score"])
            except AdvisorError:
                scores.append(float("inf"))
        rows.append({"law": law, "options": opts, "label": f"{law} [{opts.label()}]",
                     "score": float(np.mean(scores)) if scores else float("inf")})
    rows.sort(key=lambda r: r["score"])
    return rows


def ens_metrics(ens, held: dict) -> dict:
    """metrics of the ensemble's finals, with how many lie inside mean +- 2 spread, and the
    weights of its three heaviest members."""
    pred, inside = {}, 0
    for n, c in held.items():
        m, lo, hi = (float(x[-1]) for x in ens.interval(c))
        pred[n] = m
        inside += lo <= c.final_loss <= hi
    top = sorted(zip(ens.weights, ens.labels), reverse=True)[:3]
    return dict(metrics(pred, {n: c.final_loss for n, c in held.items()}), inside=inside,
                chose=", ".join(f"{lab} {w:.2f}" for w, lab in top))


def test_b_ens(data):
    out = {}
    for ds, curves in data.items():
        cut = 25000 if ds.startswith("124M") else 24000
        fit_c = [c for n, c in curves.items() if horizon(n) <= cut]
        held = {n: c for n, c in curves.items() if horizon(n) > cut}
        rows = cv_rows(fit_c, [CANDS[c] for c in ENS_FORMS_B], f"Bcv {ds}", only="hold out")
        for name, pw in ENS_POWERS.items():
            use = best_per_form(rows) if "per form" in name else rows
            ens = average_fits(fit_c, use, power=pw,
                               fit=lambda law, cs, o, ds=ds: cached_fit(law, cs, o, f"B {ds}"))
            out.setdefault(name, {})[ds] = ens_metrics(ens, held)
    return out


def test_a_ens(data):
    """A without a prior, the runs whose LR has decayed in the first half (the `law` model of
    advisor run): the candidates of select.py cross-validated on the half curve (its
    truncation fold) and averaged; where the half curve gives no fold, advisor run's
    fallback form alone (forecast.FALLBACK_FORM). Returns {variant: {data set: metrics}}."""
    from advisor.schedule.select import CANDIDATES
    out = {}
    for ds, curves in data.items():
        T = max(horizon(n) for n in curves)
        preds, true = {}, {}
        for n, c in curves.items():
            h = half(c)
            if horizon(n) != T or not h.has_annealing():
                continue
            true[n] = c.final_loss

            def fit(law, cs, o, n=n):
                return cached_fit(law, cs, o, f"A {ds} {n}")
            try:
                rows = cv_rows([h], CANDIDATES, f"Acv {ds} {n}")
                ok = any(np.isfinite(r["score"]) for r in rows)
            except AdvisorError:
                ok = False
            for name, pw in ENS_POWERS.items():
                if ok:
                    ens = average_fits([h], best_per_form(rows) if "per form" in name
                                       else rows, power=pw, fit=fit)
                    p = float(ens.predict(c.lrs, c.steps[-1:])[-1])
                else:
                    law, opts = forecast.FALLBACK_FORM
                    p = float(predict_curve(fit(law, [h], opts), c.lrs, c.steps[-1:])[-1])
                preds.setdefault(name, {})[n] = p
        for name in ENS_POWERS:
            out.setdefault(name, {})[ds] = metrics(preds[name], true)
        print(f"# A ensemble {ds} done", file=sys.stderr, flush=True)
    return out


def test_c_ens(data, lr_ds):
    from advisor.schedule.select import CANDIDATES
    curves = data[lr_ds]
    fit_c = [curves[n] for n in FIT_SET]
    rows = cv_rows(fit_c, CANDIDATES, f"Ccv {lr_ds}")
    held = {n: c for n, c in curves.items() if n not in FIT_SET}
    def fit(law, cs, o):
        return cached_fit(law, cs, o, f"C {lr_ds}")
    return {name: ens_metrics(average_fits(
        fit_c, best_per_form(rows) if "per form" in name else rows, power=pw, fit=fit), held)
        for name, pw in ENS_POWERS.items()}


def base(cand):
    return SHARED.get(cand, cand)


def other_lr(lr_ds):
    return "124M lr 0.002" if lr_ds == "124M lr 0.0005" else "124M lr 0.0005"


def test_c(data, cand, lr_ds, donor_all: bool = True):
    """Fit at ``lr_ds`` on FIT_SET, predict the other schedules' finals. A borrowed-shape
    candidate takes its shape from the other LR's curves: all of them (``donor_all``), or
    only its FIT_SET (the case of a selection fold, where the other LR is held out)."""
    curves = data[lr_ds]
    fs = FIT_SET
    if cand == AUTO:
        from advisor.schedule.select import select_and_fit
        f, _ = select_and_fit([curves[n] for n in fs])
        held = {n: c for n, c in curves.items() if n not in fs}
        pred = {n: float(predict_curve(f, c)[-1]) for n, c in held.items()}
        return dict(metrics(pred, {n: c.final_loss for n, c in held.items()}),
                    chose=f"{f.law} [{f.options.label()}]")
    law, opts = CANDS[base(cand)]
    if cand in SHARED:
        donor_lr = other_lr(lr_ds)
        donors = [c for n, c in data[donor_lr].items() if donor_all or n in fs]
        donor = cached_fit(law, donors, opts, f"C {donor_lr} {'all' if donor_all else 'fit'}")
        opts = shape_options(donor)
    f = cached_fit(law, [curves[n] for n in fs], opts, f"C {lr_ds}")
    held = {n: c for n, c in curves.items() if n not in fs}
    pred = {n: float(predict_curve(f, c)[-1]) for n, c in held.items()}
    return metrics(pred, {n: c.final_loss for n, c in held.items()})


def health_check(data, say, sizes=(0.02, 0.03, 0.05, 0.10)):
    """False alarms on the clean public curves (each cut at half and whole), and detection of
    a one-point spike of each relative size planted at 75% of each whole curve."""
    from advisor.schedule.inflight.analyze import analyze
    from advisor.schedule.inflight.log import make_log
    from advisor.schedule.inflight.plan import make_plan

    def analyse(c, loss, upto):
        k = c.steps <= upto
        log = make_log(c.steps[k], loss[k], c.lrs[c.steps[k]], source=c.name, fmt="csv")
        return analyze(log, make_plan(log))[1]["health"]

    n = alarms = 0
    hits = dict.fromkeys(sizes, 0)
    for curves in data.values():
        for c in curves.values():
            for frac in (0.5, 1.0):
                n += 1
                alarms += bool(analyse(c, c.loss, c.steps[-1] * frac)["findings"])
            i = int(0.75 * len(c.steps))
            for x in sizes:
                y = c.loss.copy()
                y[i] *= 1 + x
                h = analyse(c, y, c.steps[-1])
                hits[x] += any(f["kind"] == "spike" and f["start_step"] == c.steps[i]
                               for f in h["findings"])
    m = n // 2
    say(f"Clean logs: {alarms} of {n} with any finding. Planted one-point spikes found: "
        + ", ".join(f"+{x:.0%}: {hits[x]} of {m}" for x in sizes) + ".")


def fmt(m):
    return f"{m['mean']:.2%} / {m['max']:.2%} | {m['wrong']} of {m['pairs']}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out")
    ap.add_argument("--cands", default=",".join(list(CANDS) + list(SHARED) + [AUTO, ENS]))
    ap.add_argument("--data", default=str(DATA), help="shared/data/external")
    ap.add_argument("--ens-a", action="store_true",
                    help=f"with {ENS!r}: also A without a prior (every candidate on every "
                         "half curve: slow)")
    ap.add_argument("--health", action="store_true",
                    help="instead: false alarms and planted-spike detection of the health check")
    args = ap.parse_args(argv)
    global SCHAIPP, MP
    SCHAIPP, MP = Path(args.data) / "schaipp_lr_schedules", Path(args.data) / \
        "multipower_loss_curves"
    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    data = datasets()
    if args.health:
        health_check(data, say)
        if args.out:
            Path(args.out).write_text("\n".join(lines) + "\n")
        return
    cands = args.cands.split(",")
    ens = ENS in cands
    cands = [c for c in cands if c != ENS]
    A, AP, B = {}, {}, {}
    t0 = time.time()
    if ens:
        BE = test_b_ens(data)
        CE = {lr_ds: test_c_ens(data, lr_ds) for lr_ds in ("124M lr 0.0005", "124M lr 0.002")}
        AE = test_a_ens(data) if args.ens_a else None
        print(f"# {ENS} done at {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    for c in [c for c in cands if c not in SHARED]:
        A[c] = test_a(data, c)
        if c != AUTO:
            B[c], priors = test_b(data, c)
            AP[c] = test_a(data, c, priors)
        print(f"# {c} done at {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    say("### A. First half of a long run -> its final loss")
    say()
    say("| data | form | no prior: runs, mean / max error | pairs in wrong order | inside "
        "the interval | max error by model | prior from the shorter runs: runs, mean / max "
        "error | pairs in wrong order | inside the interval |")
    say("|---|---|---|---|---|---|---|---|---|")
    for ds in data:
        for c in A:
            m = A[c][ds]
            kinds = ", ".join(f"{k} {v:.2%}" for k, v in sorted(m["by_kind"].items()))
            mp = AP.get(c, {}).get(ds)
            prior = (f"{mp['n']}: {fmt(mp)} | {mp['inside']} of {mp['n']}" if mp else
                     "(not run) | | ")
            say(f"| {ds} | {c} | {m['n']}: {fmt(m)} | {m['inside']} of {m['n']} | {kinds} | "
                f"{prior} |")
    say()
    say("### B. Shorter horizons -> longer runs")
    say()
    say("| data | fitted on | predicted | form | mean / max error | pairs in wrong order |")
    say("|---|---|---|---|---|---|")
    for ds in data:
        fit_on = "runs <= 25k steps" if ds.startswith("124M") else "runs <= 24k steps"
        to = "35k, 50k (1.4-3.3x)" if ds.startswith("124M") else "72k (3x)"
        for c in B:
            say(f"| {ds} | {fit_on} | {to} | {c} | {fmt(B[c][ds])} |")
        for name in ENS_POWERS if ens else ():
            m = BE[name][ds]
            say(f"| {ds} | {fit_on} | {to} | {ENS} {name} of the five forms ({m['chose']}; "
                f"inside mean +- 2 spread: {m['inside']} of {m['n']}) | {fmt(m)} |")
    say()
    say("### C. Held-out peak LR: form chosen on the other data")
    say()
    say("Selection score of a candidate when an LR is held out: the mean of its max errors "
        "in A (prior) and B on the other four data sets and in C at the other LR (a "
        "borrowed shape there comes from the held-out LR's fit set only).")
    say()
    say("| held-out | candidate | selection score | mean / max error | pairs in wrong order "
        "| chosen |")
    say("|---|---|---|---|---|---|")
    auto = AUTO in cands
    cands = [c for c in cands if c != AUTO]
    C = {lr_ds: {c: test_c(data, c, lr_ds) for c in cands + ([AUTO] if auto else [])}
         for lr_ds in ("124M lr 0.0005", "124M lr 0.002")}
    # the other LR as a selection fold: what a borrowed shape can take while lr_ds is out
    Csel = {lr_ds: {c: test_c(data, c, lr_ds, donor_all=False) if c in SHARED else C[lr_ds][c]
                    for c in cands} for lr_ds in C}
    chosen = {}
    for lr_ds in C if cands else ():
        score = {c: float(np.mean([AP[base(c)][d]["max"] for d in data if d != lr_ds]
                                  + [B[base(c)][d]["max"] for d in data if d != lr_ds]
                                  + [Csel[other_lr(lr_ds)][c]["max"]])) for c in cands}
        chosen[lr_ds] = min(score, key=score.get)
        for c in cands:
            m = C[lr_ds][c]
            say(f"| {lr_ds} (predict {m['n']} others) | {c} | {score[c]:.2%} | {fmt(m)} | "
                f"{'**chosen**' if c == chosen[lr_ds] else ''} |")
    for lr_ds in C if auto else ():
        m = C[lr_ds][AUTO]
        say(f"| {lr_ds} (predict {m['n']} others) | {AUTO}: chose {m['chose']} | its own "
            f"CV at this LR | {fmt(m)} | |")
    ens_chosen = {}
    for lr_ds in CE if ens else ():
        sel = {name: float(np.mean([BE[name][d]["max"] for d in data if d != lr_ds]
                                   + [CE[other_lr(lr_ds)][name]["max"]]))
               for name in ENS_POWERS}
        ens_chosen[lr_ds] = min(sel, key=sel.get)
        for name in ENS_POWERS:
            m = CE[lr_ds][name]
            say(f"| {lr_ds} (predict {m['n']} others) | {ENS} {name} of select's candidates "
                f"(top weights {m['chose']}; inside mean +- 2 spread: {m['inside']} of "
                f"{m['n']}) | {sel[name]:.2%} (B, other LR) | {fmt(m)} | "
                f"{'**chosen power**' if name == ens_chosen[lr_ds] else ''} |")
    say()
    for lr_ds, name in ens_chosen.items():
        say(f"Held out {lr_ds}: the averaging chosen on the other data: {name}: "
            f"{fmt(CE[lr_ds][name])}.")
    if ens:
        say()
        say("### Model averaging: summary")
        say()
        say("| averaging | A (no prior, decayed half curves): max error per data set | "
            "B: max error per data set | B: within 0.3% | C 5e-4 held out: "
            "mean / max, pairs wrong | C 2e-3 held out: mean / max, pairs wrong |")
        say("|---|---|---|---|---|---|")

        def wrong(per_ds):
            return (f"{sum(m['wrong'] for m in per_ds.values())} of "
                    f"{sum(m['pairs'] for m in per_ds.values())}")
        for name in ENS_POWERS:
            bmax = [BE[name][d]["max"] for d in data]
            amax = (" / ".join(f"{AE[name][d]['max']:.2%}" for d in data) if AE
                    else "not run")
            if AE:
                amax += f" ({wrong(AE[name])} pairs wrong)"
            say(f"| {name} | {amax} | " + " / ".join(f"{x:.2%}" for x in bmax)
                + f" ({wrong(BE[name])} pairs wrong) | {sum(x <= 0.003 for x in bmax)} of "
                f"{len(bmax)} | "
                + " | ".join(fmt(CE[lr][name]) for lr in ("124M lr 0.0005", "124M lr 0.002"))
                + " |")
        say()
        say("B with the averaging chosen without the data set (lowest mean of B's max errors "
            "on the other four):")
        for ds in data:
            sel = {n: float(np.mean([BE[n][d]["max"] for d in data if d != ds]))
                   for n in ENS_POWERS}
            n = min(sel, key=sel.get)
            say(f"- {ds}: {n}, {fmt(BE[n][ds])}")
    for lr_ds, c in chosen.items():
        say(f"Held out {lr_ds}: chosen on the other data {c}: {fmt(C[lr_ds][c])}"
            + (f"; by CV on its fit set ({C[lr_ds][AUTO]['chose']}): "
               f"{fmt(C[lr_ds][AUTO])}." if auto else "."))
    say()
    say(f"({time.time() - t0:.0f} s)")
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
