"""Train many same-shape proxies as one stacked model (one process, one optimizer step).

A sweep is dozens of tiny models. Trained one at a time, a proxy of width 256 leaves a GPU
mostly idle: kernel launches, not arithmetic, set the pace. Here K members that share a shape
(same width, depth, batch size, sequence length; different LR, weight decay, seed, schedule or
token budget) are held as one set of tensors with a leading member axis, and every step runs
all K forward and backward passes as batched kernels and one Adam(W) update:

* **Forward**: ``torch.func.vmap`` over ``functional_call`` of the ordinary single model
  (``calibration.model.proxy.build_model``), so the model code exists once. Each member's data batch
  is its own (the batch the single run would draw at that step, from its own seed).
* **Optimizer**: :class:`calibration.train.stacked_optim.StackedAdamW`, with each parameter's
  per-member LR, weight decay and eps read off the optimizer that ``build_optimizer`` builds
  for that member: muP multipliers per parameter group exactly as for a single model (stacked
  tensors lose mup's ``infshape``; the template keeps it). Muon members
  (``optimizer: muon``): ``StackedMuon`` (one batched Newton-Schulz) on the hidden matrices
  with ``StackedAdamW`` on the rest (``calibration.train.stacked_optim.stacked_optimizer``).
* **Per member**: its LR schedule (``advisor.rules.lr_schedule``) as a multiplier each step, its own
  gradient clipping, and its own divergence: a diverged member stops (LR 0, its loss leaves the
  sum, its weights are zeroed so it cannot produce NaNs), the others go on. A member whose
  token budget is spent stops the same way, and its result is reported at once.
* **Speed**: on CUDA (``compile: auto``) the vmapped forward/backward and the optimizer
  update are each one ``torch.compile``d function (bf16 autocast as in ``train_run``); a
  compile failure falls back to eager with a warning. ``$ADVISOR_STACK_COMPILE_MODE`` sets
  the compile mode (``reduce-overhead`` for CUDA graphs). Losses are read back to the host
  only every few steps, so the CPU can queue kernels ahead of the GPU.
* **K** (members per stack): measured, not guessed: on CUDA a stack of one and of two
  members each take a step and the difference in peak memory is one member's cost; K fills
  85% of the free memory (:func:`choose_stack_size`), at most 64. On the CPU 8.
  ``$ADVISOR_STACK_MAX`` or ``max_members=`` override. A stack that still runs out of
  memory is retried as two halves.

:func:`calibration.train.group.train_stack` (the driver: grouping, stack sizes, fallbacks) has
:func:`calibration.train.group.train_group`'s signature and returns the same
:class:`~calibration.train.runtime.RunResult` per member, so the executors and the results store see
one row per member as before. tests/test_stacked.py checks on the CPU, in float64, that a
member of a stack follows the loss curve of the same spec trained alone by ``train_run``.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from typing import Callable, Sequence

from advisor.errors import AdvisorError
from advisor.specs.grouping import stack_key
from calibration.train.runtime import (MultiplierStream, RunTracker, autocast_for, batch_sampler,
                                 heldout_loss, wants_compile)
from calibration.train.stability_probe import enabled as probes_enabled
from calibration.train.stability_probe import probe_batch, stacked_probe
from calibration.train.stacked_optim import adam_update, stacked_optimizer

# Upper bound on members per stack where memory does not decide (CPU, or many tiny models):
# past a few dozen members the GPU is busy anyway and a failure costs more runs at once.
CPU_MAX_MEMBERS = 8
GPU_MAX_MEMBERS = 64
MULT_CHUNK = 4096     # steps of LR multipliers held at a time


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


def tied_aliases(module) -> dict:
    """{alias name: owner name} of every parameter registered under more than one name (a tied
    embedding and readout: ``readout.weight`` -> ``embed.weight``); the owner is the name
    ``named_parameters`` keeps."""
    owner, aliases = {}, {}
    for name, p in module.named_parameters(remove_duplicate=False):
        if id(p) in owner:
            aliases[name] = owner[id(p)]
        else:
            owner[id(p)] = name
    return aliases


def to_meta_keeping_ties(module, aliases: dict):
    """``module.to("meta")`` with its tied parameters tied again.

    Moving to another device gives each registered parameter its own new tensor, so a tied
    readout would become a separate meta parameter: ``functional_call`` (which ties only what
    the module ties) would then run the readout on meta weights, and the backward fails with
    "expected device meta but got cpu". Re-registering the owner under each alias keeps the
    single model's tie, so a member's embedding gradient is the sum of both uses, as alone.
    """
    module = module.to("meta")
    for alias, owner in aliases.items():
        parent, _, leaf = alias.rpartition(".")
        setattr(module.get_submodule(parent) if parent else module, leaf,
                module.get_parameter(owner))
    return module


class StackedModel:
    """K same-shape models as stacked leaf tensors ``{name: (K, ...)}``, run with vmap.

    ``members`` are fully built single models (initialised, mup base shapes set). Their weights
    are copied into the stack; ``members[0]`` becomes the skeleton ``functional_call`` runs
    (moved to the meta device, so an op that reached for its own weights would fail loudly).
    Buffers equal across members (rotary tables) are shared, not stacked. A tied parameter
    (embedding and readout) is stacked once, under the name ``named_parameters`` keeps, and
    stays tied in the skeleton (:func:`to_meta_keeping_ties`).
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
        self.skeleton = to_meta_keeping_ties(skeleton, tied_aliases(skeleton))
        self.device = next(iter(self.params.values())).device

    def parameters(self):
        return list(self.params.values())

    def vmapped(self, fn: Callable, batched_extra: int = 1, shared_extra: int = 0):
        """``fn(forward, *extra)`` vmapped over members, as ``g(params, buffers, *extra)``.

        For each member k, ``fn`` gets ``forward`` (runs member k's model: token ids ->
        logits; keywords go to the model's forward, e.g. ``probe=True``) and its extras; the first ``batched_extra`` extras carry a leading member
        axis, the next ``shared_extra`` are shared by all members. ``params`` is
        ``self.params`` or a subset of members of it (same names); ``buffers`` is
        ``self.buffers``. The returned function is pure, so ``torch.compile`` can trace it.
        """
        from torch.func import functional_call, vmap

        skeleton = self.skeleton

        def per_member(params, buffers, *extra):
            def forward(x, **kw):
                return functional_call(skeleton, (params, buffers), (x,), kw)
            return fn(forward, *extra)

        in_dims = (0, dict(self.buffer_dims)) + (0,) * batched_extra + (None,) * shared_extra
        mapped = vmap(per_member, in_dims=in_dims, randomness="different")

        def call(params, buffers, *extra):
            with warnings.catch_warnings():
                # CPU attention has no vmap batching rule and falls back to a loop over
                # members (correct, slower); CUDA's flash/efficient kernels have one.
                warnings.filterwarnings("ignore", message=".*batching rule.*")
                return mapped(params, buffers, *extra)
        return call

    def subset(self, index) -> dict:
        """The stacked parameters of the members in ``index`` (a LongTensor), detached."""
        return {n: p.detach().index_select(0, index) for n, p in self.params.items()}

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


