"""Fit every law a sweep supports and write them as a law set (recipes/laws/SCHEMA.md).

``fit_sweep`` runs the whole pipeline on a :class:`~advisor.runs.table.RunTable`: per-cell optima
(with bootstrap intervals), the LR and batch laws (method ``auto`` by default: the surface,
or the per-cell optima when the surface's LR law is implausible), the loss law (Chinchilla/Epoch Huber fit on each cell's best loss, bootstrap intervals), the AdamW
timescale law where weight decay was swept, and the critical batch size where the grid
brackets it. ``lawset_dict`` turns the result into a law set with its provenance, so
``advisor recommend --laws FILE`` uses it as it uses a published one. ``fit_lawset`` is what
``advisor fit`` does, as a library call: a :class:`FitRequest` (the command's options) to the
fit and the law set with its provenance, the same dict the command writes.

Every law passes the identifiability rule of :mod:`advisor.fit.identify`; every optimizer
status (:mod:`advisor.fit.status`) is kept, warned about when not clean, and written into the
provenance. With ``cv`` both kinds of cross-validation are run: leave-one-cell-out
(interpolation) and the extrapolation folds of :func:`advisor.fit.lr_batch.holdout_folds`.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from advisor.errors import AdvisorError
from advisor.specs.conventions import STEPLAW_SEQ_LEN, Conventions
from advisor.fit.lr_batch import (LRBatchLaws, check_grid, cross_validate,
                                  extrapolation_cv, extrapolation_summary, fit_lr_batch,
                                  in_sample, summarize)
from advisor.fit.identify import span_reason
from advisor.fit.status import warnings_of
from advisor.fit.loss_law import LossLawFit, fit_loss_law
from advisor.fit.optima import all_optima
from advisor.fit.powerlaw import PowerLaw, critical_batch, fit_power_law
from advisor.fit.powerlaw import rounded as _r
from advisor.fit.weight_decay import fit_timescale_law
from advisor.laws.lawset import LawSet
from advisor.laws.plausible import law_reason, loss_law_reason
from advisor.runs.table import RunTable, fit_conventions, load_runs

MIN_CRITICAL_CELLS = 3
_FIT_CONVENTIONS = {"params": "non_embedding", "compute": "6ND", "batch_unit": "tokens"}


@dataclass
class SweepFit:
    table: RunTable
    laws: LRBatchLaws
    optima: list
    loss: LossLawFit | None
    weight_decay: PowerLaw | None
    critical: PowerLaw | None
    critical_cells: list                       # (N, D, B_crit tokens or None)
    in_sample: dict
    cross_validated: dict | None
    notes: list = field(default_factory=list)
    extrapolation: dict | None = None          # extrapolation_summary of the folds
    transfer: dict | None = None               # muP: the N exponent check (advisor.fit.transfer)
    refused: dict = field(default_factory=dict)  # quantity -> why its fitted law is implausible
    status: list = field(default_factory=list)  # FitStatus of every optimizer call
    warnings: list = field(default_factory=list)


def fit_sweep(table: RunTable, *, method: str = "auto", n_bootstrap: int = 50,
              cv: bool = False, seed: int = 0, progress=None,
              batch_vars=None, options=None) -> SweepFit:
    """Fit all laws the sweep supports; laws it cannot support are skipped with a note.
    ``method``: "surface", "optima", "best-point" (advisor.fit.lr_batch.METHODS) or "auto"
    (the default): surface, and the per-cell optima when the surface's LR law is refused as
    implausible (advisor.laws.plausible), with a note saying so."""
    check_grid(table)
    notes = list(table.notes)
    say = progress or (lambda msg: None)
    say("per-cell optima")
    optima = all_optima(table, n_bootstrap=n_bootstrap, seed=seed)
    kw = {} if options is None else {"options": options}
    tried = []
    for m in (("surface", "optima") if method == "auto" else (method,)):
        say(f"LR and batch laws ({m})")
        laws = fit_lr_batch(table, m, optima=optima, batch_vars=batch_vars, **kw)
        why = {}
        refused = _implausible_hp_laws(table, {"learning_rate": laws.lr,
                                               "batch_size": laws.batch}, why)
        tried.append((laws, refused, why))
        if "learning_rate" not in refused:
            break
    if len(tried) > 1 and "learning_rate" in refused:
        laws, refused, why = tried[0]         # neither is plausible: report the default's
    if len(tried) > 1 and laws is tried[1][0]:
        notes.append("method auto: the surface method's learning-rate law was refused ("
                     f"{tried[0][1]['learning_rate']}), so the laws are fitted to the per-cell "
                     "optima (--method optima) instead")
    method = laws.method
    notes.extend(laws.notes)
    notes.extend(laws.extra.get("notes", []))
    status = [st for t in tried for st in t[0].status]
    if laws.extra.get("cells_not_bowl"):
        notes.append(f"the fitted surface is not a bowl at {len(laws.extra['cells_not_bowl'])} "
                     "cell(s): their optimum is a saddle; look at `advisor plot`")
    notes.extend(why.values())
    if laws.batch is None:
        notes.append("one batch size per cell: no batch law fitted"
                     + ("; a muP law set records that batch, at which its LR law holds"
                        if len(np.unique(table.batch_tokens)) == 1 else ""))

    loss = None
    N = np.array([o.N for o in optima])
    D = np.array([o.D for o in optima])
    Lbest = np.array([o.best_loss for o in optima])
    why = [r for r in (span_reason(N, "N"), span_reason(D, "D")) if r]
    if len(optima) >= 6 and not why:
        say("loss law")
        loss = fit_loss_law(N, D, Lbest, n_bootstrap=n_bootstrap, seed=seed)
        status.append(loss.status)
        if loss.n_bootstrap_unconverged:
            notes.append(f"loss law: {loss.n_bootstrap_unconverged} of {n_bootstrap} bootstrap "
                         "refits stopped before L-BFGS converged (300 iterations)")
        why = loss_law_reason({"form": "chinchilla", **loss.params()})
        if why:
            refused["loss"] = why
            notes.append(f"loss law refused, not written to the law set's laws (kept under "
                         f"provenance.refused_laws): its {why}")
    else:
        notes.append(f"loss law not fitted: it needs at least 6 cells whose N and D each span "
                     f"a usable range, got {len(optima)} cells"
                     + (f" ({'; '.join(why)})" if why else ""))

    wd = None
    wd_cells = [o for o in optima if "weight_decay" in o.optimum]
    wd_why = span_reason([o.D / o.N for o in wd_cells], "TPP") if len(wd_cells) >= 3 else None
    if wd_why:
        notes.append(f"weight-decay law not fitted: {wd_why}")
    elif len(wd_cells) >= 3:
        wd = fit_timescale_law(optima)
    else:
        notes.append("weight decay not swept (3 or more values per cell in 3 or more cells "
                     "needed): no weight-decay law")

    crit_cells, crit = [], None
    if laws.batch is not None:
        idx = table.cell_index
        crit_cells = [(n, d, critical_batch(table, idx == c))
                      for c, (n, d) in enumerate(table.cells)]
        ok = [(n, d, b) for n, d, b in crit_cells if b is not None]
        if (len(ok) >= MIN_CRITICAL_CELLS
                and span_reason([d for _, d, _ in ok], "D") is None):
            crit = fit_power_law(np.array([b for *_, b in ok]),
                                 {"D": np.array([d for _, d, _ in ok])},
                                 what="critical batch size")
        else:
            notes.append(f"critical batch size bracketed by the grid in {len(ok)} cell(s); "
                         f"{MIN_CRITICAL_CELLS} with 2 token counts needed for a law")

    crit_notes = {}
    refused.update(_implausible_hp_laws(table, {"critical_batch_size": crit}, crit_notes))
    notes.extend(crit_notes.values())

    transfer = None
    if options is not None and tuple(options.lr_vars) == ("D",):
        from advisor.fit.transfer import n_exponent_check

        say("muP transfer check (the base LR's N exponent)")
        transfer = n_exponent_check(table, method, options)
        notes.append(transfer.get("note") or transfer["refused"])

    ins = summarize(in_sample(table, laws))
    cvs = ext = None
    if cv:
        say("leave-one-cell-out cross-validation")
        cvs = summarize(cross_validate(table, method, batch_vars=batch_vars, **kw))
        say("extrapolation cross-validation (largest/smallest N and D held out)")
        ext = extrapolation_summary(extrapolation_cv(table, method, batch_vars=batch_vars,
                                                     **kw))
    return SweepFit(table=table, laws=laws, optima=optima, loss=loss, weight_decay=wd,
                    critical=crit, critical_cells=crit_cells, in_sample=ins,
                    cross_validated=cvs, notes=notes, extrapolation=ext, status=status,
                    warnings=warnings_of(status), transfer=transfer, refused=refused)


def _implausible_hp_laws(table: RunTable, laws: dict, notes: dict) -> dict:
    """quantity -> why, for the fitted laws (quantity -> PowerLaw or None) that
    :func:`advisor.laws.plausible.law_reason` refuses (judged over the sweep's cells, batch
    sizes in tokens, before there is a law set around them); ``notes`` gets quantity -> the
    note that says so."""
    rng = {"N": _range([c[0] for c in table.cells]), "D": _range([c[1] for c in table.cells])}
    refused = {}
    for quantity, law in laws.items():
        if law is None or not law.is_finite():
            continue                          # a non-finite law is refused by to_law
        entry = law.to_law(unit="", fitted_range=rng, note="")
        why = law_reason(LawSet(name="fitted", title="fitted", source={},
                                laws={quantity: entry}, conventions=_FIT_CONVENTIONS), quantity)
        if why:
            refused[quantity] = why
            notes[quantity] = (f"{quantity} law refused, not written to the law set's laws "
                               f"(kept under provenance.refused_laws): {why}")
    return refused


def calibrated_batch_law(batch_tokens: float, fitted_range: dict) -> dict:
    """The batch of a muP sweep that used one batch size: the LR law was measured at it, so
    a recommendation from that LR law uses it too. Written as a power law with a zero D
    exponent and no covariance (the schema's form), and said to be no scaling law."""
    return {"form": "power_law", "coefficient": _r(batch_tokens), "exponents": {"D": 0.0},
            "unit": "tokens", "fitted_range": fitted_range,
            "note": "not a batch scaling law: the one batch size of the sweep, at which its LR "
                    "law was measured (sweep 3 batch sizes per cell for a batch law)"}


def _range(values):
    return [_r(min(values), 4), _r(max(values), 4)]


def default_name(path) -> str:
    stem = re.sub(r"[^a-z0-9]+", "-", Path(str(path)).stem.lower()).strip("-") or "sweep"
    return f"fitted-{stem}"[:60]


def _gap_summary(s):
    if s is None:
        return None
    if "refused" in s:
        return {"refused": s["refused"]}
    return {"cells": s["cells"], "mean_gap_pct": _r(100 * s["mean_gap"], 4),
            "median_gap_pct": _r(100 * s["median_gap"], 4),
            "max_gap_pct": _r(100 * s["max_gap"], 4)}


def fit_command(results, out, *, method, loss, seq_len, bootstrap, seed, batch_vars=None,
                cell_by=None, n_column="N", cv=False, schedule=None, lr_convention="peak",
                max_nfev=500, select=(), lr_vars=None) -> str:
    """The ``advisor fit`` command line that reproduces a fit (a law set's
    ``provenance.command``), options at their defaults left out."""
    return (f"advisor fit {results} --out {out} --method {method} --loss {loss} "
            f"--seq-len {seq_len} --bootstrap {bootstrap} --seed {seed}"
            + (f" --batch-vars {batch_vars}" if batch_vars else "")
            + (f" --lr-vars {lr_vars}" if lr_vars else "")
            + (f" --cell-by {cell_by}" if cell_by else "")
            + (f" --n-column {n_column}" if n_column != "N" else "")
            + (" --cv" if cv else "")
            + (f" --schedule {shlex.quote(schedule)}" if schedule else "")
            + f" --lr-convention {lr_convention}"
            + (f" --max-nfev {max_nfev}" if max_nfev != 500 else "")
            + "".join(f" --select {x}" for x in select))


def lawset_dict(fit: SweepFit, *, name: str, command: str = "",
                schedule: str = "as the sweep's runs (see provenance.source)",
                conventions: Conventions | None = None) -> dict:
    """The law set (schema hp-advisor/lawset/v1) for a :class:`SweepFit`.

    ``conventions``: what the runs' LR and weight decay mean (default: the table's own,
    ``RunTable.conventions()``), written with ``Conventions.lawset_fields`` into the set's
    ``conventions`` (learning_rate, optimizer, seq_len) and ``mup`` (base_width, wd_rule) sections, so
    ``advisor recommend`` reads them back as the same record (``LawSet.proxy_conventions``)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
        raise AdvisorError(f"law set name must match [a-z0-9][a-z0-9._-]*, got {name!r}")
    t = fit.table
    Ns = [c[0] for c in t.cells]
    Ds = [c[1] for c in t.cells]
    rng_ND = {"N": _range(Ns), "D": _range(Ds)}
    method_note = {
        "surface": "minimum of a joint loss surface over (ln lr, ln B) whose location is "
                   "linear in (ln N, ln D), averaged over 6 fit settings "
                   "(advisor/fit/surface.py)",
        "optima": "power law through each cell's smooth (quadratic) optimum",
        "best-point": "power law through each cell's best grid run",
    }[fit.laws.method]
    laws, refused = {}, {}
    # a muP base-LR law has no N: width is muP's rules, so its range is in D only
    lr_convention = (t.conventions() if conventions is None else conventions).lr
    rng_lr = ({"D": rng_ND["D"]} if lr_convention == "mup_base"
              and "N" not in fit.laws.lr.exponents else rng_ND)
    laws["learning_rate"] = fit.laws.lr.to_law(unit="peak LR", fitted_range=rng_lr,
                                               note=method_note)
    if fit.laws.batch is not None:
        laws["batch_size"] = fit.laws.batch.to_law(unit="tokens", fitted_range=rng_ND,
                                                   note=method_note)
    elif (lr_convention == "mup_base" and len(np.unique(t.batch_tokens)) == 1
          and "learning_rate" not in fit.refused):      # the batch of a refused LR law: none
        laws["batch_size"] = calibrated_batch_law(float(t.batch_tokens[0]), rng_lr)
    for quantity in ("learning_rate", "batch_size"):
        if quantity in fit.refused:
            refused[quantity] = {**laws.pop(quantity), "refused": fit.refused[quantity]}
    if fit.loss is not None:
        lf = fit.loss
        entry = {"form": "chinchilla", **{k: _r(v) for k, v in lf.params().items()},
                 "unit": "nats/token (the sweep's final loss column)",
                 "fitted_range": rng_ND,
                 "note": "Huber (delta 1e-3) on log loss, L-BFGS from Chinchilla's grid of "
                         f"starts, on each cell's best loss; rms log residual "
                         f"{lf.rms_log_residual:.2g}"}
        if lf.intervals:
            entry["uncertainty"] = {"interval_95": {k: [_r(a), _r(b)]
                                                    for k, (a, b) in lf.intervals.items()},
                                    "n_bootstrap": lf.n_bootstrap}
        if "loss" in fit.refused:
            refused["loss"] = {**entry, "refused": fit.refused["loss"]}
        else:
            laws["loss"] = entry
    if fit.weight_decay is not None:
        laws["weight_decay"] = fit.weight_decay.to_law(
            form="adamw_timescale", uncertainty=False,
            unit="AdamW lambda (coupled, PyTorch convention)", fitted_range=rng_ND,
            note="tau* = B/(lr lambda D) at each cell's optimum, fitted as a power law in "
                 "TPP (Power Lines form)")
    if fit.critical is not None:
        laws["critical_batch_size"] = fit.critical.to_law(
            unit="tokens", fitted_range={"D": rng_ND["D"]},
            note="largest batch whose best loss (over LR) at the same token budget is "
                 "within 1% of the cell's best")
    if "critical_batch_size" in fit.refused:
        refused["critical_batch_size"] = {**laws.pop("critical_batch_size"),
                                          "refused": fit.refused["critical_batch_size"]}
    if not laws:
        raise AdvisorError(
            "no law survives the plausibility checks (advisor/laws/plausible.py), so no law "
            "set is written: " + "; ".join(f"{q}: {why}" for q, why in fit.refused.items()))
    cells = []
    crit = {(n, d): b for n, d, b in fit.critical_cells}
    for o in fit.optima:
        row = {"N": _r(o.N), "D": _r(o.D), "runs": o.n_runs, "diverged": o.n_diverged,
               "best_loss": _r(o.best_loss),
               "best_run": {k: _r(v, 4) for k, v in o.best_run.items()},
               "optimum": {k: _r(v, 4) for k, v in o.optimum.items()},
               "interval_95": {k: [_r(a, 4), _r(b, 4)] for k, (a, b) in o.interval.items()},
               "method": o.method}
        if crit.get((o.N, o.D)) is not None:
            row["critical_batch_tokens"] = _r(crit[(o.N, o.D)], 4)
        if o.flags:
            row["flags"] = list(o.flags)
        cells.append(row)
    provenance = {
        "command": command,
        "source": t.source,
        "loss_column": t.loss_column,
        "runs": len(t), "diverged": int(t.diverged.sum()), "failed": t.n_failed,
        "cells": len(t.cells), "N_range": rng_ND["N"], "D_range": rng_ND["D"],
        "method": fit.laws.method,
        "grid_fingerprint": t.fingerprint(),
        "n_column": t.n_column,
        "cell_by": list(t.cell_by),
        "optimizer": {
            "converged": all(st.converged for st in fit.status),
            "at_bounds": sorted({b for st in fit.status for b in st.at_bounds}),
            "calls": [st.as_dict() for st in fit.status],
        },
        "warnings": list(fit.warnings),
        "fit_quality": {
            "in_sample_gap": _gap_summary(fit.in_sample),
            "cross_validated_gap": _gap_summary(fit.cross_validated),
            "extrapolation_gap": (None if fit.extrapolation is None else
                                  {k: _gap_summary(v) for k, v in fit.extrapolation.items()}),
            "cv_definition": "cross_validated_gap: each cell held out in turn "
                             "(interpolation); extrapolation_gap: the cells at the largest N "
                             "(then largest D, smallest N, smallest D) held out together, at "
                             "least a quarter of the cells, fitted on the rest; upward and "
                             "downward pool the held-out cells of the two folds each",
            "gap_definition": "per cell, loss of the run nearest the prediction in "
                              "(ln lr, ln B) relative to the cell's best run",
        },
        "notes": list(fit.notes),
        "per_cell": cells,
    }
    if refused:
        provenance["refused_laws"] = refused
    if fit.transfer is not None:
        provenance["transfer_check"] = dict(fit.transfer)
    surf = fit.laws.detail if fit.laws.method == "surface" else None
    if surf is not None:
        provenance["surface"] = {
            "ensemble_window_f_scale": [list(m) for m in fit.laws.extra.get("members", [])],
            "degree": surf.options.degree, "window": surf.options.window,
            "runs_in_fit": surf.n_runs, "rms_log_residual": _r(surf.rms, 3),
            "centre_lnN_lnD": [_r(x) for x in surf.centre],
            "terms": surf.terms.tolist(),
            "shape_c_g_h": [[_r(x) for x in row] for row in surf.shape],
        }
    conv = t.conventions() if conventions is None else conventions
    conv_fields, mup = conv.lawset_fields()
    conventions = {"params": "non_embedding", "compute": "6ND", "batch_unit": "tokens",
                   "weight_decay": "coupled", "learning_rate": conv_fields["learning_rate"],
                   "schedule": schedule}
    if "optimizer" in conv_fields:
        conventions["optimizer"] = conv_fields["optimizer"]     # the sweep's (one) optimizer
    if "seq_len" in conv_fields:
        conventions["seq_len"] = conv_fields["seq_len"]         # the runs' tokens per sequence
    out = {
        "schema": "hp-advisor/lawset/v1",
        "name": name,
        "title": f"Laws fitted from {Path(t.source.split(' ')[-1]).name}",
        "source": {"citation": "fitted by `advisor fit` (hp-advisor)",
                   "checked": f"{len(t)} runs in {len(t.cells)} cells; see provenance"},
        "conventions": conventions,
        "laws": laws,
        "provenance": provenance,
    }
    if mup:
        out["mup"] = mup
    return out


@dataclass(frozen=True)
class FitRequest:
    """What ``advisor fit`` is asked (one field per option, the same defaults).

    ``results``: a results store directory or a Step Law-layout CSV; ``out``: the law-set
    path, recorded in ``provenance.command``; ``seq_len``: tokens per sequence, to read a
    ``bs`` column in sequences; ``n_bootstrap``: resamples (0: none); ``lr_convention``:
    None = what the runs record, else peak; ``batch_vars`` / ``lr_vars``: "N,D", "D" or
    "N" (None: the defaults of :meth:`lr_law_vars` and :func:`fit_sweep`); ``cell_by``:
    "COL[,COL]"; ``max_nfev``: evaluations per surface fit. Bad values raise AdvisorError
    when the request is made, before any work."""

    results: str
    out: str
    name: str | None = None
    method: str = "auto"
    loss: str = "auto"
    seq_len: int = STEPLAW_SEQ_LEN
    select: tuple = ()
    n_bootstrap: int = 50
    cv: bool = False
    schedule: str | None = None
    lr_convention: str | None = None
    batch_vars: str | None = None
    lr_vars: str | None = None
    cell_by: str | None = None
    n_column: str = "N"
    max_nfev: int = 500
    seed: int = 0

    def __post_init__(self):
        if self.n_bootstrap < 0:
            raise AdvisorError("--bootstrap must be 0 or more")
        if self.max_nfev < 1:
            raise AdvisorError("--max-nfev must be 1 or more")

    def load(self) -> tuple[RunTable, Conventions]:
        """The runs, and the conventions to fit under (:func:`fit_conventions`; a note it
        adds is on the table's ``notes``)."""
        table = load_runs(self.results, loss=self.loss, seq_len=self.seq_len,
                          select=self.select, cell_by=self.cell_by or (),
                          n_column=self.n_column)
        return table, fit_conventions(self.lr_convention, table)

    def lr_law_vars(self, conventions: Conventions) -> tuple:
        """Variables of the LR law: ``lr_vars`` if given, else D for a muP base LR (width
        is muP's rules; the N exponent is measured as a transfer check) and N, D otherwise."""
        return tuple((self.lr_vars or ("D" if conventions.lr == "mup_base"
                                       else "N,D")).split(","))


def fit_lawset(req: FitRequest, loaded: tuple[RunTable, Conventions] | None = None,
               progress=None) -> tuple[SweepFit, dict]:
    """``advisor fit`` as a library call: the fit and its law set (schema
    hp-advisor/lawset/v1, with the ``provenance.command`` that redoes it), the dict the
    command writes. ``loaded``: ``req.load()`` when the caller already has it (the command
    prints the table before fitting); ``progress(msg)`` is told each law as it starts."""
    from advisor.fit.surface import SurfaceOptions

    table, conventions = req.load() if loaded is None else loaded
    lr_vars = req.lr_law_vars(conventions)
    result = fit_sweep(table, method=req.method, n_bootstrap=req.n_bootstrap, cv=req.cv,
                       seed=req.seed, progress=progress,
                       batch_vars=tuple(req.batch_vars.split(",")) if req.batch_vars else None,
                       options=SurfaceOptions(max_nfev=req.max_nfev, lr_vars=lr_vars))
    command = fit_command(req.results, req.out, method=req.method, loss=req.loss,
                          seq_len=req.seq_len, bootstrap=req.n_bootstrap, seed=req.seed,
                          batch_vars=req.batch_vars, cell_by=req.cell_by,
                          n_column=req.n_column, cv=req.cv, schedule=req.schedule,
                          lr_convention=conventions.lr, max_nfev=req.max_nfev,
                          select=req.select, lr_vars=",".join(lr_vars))
    d = lawset_dict(result, name=req.name or default_name(req.results), command=command,
                    schedule=req.schedule or "as the sweep's runs (see provenance.source)",
                    conventions=conventions)
    return result, d
