"""What ``check-spectral`` assumes of a user's factory and model, and the adapters that let
real muP code meet it (docs/spectral-check.md, "The contract").

- **Factory**: ``factory(width)`` returns a model or ``(model, optimizer)``; importable as
  ``module:function`` with the current directory on the import path. A factory that seeds
  torch itself is re-seeded per replicate (:func:`reseeded`): its own ``torch.manual_seed(s)``
  becomes ``s + offset`` for replicate r, offset = 1000003 r (replicate 0 keeps its seed).
- **Inputs**: token ids (batch, seq) of real text (the Python standard library's source
  bytes, folded into ``vocab`` ids as byte mod vocab), or a user file of token ids, or the
  user's own ``batch(width, step)`` hook returning (inputs, targets) (step -1 is the probe
  batch; torch, numpy and random are seeded per (replicate, step) before each call, the same
  at every width). ``layout``: "batch-first", "seq-first" (fed (seq, batch), outputs
  (seq, batch, vocab)) or "auto" (detected by changing one sample and watching the others).
- **Outputs**: a tensor; a tuple (first element); a dict or Hugging Face ``ModelOutput``
  (``logits``); an object with ``.logits`` (``probes.logits_of``).
- **Loss**: cross-entropy of the logits against next-token targets, or the user's
  ``loss(output, targets)`` hook (for models that are not language models).
- **LR scales**: a parameter group's ``lr_scale`` entry (the key is settable) is applied once,
  group lr x lr_scale, as a training loop that reads it would.

Units: widths in channels, seq and batch in tokens and sequences.
"""
from __future__ import annotations

import contextlib
import inspect
import os
import random
from dataclasses import dataclass
from typing import Callable

import numpy as np

from advisor.errors import AdvisorError

LAYOUTS = ("auto", "batch-first", "seq-first")
SEED_OFFSET = 1_000_003


@dataclass
class Contract:
    """The settable parts of the contract (module docstring)."""

    vocab: int = 256
    seq_len: int = 64
    batch: int = 8
    layout: str = "auto"
    data: str | None = None                # file of token ids: .npy, or .bin of uint16
    batch_fn: Callable | None = None       # batch(width, step) -> (inputs, targets)
    loss_fn: Callable | None = None        # loss(output, targets) -> scalar tensor
    lr_scale_key: str = "lr_scale"

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise AdvisorError(f"layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        for name in ("vocab", "seq_len", "batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (2 if name != "seq_len" else 1):
                raise AdvisorError(f"{name} must be an integer >= 2, got {v!r}")


def load_callable(spec: str, what: str = "--factory") -> Callable:
    """'package.module:function' -> the function, with the current directory importable
    (AdvisorError if it cannot be found): calibration.model.factory's one loader."""
    from calibration.model.factory import load_callable as load
    return load(spec, what)


# --------------------------------------------------------------------------------------
# Seeding
# --------------------------------------------------------------------------------------

@contextlib.contextmanager
def reseeded(replicate: int):
    """While the factory runs, ``torch.manual_seed(s)`` (and numpy's and random's seed calls)
    become ``s + SEED_OFFSET * replicate``; yields the list of seeds the factory asked for."""
    import torch

    asked: list = []
    offset = SEED_OFFSET * replicate
    originals = [(torch, "manual_seed"), (torch.random, "manual_seed"),
                 (np.random, "seed"), (random, "seed")]
    saved = [getattr(mod, name) for mod, name in originals]

    def wrap(fn):
        def seeded(s=None, *args, **kwargs):
            asked.append(s)
            if isinstance(s, (int, np.integer)) and not isinstance(s, bool):
                s = (int(s) + offset) % (2 ** 32)
            return fn(s, *args, **kwargs)
        return seeded

    for (mod, name), fn in zip(originals, saved):
        setattr(mod, name, wrap(fn))
    try:
        yield asked
    finally:
        for (mod, name), fn in zip(originals, saved):
            setattr(mod, name, fn)


def seed_all(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))
    random.seed(seed)


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------

def token_ids(contract: Contract) -> np.ndarray:
    """The token stream the check trains on: the user's file, or stdlib source bytes folded
    into the vocabulary (byte mod vocab)."""
    if contract.data:
        path = contract.data
        if not os.path.exists(path):
            raise AdvisorError(f"--data: no such file {path!r}")
        ids = (np.load(path) if path.endswith(".npy")
               else np.fromfile(path, dtype=np.uint16)).reshape(-1).astype(np.int64)
        if ids.size < contract.seq_len + 2:
            raise AdvisorError(f"--data {path!r} holds {ids.size} tokens, fewer than one sequence")
        if ids.min() < 0 or ids.max() >= contract.vocab:
            raise AdvisorError(f"--data {path!r} has ids in [{ids.min()}, {ids.max()}], "
                               f"outside the vocabulary of {contract.vocab} (--vocab)")
        return ids
    from calibration.train.data import load_data

    ids = np.asarray(load_data("stdlib").train, dtype=np.int64)
    return ids % contract.vocab if contract.vocab < 256 else ids