def clip_member_grads(params: Sequence, max_norm, eps: float = 1e-6):
    """Per-member global-norm clipping, as ``torch.nn.utils.clip_grad_norm_`` does for one
    model: member k's gradients are scaled by min(1, max_norm_k / (norm_k + 1e-6)).

    ``max_norm``: a number, or a tensor (K,) of per-member limits where 0 means no clipping.
    Returns the per-member gradient norms (K,) before clipping.
    """
    import torch

    grads = [p.grad for p in params if p.grad is not None]
    K = grads[0].shape[0]
    sq = torch.stack([g.reshape(K, -1).pow(2).sum(1) for g in grads]).sum(0)
    norms = sq.sqrt()
    if isinstance(max_norm, (int, float)):
        if max_norm <= 0:
            return norms
        coef = (max_norm / (norms + eps)).clamp(max=1.0)
    else:
        limit = max_norm.to(norms.dtype)
        coef = torch.where(limit > 0, (limit / (norms + eps)).clamp(max=1.0),
                           torch.ones_like(norms))
    for g in grads:
        g.mul_(coef.view((K,) + (1,) * (g.dim() - 1)))
    return norms


# --------------------------------------------------------------------------------------
# Training a stack of RunSpecs (the calibration engine's entry point)
# --------------------------------------------------------------------------------------

