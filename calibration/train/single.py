"""Train one proxy model (``train_run``); a group of runs goes through calibration.train.group.

A run is fully described by a :class:`RunSpec`; its id is a hash of those settings, so the
same settings always map to the same row of the results store (which is how sweeps resume).

The loop: AdamW with muP's per-group multipliers (calibration.model.proxy.build_optimizer), the
LR schedule from advisor.rules.lr_schedule applied to each group's base LR, bf16 autocast and
torch.compile on CUDA, fp32 on the CPU. Every ``eval_interval`` steps (and at the last step)
it records the mean training loss since the previous point, the held-out loss on a fixed set
of windows, the LR, and tokens seen. A run ends ``finished``, ``diverged`` (a non-finite loss,
or a smoothed training loss above ``diverge_factor`` x its first loss: stopped early to save
compute) or ``failed`` (an exception, kept as text).

Units: ``batch_size`` in sequences, ``seq_len`` and ``tokens`` in tokens, ``lr`` is the peak
LR of the base-width model, losses in nats per token.
"""
from __future__ import annotations

import math
import time
import traceback

from advisor.errors import AdvisorError
from advisor.specs.runspec import RunSpec
from calibration.train.runtime import (MultiplierStream, RunResult, RunTracker, autocast_for,
                                 batch_sampler, heldout_loss, wants_compile)
from calibration.train.stability_probe import enabled as probes_enabled
from calibration.train.stability_probe import probe_batch, single_run_probe


def _evaluate(model, data, spec, device, autocast) -> float:
    """Held-out loss (nats/token) of one model (calibration.train.runtime.heldout_loss)."""
    import torch

    def summed_ce(x, y):
        with autocast():
            logits = model(x)
        return torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")

    model.eval()
    try:
        return float(heldout_loss(data, spec, device, summed_ce))
    finally:
        model.train()


def train_run(spec: RunSpec, data, device: str = "cpu", callbacks=(), progress=None) -> RunResult:
    """Train one run to the end (or to divergence) and return its result; never raises for
    a training failure (status ``failed`` with the error instead).

    ``callbacks``: objects with ``on_step(step, model, optimizer, batch) -> dict | None``,
    called after each optimiser step; returned dicts are kept as diagnostics (name -> float).
    ``progress``: optional ``f(step, total_steps, train_loss)`` called every step.

    Timing (seconds): ``wall_time_s`` is the time spent in training steps (batch, forward,
    backward, optimizer, reading the loss back), without the held-out evaluations and
    callbacks; ``startup_s`` is what came before (config, model build and init, optimizer)
    plus, when the model is compiled, the first step (which compiles it), so the first run
    of a process no longer looks slower than the next. ``tokens_per_s`` is over the timed
    steps only.
    """
    import torch

    from calibration.model.proxy import build_model, build_optimizer, compute_loss, count_params

    result = RunResult(spec=spec, status="failed", device=str(device))
    t0 = time.perf_counter()
    startup, step_s, timed_tokens = None, 0.0, 0
    try:
        cfg = spec.model_config(vocab_size=data.vocab_size)
        data.check_fits(spec.seq_len)
        if spec.factory:                   # the user's own model (calibration.model.factory)
            from calibration.model import factory

            torch.manual_seed(spec.seed)
            model, opt = factory.build(spec.factory, spec.width, spec.lr, cfg.vocab_size,
                                       spec.seq_len, device)
            result.arch = {"factory": spec.factory, "vocab_size": cfg.vocab_size,
                           "data_fingerprint": data.fingerprint}
            result.n_params, result.n_params_non_embedding = factory.count_params(
                model, cfg.vocab_size)
            for g in opt.param_groups:
                g["initial_lr"] = g["lr"]
        else:
            result.arch = {"heads": cfg.heads, "d_head": cfg.d_head,
                           "ffn_hidden": cfg.ffn_hidden, "vocab_size": cfg.vocab_size,
                           "data_fingerprint": data.fingerprint}
            model = build_model(cfg, device=device, seed=spec.seed)
            result.n_params, result.n_params_non_embedding = count_params(model)
            opt = build_optimizer(model, cfg, spec.lr, spec.weight_decay,
                                  betas=(spec.beta1, spec.beta2), eps=spec.eps,
                                  kind=spec.optimizer, muon=spec.muon_settings(),
                                  wd_rule=spec.wd_rule, wd_coupling=spec.wd_coupling)
        is_cuda = str(device).startswith("cuda")
        fwd = model
        compiled = wants_compile(spec, device)
        if compiled:
            fwd = torch.compile(model)
        autocast = autocast_for(device)
        mults = MultiplierStream(spec.schedule, spec.steps)
        sampler = batch_sampler(data, spec)
        tracker = RunTracker(spec, result)
        probe_x = (probe_batch(data, spec, device)      # a foreign model has no probe=
                   if probes_enabled() and not spec.factory else None)
        for step in range(1, spec.steps + 1):
            ts = time.perf_counter()
            if startup is None:
                startup = ts - t0
            lr_mult = mults.at(step)
            for g in opt.param_groups:
                g["lr"] = g["initial_lr"] * lr_mult
            x, y = sampler.next(device)
            with autocast():
                logits = fwd(x)
            loss, ce = compute_loss(logits, y, cfg.z_loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if spec.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
            opt.step()
            loss_v = ce.item()             # waits for the device: the step is done
            dt = time.perf_counter() - ts
            if step == 1 and compiled:
                startup += dt
            else:
                step_s += dt
                timed_tokens += spec.tokens_per_step
            for cb in callbacks:
                diag = cb.on_step(step, model, opt, (x, y))
                for name, value in (diag or {}).items():
                    result.diagnostics.append((step, str(name), float(value)))
            if progress is not None:
                progress(step, spec.steps, loss_v)
            tracker.record(step, loss_v)
            if tracker.wants_curve_point(step):
                val = (_evaluate(fwd, data, spec, device, autocast)
                       if tracker.status == "finished" else math.nan)
                tracker.add_curve_point(step, lr_mult, val)
                if probe_x is not None and tracker.status == "finished":
                    tracker.add_probes(step, single_run_probe(model, opt, probe_x, autocast))
            if tracker.status == "diverged":
                break
        result.status = tracker.status
        result.final_train_loss = result.curve["train_loss"][-1]
        result.final_val_loss = result.curve["val_loss"][-1]
        if is_cuda:
            torch.cuda.synchronize()
    except AdvisorError as exc:
        result.error = str(exc)
    except Exception as exc:  # a failed run is a result, not a crash of the sweep
        result.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
    result.startup_s = (time.perf_counter() - t0) if startup is None else startup
    result.wall_time_s = step_s
    if step_s > 0:
        result.tokens_per_s = timed_tokens / step_s
    return result
