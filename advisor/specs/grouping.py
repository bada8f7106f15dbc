"""Which runs belong together: one function, with the settings that may differ named.

:func:`group_key` reads a run's settings with the ``RunSpec`` defaults filled in (a run stored
before a setting existed groups with runs at its default) and keys it by *every* setting except
the ``free`` ones the caller names, so a setting added to runs later separates them by default
and two optimizers, Muon conventions or weight-decay rules are never merged by accident. Each
use names its free settings:

* stacking (``advisor.specs.grouping.stack_key``): everything but the shape-, batch- and
  data-fixing ``STACK_KEY_FIELDS`` is free, plus whether the optimizer is Muon;
* LR sweeps of ``advisor results`` (``advisor.runs.summary``): :data:`SWEEP_FREE`;
* schedule-law curves (``advisor.schedule.curves.curve_group_key``): the schedule, seed and
  horizon;
* one fitted law set (``advisor.runs.table``, :func:`fit_conflict`): every field but
  :data:`FIT_MUST_AGREE` is free.

:func:`arm_label` names a group by the settings that tell it apart from the others.
"""
from __future__ import annotations

from dataclasses import MISSING, fields

from advisor.specs.runspec import RunSpec

# Settings that change how a run is executed, not what it computes.
EXECUTION_ONLY = ("stack", "compile", "arch")
# One LR sweep: the runs that differ only in LR, seed and width (and execution).
SWEEP_FREE = ("lr", "seed", "width") + EXECUTION_ONLY


_DEFAULTS = {f.name: f.default for f in fields(RunSpec) if f.default is not MISSING}


def _hashable(v):
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_hashable(x) for x in v)
    return v


def group_key(settings: dict, free=(), *, defaults: bool = True) -> tuple:
    """``((setting, value), ...)`` sorted by setting, over every setting of ``settings`` (the
    RunSpec defaults filled in, unless ``defaults`` is false: rows that are not RunSpecs)
    except those in ``free``. Runs with equal keys belong together; ``dict(key)`` gives the
    shared settings back (a dict as sorted pairs)."""
    merged = {**_DEFAULTS, **settings} if defaults else dict(settings)
    return tuple(sorted((k, _hashable(v)) for k, v in merged.items() if k not in free))


# One fitted law set: its runs agree in these fields (a law is fitted under one of each: the
# parameterisation, the schedule, the optimizer with Muon's width convention in its label, and
# what the LR and weight decay mean, ``advisor.specs.conventions``). Every other field is free:
# lr, batch, width, depth, tokens, weight decay, seed, ... A run that does not record a field
# (a CSV cell left empty) does not count against it.
FIT_MUST_AGREE = ("parameterization", "schedule", "optimizer", "lr_convention", "base_width",
                  "wd_rule")


def fit_key(fields: dict) -> tuple:
    """:func:`group_key` of one run's fields (a results store's, or a CSV row's columns) with
    every field but :data:`FIT_MUST_AGREE` free and fields it does not record left out."""
    recorded = {k: v for k, v in fields.items() if v not in (None, "")}
    return group_key(recorded, set(recorded) - set(FIT_MUST_AGREE), defaults=False)


def fit_conflict(runs) -> tuple[str, list[str]] | None:
    """(field, its values as sorted strings) of the first :data:`FIT_MUST_AGREE` field whose
    recorded values differ between ``runs`` (each a dict of fields), or None where the runs
    belong to one fit."""
    keys = {fit_key(r) for r in runs}
    for name in FIT_MUST_AGREE:
        values = sorted({str(v) for k in keys for n, v in k if n == name})
        if len(values) > 1:
            return name, values
    return None


# RunSpec fields that must agree within a stack: they fix the tensor shapes, the forward
# pass (model overrides, z-loss), the shared held-out batches, or Adam's betas (one bias
# correction for all). Everything else (lr, weight_decay, seed, schedule, tokens, eps,
# grad_clip, eval_interval, diverge_factor, the Adam-family optimizer kind) is free per
# member; Muon vs Adam is kept apart by stack_key.
STACK_KEY_FIELDS = ("family", "width", "depth", "parameterization", "batch_size", "seq_len",
                    "beta1", "beta2", "eval_sequences", "data", "model", "compile", "factory")
STACK_FREE = tuple(sorted(set(_DEFAULTS) - set(STACK_KEY_FIELDS))) + ("arch",)


def stack_key(spec) -> tuple:
    """Specs with equal keys can train in one stack (calibration.train.stacked): their
    :func:`group_key` with every setting but ``STACK_KEY_FIELDS`` free, and whether the
    optimizer is Muon; the one key for the sweep's work units as for the stacking engine.
    Muon and Adam-family members never share a stack: a stack has one stacked optimizer
    (calibration.train.stacked_optim refuses a mix)."""
    return group_key(spec.settings(), STACK_FREE) + (("muon", spec.optimizer == "muon"),)


def differing(keys) -> list[str]:
    """The settings whose values differ between the group keys ``keys``, sorted."""
    dicts = [dict(k) for k in keys]
    names = sorted({n for d in dicts for n in d})
    return [n for n in names if len({repr(d.get(n)) for d in dicts}) > 1]


def _fmt(name, v) -> list[str]:
    if name == "model":                      # model overrides: each one that is set
        return [f"{a}={b}" for a, b in (v or ())]
    return [f"{name}={v}"]


def arm_labels(keys, first: str = "parameterization") -> dict:
    """{key: short name}: the ``first`` setting's value, then every other setting that
    differs between the keys (model overrides as ``name=value``; settings every key shares
    left out)."""
    keys = list(keys)
    diff = [n for n in differing(keys) if n != first]
    model_shared = set.intersection(*(set(dict(k).get("model") or ()) for k in keys)) \
        if keys else set()
    out = {}
    for k in keys:
        d = dict(k)
        parts = []
        for n in diff:
            if n == "model":
                parts += [p for p in _fmt(n, tuple(x for x in (d.get(n) or ())
                                                    if x not in model_shared))]
            else:
                parts += _fmt(n, d.get(n))
        out[k] = str(d.get(first, "")) + (f" ({','.join(parts)})" if parts else "")
    return out