class StackOOM(Exception):
    """The stack ran out of device memory; the caller retries with fewer members."""


class _Stack:
    """K RunSpecs of one stack key, built and stepped together."""

    def __init__(self, specs, data, device: str, compile_ok: bool = True):
        import torch

        from calibration.model.proxy import build_model, build_optimizer, compute_loss, count_params

        self.specs, self.data, self.device = list(specs), data, device
        spec0 = self.specs[0]
        self.K = len(self.specs)
        self.cfg = cfg = spec0.model_config(vocab_size=data.vocab_size)
        data.check_fits(spec0.seq_len)
        self.is_cuda = str(device).startswith("cuda")
        models, opts = [], []
        for spec in self.specs:
            m = build_model(cfg, device=device, seed=spec.seed)
            opts.append(build_optimizer(m, cfg, spec.lr, spec.weight_decay,
                                        betas=(spec.beta1, spec.beta2), eps=spec.eps,
                                        kind=spec.optimizer, muon=spec.muon_settings(),
                                        wd_rule=spec.wd_rule,
                                        wd_coupling=spec.wd_coupling))
            models.append(m)
        self.n_params = count_params(models[0])
        member_params = [dict(m.named_parameters()) for m in models]
        self.model = StackedModel(models)
        want = wants_compile(spec0, device)
        self.opt = stacked_optimizer(self.model.params, member_params, opts,
                                     compile=want and compile_ok)
        del opts, models, member_params
        self.steps = max(s.steps for s in self.specs)
        # LR multipliers per member, computed MULT_CHUNK steps at a time (never (K, T))
        self.streams = [MultiplierStream(s.schedule, s.steps) for s in self.specs]
        self._mult_lo, self._mults_host, self._mults = 0, None, None
        p0 = next(iter(self.model.params.values()))
        self._dtype = p0.dtype
        self.active = torch.ones(self.K, dtype=p0.dtype, device=device)
        self.clip = torch.tensor([s.grad_clip for s in self.specs], dtype=p0.dtype, device=device)
        self.any_clip = bool((self.clip > 0).any())
        # the data order of each member is its single run's: the same sampler and seed
        self.samplers = [batch_sampler(data, s) for s in self.specs]
        # per-member CE of the steps not yet read back: a ring of sync_every rows (the host
        # reads them at least every sync_every steps), not one row per step of the run
        self.sync_every = _sync_every(device, self.specs)
        self.losses = torch.zeros(self.sync_every, self.K, dtype=torch.float32, device=device)

        self.autocast = autocast_for(device)
        autocast, z_loss = self.autocast, cfg.z_loss

        def member_loss(forward, x, y):
            with autocast():
                logits = forward(x)
            return compute_loss(logits, y, z_loss)

        def member_eval(forward, x, y):
            with autocast():
                logits = forward(x)
            return torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")

        self.loss_fn = self.model.vmapped(member_loss, batched_extra=2)
        self.eval_fn = self.model.vmapped(member_eval, batched_extra=0, shared_extra=2)
        self.probe_x = probe_batch(data, spec0, device) if probes_enabled() else None
        self.compiled = None
        if want and compile_ok:
            # $ADVISOR_STACK_COMPILE_MODE picks torch.compile's mode for the forward and
            # backward, e.g. "reduce-overhead" (CUDA graphs) or "max-autotune-no-cudagraphs"
            mode = os.environ.get("ADVISOR_STACK_COMPILE_MODE") or None
            self.compiled = torch.compile(self.loss_fn, mode=mode)

    # ------------------------------------------------------------------------------
    def _mult_chunk(self, t: int) -> None:
        import numpy as np
        import torch

        i = t - 1
        if self._mults_host is not None and self._mult_lo <= i < self._mult_lo + MULT_CHUNK:
            return
        self._mult_lo = i - i % MULT_CHUNK
        host = np.stack([st.block(self._mult_lo + 1, MULT_CHUNK) for st in self.streams], 1)
        self._mults_host = host                                          # (chunk, K)
        self._mults = torch.tensor(host, dtype=self._dtype, device=self.device)

    def mult(self, k: int, t: int) -> float:
        """Member k's LR multiplier at step t (0 once its run has ended)."""
        self._mult_chunk(t)
        return float(self._mults_host[t - 1 - self._mult_lo, k])

    def mults_at(self, t: int):
        """Every member's LR multiplier at step t, a (K,) tensor on the device."""
        self._mult_chunk(t)
        return self._mults[t - 1 - self._mult_lo]

    def losses_since(self, synced: int, t: int) -> list:
        """Per-member losses of steps synced+1..t (at most sync_every of them), read back."""
        n = t - synced
        if not 0 <= n <= self.sync_every:
            raise RuntimeError(f"{n} unread steps do not fit the ring of {self.sync_every}")
        rows = self.losses.cpu().tolist()
        return [rows[(s - 1) % self.sync_every] for s in range(synced + 1, t + 1)]

    def batch(self):
        """Every member's next training batch, (K, B, T) inputs and targets, one transfer.

        Draws exactly what ``BatchSampler.next`` draws for each member (the same
        ``next_starts`` calls, the same ``windows``), gathered in one index for all members.
        """
        import numpy as np
        import torch

        from calibration.train.data import windows

        starts = np.stack([s.next_starts() for s in self.samplers])     # (K, B)
        chunk = torch.from_numpy(windows(self.data.train, starts, self.specs[0].seq_len))
        if self.is_cuda:
            chunk = chunk.pin_memory().to(self.device, non_blocking=True)
        else:
            chunk = chunk.to(self.device)
        return chunk[..., :-1], chunk[..., 1:]

    def step(self, t: int) -> None:
        """Training step t (from 1) for all members; the per-member CE goes to losses[t-1]."""
        x, y = self.batch()
        on = self.active > 0
        try:
            ce = self._forward_backward(self.compiled or self.loss_fn, x, y, on)
        except Exception as exc:
            if self.compiled is None or _is_oom(exc):
                raise
            # torch.compile fails while tracing the forward or, lazily, the backward; the
            # weights are untouched until the optimizer step, so redo the step eagerly
            warnings.warn(f"torch.compile of the stacked step failed ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}); running eager")
            self.compiled = None
            ce = self._forward_backward(self.loss_fn, x, y, on)
        if self.any_clip:
            clip_member_grads(self.model.parameters(), self.clip)
        scale = self.mults_at(t) * self.active
        try:
            self.opt.step(scale)
        except Exception as exc:
            if not self.opt.compiled or _is_oom(exc):
                raise
            # compilation fails before any tensor is touched: redo the step eagerly
            warnings.warn(f"torch.compile of the stacked optimizer failed "
                          f"({type(exc).__name__}); running eager")
            self.opt.compiled, self.opt._update = False, adam_update
            self.opt.t -= 1
            self.opt.step(scale)
        self.losses[(t - 1) % self.sync_every] = ce.detach().float()

    def _forward_backward(self, fn, x, y, on):
        import torch

        self.opt.zero_grad()
        loss, ce = fn(self.model.params, self.model.buffers, x, y)
        torch.where(on, loss, torch.zeros_like(loss)).sum().backward()
        return ce

    def stop(self, members: list[int]) -> None:
        """Freeze these members for good: LR 0, out of the loss, weights and moments zeroed
        (a diverged member's NaNs cannot reach anything, its compute stays finite)."""
        import torch

        if not members:
            return
        mask = torch.zeros(self.K, dtype=torch.bool, device=self.active.device)
        mask[members] = True
        self.active[mask] = 0.0
        self.model.zero_members(mask)
        self.opt.reset_members(mask)

    def evaluate(self, members: list[int]) -> list[float]:
        """Held-out loss (nats/token) of these members on the fixed windows, as train_run's
        evaluation computes it (same windows, same batches)."""
        import torch

        idx = torch.tensor(members, device=self.device)
        params = self.model.subset(idx)
        return heldout_loss(self.data, self.specs[0], self.device,
                            lambda x, y: self.eval_fn(params, self.model.buffers, x, y)).tolist()


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc)


