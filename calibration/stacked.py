"""Train many same-shape proxies as one stacked model (one process, one optimizer step).

A sweep is dozens of tiny models. Trained one at a time, a proxy of width 256 leaves a GPU
mostly idle: kernel launches, not arithmetic, set the pace. Here K members that share a shape
(same width, depth, batch size, sequence length; different LR, weight decay, seed, schedule or
token budget) are held as one set of tensors with a leading member axis, and every step runs
all K forward and backward passes as batched kernels and one Adam(W) update:

* **Forward**: ``torch.func.vmap`` over ``functional_call`` of the ordinary single model
  (``calibration.model.build_model``), so the model code exists once. Each member's data batch
  is its own (the batch the single run would draw at that step, from its own seed).
* **Optimizer**: :class:`calibration.stacked_optim.StackedAdamW`, with each parameter's
  per-member LR, weight decay and eps read off the optimizer that ``build_optimizer`` builds
  for that member: muP multipliers per parameter group exactly as for a single model (stacked
  tensors lose mup's ``infshape``; the template keeps it).
* **Per member**: its LR schedule (``advisor.lr_schedule``) as a multiplier each step, its own
  gradient clipping, and its own divergence: a diverged member stops (LR 0, its loss leaves the
  sum, its weights are zeroed so it cannot produce NaNs), the others go on. A member whose
  token budget is spent stops the same way, and its result is reported at once.

:func:`train_stack` has :func:`calibration.train.train_group`'s signature and returns the same
:class:`~calibration.train.RunResult` per member, so the executors and the results store see
one row per member as before. tests/test_stacked.py checks on the CPU, in float64, that a
member of a stack follows the loss curve of the same spec trained alone by ``train_run``.
"""
from __future__ import annotations

import math
import os
import warnings
from typing import Callable, Sequence

from advisor.errors import AdvisorError

# Upper bound on members per stack where memory does not decide (CPU, or many tiny models):
# past a few dozen members the GPU is busy anyway and a failure costs more runs at once.
CPU_MAX_MEMBERS = 8
GPU_MAX_MEMBERS = 64


# --------------------------------------------------------------------------------------
# Choosing K
# --------------------------------------------------------------------------------------

