"""The user's own model in a sweep: ``factory: pkg.mod:build`` in a plan (``advisor calibrate``).

The contract is check-spectral's, ``build(width) -> (model, optimizer)``, extended for a
sweep: the factory is called with ``lr=`` (the run's LR, which the factory gives its
optimizer, muP's rules included: with ``mup.MuAdamW`` that is the base-width LR) and, when its
signature takes them, ``vocab=`` (the data's vocabulary) and ``seq_len=``. The model maps
token ids (batch, seq) to logits (batch, seq, vocab); the loss is cross-entropy. Factory runs
train one at a time (a foreign model is not stacked).

:func:`check_factory` builds the model at every width of a plan and runs one forward pass
before any training, so a factory that fails at one width is one ``error:`` line and exit 2.

Units: widths in channels; ``lr`` in the factory optimizer's own convention.
"""
from __future__ import annotations

import inspect

from advisor.errors import AdvisorError


def load_callable(spec: str, what: str = "--factory"):
    """'package.module:function' -> the function (AdvisorError if it cannot be found, or if
    importing the module fails: the user's module, the user's error). The current directory
    is searched first, as ``python -c`` would. The one loader of ``--factory`` and of
    check-spectral's hooks; ``what`` names the option in messages."""
    import importlib
    import os
    import sys

    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise AdvisorError(f"{what} must look like package.module:function, got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        hint = (f"; the import path holds the current directory ({cwd}) and PYTHONPATH: "
                "give the module's dotted name from one of them, or add its folder to "
                "PYTHONPATH") if exc.name and mod_name.startswith(exc.name) else ""
        raise AdvisorError(f"cannot import {mod_name!r}: {exc}{hint}") from None
    except SyntaxError as exc:
        raise AdvisorError(f"{what} {spec}: {exc.filename}, line {exc.lineno}: syntax "
                           f"error: {exc.msg}") from None
    except Exception as exc:          # the module's own code failed on import
        raise AdvisorError(f"{what} {spec}: importing {mod_name} raised "
                           f"{type(exc).__name__}: {exc}") from None
    fn = getattr(mod, attr, None)
    if not callable(fn):
        raise AdvisorError(f"{what}: {mod_name!r} has no function {attr!r}")
    return fn


def load(spec: str):
    """The factory of a sweep: :func:`load_callable`, and it must take ``lr=``."""
    try:
        fn = load_callable(spec)
    except AdvisorError as exc:
        raise AdvisorError(f"factory {spec}: {exc}") from None
    params = inspect.signature(fn).parameters
    if "lr" not in params and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        raise AdvisorError(f"factory {spec} takes no lr= keyword: a sweep sets each run's LR "
                           "through it (build(width, *, lr, vocab=..., seq_len=...))")
    return fn


def build(spec: str, width: int, lr: float, vocab: int, seq_len: int, device="cpu"):
    """(model, optimizer) from the factory, on ``device``; AdvisorError naming the width when
    the factory fails or returns something else."""
    import torch

    fn = load(spec)
    params = inspect.signature(fn).parameters
    kw = {"lr": lr}
    for name, value in (("vocab", vocab), ("seq_len", seq_len)):
        if name in params:
            kw[name] = value
    try:
        made = fn(width, **kw)
    except Exception as exc:  # the user's code: any failure is bad input
        raise AdvisorError(f"factory {spec} failed at width {width}: "
                           f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}") from None
    if not (isinstance(made, tuple) and len(made) == 2
            and isinstance(made[0], torch.nn.Module) and hasattr(made[1], "param_groups")):
        raise AdvisorError(f"factory {spec} at width {width} must return (model, optimizer), "
                           f"got {type(made).__name__}")
    model, opt = made
    return model.to(device), opt


def count_params(model, vocab: int) -> tuple[int, int]:
    """(all, non-embedding) parameters of a foreign model: embeddings (``nn.Embedding``) and
    matrices with a dimension equal to the vocabulary (the readout) are embedding parameters."""
    import torch

    seen, total, emb = set(), 0, 0
    emb_ids = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if id(p) in emb_ids or (p.ndim == 2 and vocab in p.shape):
            emb += p.numel()
    return total, total - emb


def mup_base_width(model, width: int) -> int | None:
    """The muP base width the ``mup`` package was given for ``model`` (``set_base_shapes``):
    the base size of a matrix dimension of size ``width`` that mup marks infinite; None when
    the model carries no mup shapes (muP by the user's own rules) or none matches."""
    for p in model.parameters():
        shape = getattr(p, "infshape", None)
        if shape is None or p.ndim != 2:
            continue
        for d in shape:
            if d.isinf() and d.dim == width and d.base_dim:
                return int(d.base_dim)
    return None


def check_factory(spec: str, widths, vocab: int, seq_len: int, lr: float,
                  base_width: int | None = None) -> None:
    """Build at every width and run one forward pass on 2 x 8 tokens (no training): an
    AdvisorError for the first width where the factory or its model fails, or whose muP
    base width (:func:`mup_base_width`) is not the plan's ``base_width``: the runs record
    the plan's, and ``recommend`` scales every group's LR from it."""
    import torch

    for w in sorted(set(widths)):
        model, _ = build(spec, w, lr, vocab, seq_len)
        b = mup_base_width(model, w)
        if base_width and b is not None and b != int(base_width):
            raise AdvisorError(f"factory {spec}: its model's muP base width (mup's "
                               f"set_base_shapes) is {b}, the plan's base_width {base_width}: "
                               "set the plan's base_width to the factory's, or build the "
                               "factory's base model at the plan's")
        x = torch.zeros(2, min(8, seq_len), dtype=torch.long)
        try:
            with torch.no_grad():
                y = model(x)
        except Exception as exc:
            raise AdvisorError(f"factory {spec}: the model of width {w} fails on a batch of "
                               f"token ids: {type(exc).__name__}: {exc}") from None
        if tuple(getattr(y, "shape", ())) != (2, x.shape[1], vocab):
            raise AdvisorError(f"factory {spec}: the model of width {w} maps (2, {x.shape[1]}) "
                               f"token ids to {tuple(getattr(y, 'shape', ()))}, not logits "
                               f"(2, {x.shape[1]}, {vocab})")