def _sync_every(device: str, specs) -> int:
    """Steps between host reads of the losses: every step on the CPU (nothing to overlap);
    on a GPU, reading a loss stalls the launch queue, so read only every few steps (a
    diverged member runs on for at most that many steps, isolated from the others)."""
    if not str(device).startswith("cuda"):
        return 1
    return max(1, min(16, min(s.eval_interval for s in specs)))


def run_stack(specs, data, device, on_result, progress=None, compile_ok=True):
    """Train one stack to the end; reports each member through ``on_result`` as it ends.

    Returns the list of RunResults (in ``specs`` order). Raises StackOOM on device memory
    exhaustion (the caller knows which members were already reported).
    """
    import torch

    from calibration.train.runtime import RunResult

    t0 = time.perf_counter()
    clock = _Clock(t0)
    logs = [RunTracker(s, RunResult(spec=s, status="failed", device=str(device))) for s in specs]
    try:
        stack = _Stack(specs, data, device, compile_ok=compile_ok)
    except AdvisorError as exc:      # bad settings: every member fails as train_run would
        clock.startup_s = time.perf_counter() - t0
        for log in logs:
            log.result.error = str(exc)
            _report(log, clock, on_result)
        return [log.result for log in logs]
    except Exception as exc:
        if _is_oom(exc):
            raise StackOOM() from exc
        raise
    for log in logs:
        log.result.n_params, log.result.n_params_non_embedding = stack.n_params
        log.result.diagnostics.append((0, "stack_size", float(stack.K)))
    every = stack.sync_every
    synced = 0                         # losses of steps <= synced have been read
    clock.startup_s = time.perf_counter() - t0
    compiled = stack.compiled is not None or stack.opt.compiled
    try:
        for t in range(1, stack.steps + 1):
            ts = time.perf_counter()
            stack.step(t)
            live = [k for k, log in enumerate(logs) if not log.done]
            need = (t % every == 0 or t == stack.steps
                    or any(logs[k].wants_curve_point(t) or t == logs[k].spec.steps for k in live))
            if not need:
                clock.add(ts, t, compiled)
                continue
            rows = stack.losses_since(synced, t)      # waits for the device
            clock.add(ts, t, compiled)
            for s_off, row in enumerate(rows):
                s = synced + 1 + s_off
                ending, points = [], []
                for k in live:
                    log = logs[k]
                    if log.done or s > log.end_step:
                        continue
                    ended = log.record(s, row[k])
                    if log.wants_curve_point(s) or ended:
                        points.append(k)
                    if ended:
                        ending.append(k)
                if points:
                    finished = [k for k in points if logs[k].status == "finished"]
                    vals = dict(zip(finished, stack.evaluate(finished))) if finished else {}
                    for k in points:
                        mult = stack.mult(k, s)
                        logs[k].add_curve_point(s, mult, vals.get(k, math.nan))
                    if finished and stack.probe_x is not None:
                        for k, rows in zip(finished, stacked_probe(stack, finished,
                                                                   stack.probe_x)):
                            logs[k].add_probes(s, rows)
                for k in ending:
                    logs[k].result.status = logs[k].status
                    c = logs[k].result.curve
                    logs[k].result.final_train_loss = c["train_loss"][-1]
                    logs[k].result.final_val_loss = c["val_loss"][-1]
                    _report(logs[k], clock, on_result)
                stack.stop(ending)
                live = [k for k in live if not logs[k].done]
            synced = t
            if progress is not None:
                progress(t, stack.steps, float(stack.losses[(t - 1) % stack.sync_every].mean()))
            if all(log.done for log in logs):
                break
        if stack.is_cuda:
            torch.cuda.synchronize()
    except Exception as exc:
        if _is_oom(exc):
            raise StackOOM() from exc
        raise
    return [log.result for log in logs]