def stack_size_from_memory(n_members: int, free_bytes: float, per_member_bytes: float,
                           fixed_bytes: float = 0.0, fraction: float = 0.85,
                           cap: int = GPU_MAX_MEMBERS) -> int:
    """Members per stack that fit in ``fraction`` of ``free_bytes`` (at least 1, at most
    ``cap`` and ``n_members``). ``per_member_bytes``: peak memory one more member adds (its
    weights, gradients, Adam moments and activations); ``fixed_bytes``: what a stack needs
    regardless of K."""
    if n_members < 1:
        raise AdvisorError("a stack needs at least one member")
    if per_member_bytes <= 0:
        return max(1, min(cap, n_members))
    k = int((fraction * free_bytes - fixed_bytes) // per_member_bytes)
    return max(1, min(k, cap, n_members))


def split_evenly(items: Sequence, k: int) -> list[list]:
    """Split ``items`` into ceil(n/k) chunks of sizes differing by at most one (order kept)."""
    n = len(items)
    if n == 0:
        return []
    chunks = math.ceil(n / max(1, k))
    base, extra = divmod(n, chunks)
    out, i = [], 0
    for c in range(chunks):
        size = base + (1 if c < extra else 0)
        out.append(list(items[i:i + size]))
        i += size
    return out


# --------------------------------------------------------------------------------------
# The stacked model
# --------------------------------------------------------------------------------------

def _freeze_width_mults(module) -> None:
    """Pin every ``width_mult()`` (mup's MuReadout / MuSharedReadout) to its current value.

    Those layers read ``self.weight.infshape`` in their forward; under ``functional_call`` the
    weight is a slice of a stacked tensor without ``infshape``. The value is the single
    model's, which is what a member must use.
    """
    for sub in module.modules():
        fn = getattr(type(sub), "width_mult", None)
        if callable(fn) and hasattr(getattr(sub, "weight", None), "infshape"):
            value = float(sub.width_mult())
            sub.width_mult = (lambda v=value: v)


class StackedModel:
    """K same-shape models as stacked leaf tensors ``{name: (K, ...)}``, run with vmap.

    ``members`` are fully built single models (initialised, mup base shapes set). Their weights
    are copied into the stack; ``members[0]`` becomes the skeleton ``functional_call`` runs
    (moved to the meta device, so an op that reached for its own weights would fail loudly).
    Buffers equal across members (rotary tables) are shared, not stacked.
    """

    def __init__(self, members: Sequence):
        import torch
        from torch.func import stack_module_state

        if not members:
            raise AdvisorError("a stack needs at least one member")
        names = [n for n, _ in members[0].named_parameters()]
        for m in members[1:]:
            shapes = [(n, tuple(p.shape)) for n, p in m.named_parameters()]
            if shapes != [(n, tuple(p.shape)) for n, p in members[0].named_parameters()]:
                raise AdvisorError("members of a stack must have identical parameter shapes")
        self.K = len(members)
        self.names = names
        params, buffers = stack_module_state(list(members))
        self.params = {n: params[n] for n in names}
        self.buffers, self.buffer_dims = {}, {}
        for n, b in buffers.items():
            if all(torch.equal(b[0], b[k]) for k in range(1, self.K)):
                self.buffers[n], self.buffer_dims[n] = b[0].clone(), None
            else:
                self.buffers[n], self.buffer_dims[n] = b, 0
        skeleton = members[0]
        _freeze_width_mults(skeleton)
        self.skeleton = skeleton.to("meta")
        self.device = next(iter(self.params.values())).device

    def parameters(self):
        return list(self.params.values())

    def vmapped(self, fn: Callable, batched_extra: int = 1, shared_extra: int = 0):
        """``fn(module_outputs_fn, *extra)`` vmapped over members.

        Returns ``g(*extra)``: calls ``fn(forward, *extra_k)`` for each member k, where
        ``forward(x)`` runs member k's model on ``x``; the first ``batched_extra`` extras have
        a leading member axis, the next ``shared_extra`` are shared by all members.
        """
        from torch.func import functional_call, vmap

        skeleton = self.skeleton

        def per_member(params, buffers, *extra):
            def forward(x):
                return functional_call(skeleton, (params, buffers), (x,))
            return fn(forward, *extra)

        in_dims = (0, dict(self.buffer_dims)) + (0,) * batched_extra + (None,) * shared_extra
        mapped = vmap(per_member, in_dims=in_dims, randomness="different")

        def call(*extra):
            with warnings.catch_warnings():
                # CPU attention has no vmap batching rule and falls back to a loop (correct,
                # slower); CUDA's flash/efficient kernels have one.
                warnings.filterwarnings("ignore", message=".*batching rule.*")
                return mapped(self.params, self.buffers, *extra)
        return call

    def member_state_dict(self, k: int) -> dict:
        """Member k's parameters (detached copies) under the single model's names."""
        return {n: p[k].detach().clone() for n, p in self.params.items()}

    def zero_members(self, mask) -> None:
        """Set the weights of members where ``mask`` (bool (K,)) is True to zero."""
        import torch

        with torch.no_grad():
            for p in self.params.values():
                keep = (~mask).to(p.dtype).view((self.K,) + (1,) * (p.dim() - 1))
                p.mul_(keep).nan_to_num_(0.0, 0.0, 0.0)


def clip_member_grads(params: Sequence, max_norm: float, eps: float = 1e-6):
    """Per-member global-norm clipping, as ``torch.nn.utils.clip_grad_norm_`` does for one
    model: each member's gradients are scaled by min(1, max_norm / (norm_k + 1e-6)).
    Returns the per-member gradient norms (K,) before clipping."""
    import torch

    grads = [p.grad for p in params if p.grad is not None]
    K = grads[0].shape[0]
    sq = torch.stack([g.reshape(K, -1).pow(2).sum(1) for g in grads]).sum(0)
    norms = sq.sqrt()
    if max_norm and max_norm > 0:
        coef = (max_norm / (norms + eps)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.view((K,) + (1,) * (g.dim() - 1)))
    return norms