def text_batches(n_batches: int, contract: Contract, seed: int, ids=None):
    """``n_batches`` contiguous (inputs, targets) LongTensor pairs (batch, seq) of the token
    stream, sampled with ``seed``."""
    import torch

    ids = token_ids(contract) if ids is None else ids
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        starts = rng.integers(0, len(ids) - contract.seq_len - 1, size=contract.batch)
        chunk = np.stack([ids[s:s + contract.seq_len + 1] for s in starts])
        t = torch.from_numpy(chunk)
        out.append((t[:, :-1].contiguous(), t[:, 1:].contiguous()))
    return out


def hook_batch(contract: Contract, width: int, step: int, seed: int):
    """The user's ``batch(width, step)``, called with every RNG seeded by (seed, step)."""
    seed_all(seed * 7919 + step + 1)
    made = contract.batch_fn(width, step)
    if not isinstance(made, (tuple, list)) or len(made) != 2:
        raise AdvisorError("the batch hook must return (inputs, targets)")
    return tuple(made)


# --------------------------------------------------------------------------------------
# The model, adapted
# --------------------------------------------------------------------------------------

class Adapted:
    """Calls the model in its layout and returns logits batch-first; ``raw`` holds the
    logits as the model returned them, ``output`` the whole output."""

    def __init__(self, model, layout: str):
        self.model, self.layout = model, layout
        self.raw = self.output = None

    def __call__(self, x):
        from calibration.spectral.probes import logits_of

        seq_first = self.layout == "seq-first"
        if seq_first and hasattr(x, "transpose") and getattr(x, "ndim", 0) >= 2:
            x = x.transpose(0, 1).contiguous()
        self.output = self.model(x)
        self.raw = logits_of(self.output)
        return self.raw.transpose(0, 1) if seq_first and self.raw.ndim >= 2 else self.raw


def _leak(model, x, vocab: int, seq_first: bool) -> float:
    """How much changing sample 0 moves the other samples' outputs and the outputs of every
    matrix module (relative RMS; the largest)."""
    import torch

    from calibration.spectral.probes import logits_of, weight_modules

    axis = 1 if seq_first else 0

    def run(inp):
        outs, hooks = [], []
        for mod in weight_modules(model).values():
            hooks.append(mod.register_forward_hook(
                lambda m, a, o: outs.append(o) if isinstance(o, torch.Tensor) else None))
        try:
            out = logits_of(model(inp.transpose(0, 1).contiguous() if seq_first else inp))
        finally:
            for h in hooks:
                h.remove()
        return [out] + outs

    x2 = x.clone()
    x2[0] = (x2[0] + 1) % vocab
    worst = 0.0
    for a, b in zip(run(x), run(x2)):
        if a.shape != b.shape or a.ndim < 2 or a.shape[axis] != x.shape[0]:
            continue
        a, b = a.movedim(axis, 0)[1:].double(), b.movedim(axis, 0)[1:].double()
        ref = float(a.pow(2).mean().sqrt())
        if ref > 0:
            worst = max(worst, float((a - b).pow(2).mean().sqrt()) / ref)
    return worst


def detect_layout(model, x, vocab: int) -> str:
    """'batch-first' or 'seq-first' for a model fed (batch, seq) token ids: the layout in
    which changing one sample leaves the others' outputs alone (eval mode, no grad).
    AdvisorError when samples mix in both."""
    import torch

    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            if _leak(model, x, vocab, False) < 1e-5:
                return "batch-first"
            if _leak(model, x, vocab, True) < 1e-5:
                return "seq-first"
    finally:
        model.train(was)
    raise AdvisorError("the model mixes the samples of a batch whether fed (batch, seq) or "
                       "(seq, batch) token ids: pass --layout, or a batch hook and a loss hook")


def apply_lr_scales(opt, key: str) -> int:
    """Multiply each parameter group's lr by its ``key`` entry (once); returns how many groups
    had one."""
    n = 0
    for g in getattr(opt, "param_groups", []):
        if key in g and "lr" in g:
            scale = float(g[key])
            if not scale > 0:
                raise AdvisorError(f"a parameter group has {key} = {g[key]!r}; it must be > 0")
            g["lr"] = g["lr"] * scale
            n += 1
    return n


def call_loss(contract: Contract, adapted: Adapted, x, y):
    """The training loss of one batch (cross-entropy over next-token targets, or the hook)."""
    import torch

    if contract.loss_fn is not None:
        out = adapted.model(x)
        loss = contract.loss_fn(out, y)
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            raise AdvisorError("the loss hook must return a scalar tensor")
        return loss
    logits = adapted(x)
    return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                             y.reshape(-1))


def accepts(fn, n: int) -> bool:
    try:
        inspect.signature(fn).bind(*range(n))
        return True
    except (TypeError, ValueError):
        return False