class _Clock:
    """A stack's timing (seconds): ``startup_s`` (building the stack; with compilation also
    its first step) and ``step_s`` (training steps since, evaluations excluded). On a GPU a
    step that reads nothing back is queued, not done: its time is counted when the next
    read-back waits for it."""

    def __init__(self, t0: float):
        self.t0, self.startup_s, self.step_s, self.first_step_s = t0, 0.0, 0.0, 0.0

    def add(self, ts: float, t: int, compiled: bool) -> None:
        dt = time.perf_counter() - ts
        if t == 1 and compiled:
            self.startup_s += dt
            self.first_step_s = dt
        else:
            self.step_s += dt


def _report(log: RunTracker, clock: _Clock, on_result) -> None:
    r = log.result
    r.startup_s = clock.startup_s
    r.wall_time_s = clock.step_s        # the stack's step time up to this member's end
    timed = r.tokens_seen - (log.spec.tokens_per_step if clock.first_step_s else 0)
    if r.wall_time_s > 0 and timed > 0:
        r.tokens_per_s = timed / r.wall_time_s
    log.done = True
    if on_result is not None:
        on_result(r)


def measure_member_bytes(spec, data, device) -> tuple[float, float]:
    """(bytes one more member adds, bytes a stack needs regardless of K) on a CUDA device,
    measured by building stacks of 1 and 2 copies of ``spec`` and taking one step each."""
    import dataclasses

    import torch

    peaks = []
    for k in (1, 2):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        specs = [dataclasses.replace(spec, seed=spec.seed + i) for i in range(k)]
        stack = _Stack(specs, data, device, compile_ok=False)
        stack.step(1)
        torch.cuda.synchronize()
        peaks.append(torch.cuda.max_memory_allocated() - base)
        del stack
    torch.cuda.empty_cache()
    per = max(peaks[1] - peaks[0], 1.0)
    return float(per), float(max(peaks[0] - per, 0.0))


_MEMBER_BYTES: dict[tuple, tuple[float, float]] = {}


def choose_stack_size(specs, data, device, max_members: int | None = None) -> int:
    """Members per stack: from free GPU memory (measured per member), else a fixed cap."""
    n = len(specs)
    if max_members is not None:
        if max_members < 1:
            raise AdvisorError(f"max_members must be >= 1, got {max_members}")
        return min(n, max_members)
    env = os.environ.get("ADVISOR_STACK_MAX")
    if env:
        try:
            return max(1, min(n, int(env)))
        except ValueError:
            raise AdvisorError(f"ADVISOR_STACK_MAX must be an integer, got {env!r}") from None
    if not str(device).startswith("cuda"):
        return min(n, CPU_MAX_MEMBERS)
    import torch

    key = (stack_key(specs[0]), str(device), data.fingerprint)
    if key not in _MEMBER_BYTES:     # once per shape and device in this process
        _MEMBER_BYTES[key] = measure_member_bytes(specs[0], data, device)
    per, fixed = _MEMBER_BYTES[key]
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return stack_size_from_memory(n, free, per, fixed)
