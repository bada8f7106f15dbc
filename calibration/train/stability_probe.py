"""Stability probes: what a run records at every evaluation to see an instability coming.

Wortsman et al. 2023 ("Small-scale proxies for large-scale Transformer training
instabilities", arXiv:2309.14322) follow three quantities that precede a divergence:

* the **largest attention logit** of each layer (q.k x softmax scale, before the softmax;
  their section 3.1.1: without QK-layernorm it grows with LR and width until attention
  collapses onto one token);
* the **output log-partition** log Z = logsumexp(logits) per token, mean and max (section
  3.1.2: without z-loss it drifts far from 0, and the loss diverges once the logits' offset
  swamps float precision);
* the **gradient RMS per parameter group against AdamW's epsilon** and the RMS of the Adam
  direction m_hat / (sqrt(v_hat) + eps) (section 3.4: when the gradient RMS falls to the
  order of eps, the update shrinks below its intended size; 1 means eps is negligible).

All are recorded at each curve point of a run (``calibration.train.runtime.RunTracker``), for
single and stacked runs alike, as diagnostics rows (step, name, value) of the results store
(``advisor.runs.store``; the names and units are listed in docs/calibration-store.md; read
back by ``advisor.runs.stability_data``). The forward quantities come from one extra forward
pass on the first :data:`PROBE_SEQUENCES` held-out windows (the same windows for every run); the gradient quantities from the gradients
and Adam moments of the step just taken (stacked on a GPU: of the latest step, which is at
most ``sync_every`` steps past the curve point). Cost: ``python -m bench.bench_stability_probe``.
``$ADVISOR_STABILITY_PROBES=off`` turns them off (the bench's comparison arm).

Units: logits and log-partitions in nats; RMS values in the gradient's units (loss per
parameter unit); eps in the same units.
"""
from __future__ import annotations

import math
import os

PROBE_SEQUENCES = 8
PREFIX = "stab."


def enabled() -> bool:
    """Probes are on unless ``$ADVISOR_STABILITY_PROBES`` is off/0/false."""
    return os.environ.get("ADVISOR_STABILITY_PROBES", "on").lower() not in ("off", "0", "false")


def probe_batch(data, spec, device):
    """The probe's input: the first PROBE_SEQUENCES held-out windows (B, T) (shared by runs)."""
    from calibration.train.data import heldout_batches

    n = min(PROBE_SEQUENCES, spec.eval_sequences)
    x, _ = next(iter(heldout_batches(data, spec.seq_len, n, n, device)))
    return x


def forward_stats(logits, attn_max):
    """(log-partition mean, log-partition max, per-layer max attention logit) as tensors
    from one probe forward: ``logits`` (..., vocab), ``attn_max`` (depth,)."""
    import torch

    lse = torch.logsumexp(logits.float(), dim=-1)
    return lse.mean(), lse.amax(), attn_max.float()


def forward_rows(lse_mean: float, lse_max: float, attn_max) -> dict:
    """The forward probe as named values (diagnostics names)."""
    out = {f"{PREFIX}lse_mean": float(lse_mean), f"{PREFIX}lse_max": float(lse_max)}
    for i, v in enumerate(attn_max):
        out[f"{PREFIX}attn_max.{i}"] = float(v)
    return out


def adam_direction_sq(grad, exp_avg, exp_avg_sq, t: int, beta1: float, beta2: float, eps,
                      dims):
    """(sum of grad^2, sum of (m_hat / (sqrt(v_hat) + eps))^2) over ``dims``: the gradient's
    and Adam direction's squared norms, from the moments after step ``t`` (float64)."""
    bc1 = 1 - beta1 ** t
    bc2 = math.sqrt(1 - beta2 ** t)
    g = grad.double()
    u = (exp_avg.double() / bc1) / (exp_avg_sq.double().sqrt() / bc2 + eps)
    if not dims:
        return g.pow(2).sum(), u.pow(2).sum()
    return g.pow(2).sum(dims), u.pow(2).sum(dims)


def _group_rows(sums: dict) -> dict:
    """{group: [grad_sq, upd_sq or None, count, eps]} -> diagnostics values."""
    out = {}
    for group, (gsq, usq, n, eps) in sorted(sums.items()):
        if n == 0:
            continue
        out[f"{PREFIX}grad_rms.{group}"] = math.sqrt(gsq / n)
        if usq is not None:
            out[f"{PREFIX}update_rms.{group}"] = math.sqrt(usq / n)
        out[f"{PREFIX}eps.{group}"] = float(eps)
    return out


def single_run_probe(model, opt, x, autocast) -> dict:
    """Every probe of one model (``calibration.model.ProxyLM``) and its optimizer after a
    step: {diagnostics name: value}."""
    import torch

    from calibration.model.groups import param_group

    with torch.no_grad(), autocast():
        logits, attn = model(x, probe=True)
    rows = forward_rows(*(t.tolist() for t in forward_stats(logits, attn)))
    group_of = {}
    adam_groups = getattr(opt, "adamw", None)
    adam_groups = adam_groups.param_groups if adam_groups is not None else (
        opt.param_groups if isinstance(opt, torch.optim.Optimizer) else [])
    for g in adam_groups:
        for p in g["params"]:
            group_of[id(p)] = g
    sums: dict = {}
    seen = set()
    for name, p in model.named_parameters():
        if id(p) in seen or p.grad is None:
            continue
        seen.add(id(p))
        kind = param_group(p, name)
        g = group_of.get(id(p))
        st = opt.adamw.state.get(p, {}) if hasattr(opt, "adamw") else opt.state.get(p, {})
        acc = sums.setdefault(kind, [0.0, 0.0, 0, g["eps"] if g else float("nan")])
        if g is not None and "exp_avg" in st:
            b1, b2 = g["betas"]
            gsq, usq = adam_direction_sq(p.grad, st["exp_avg"], st["exp_avg_sq"],
                                         int(st["step"]), b1, b2, g["eps"], ())
            acc[1] = None if acc[1] is None else acc[1] + float(usq)
        else:
            gsq = p.grad.double().pow(2).sum()
            acc[1] = None              # not on Adam (Muon): no Adam direction to report
        acc[0] += float(gsq)
        acc[2] += p.numel()
        if not g:
            acc[3] = float("nan")
    rows.update({k: v for k, v in _group_rows(sums).items() if math.isfinite(v)})
    return rows


def stacked_probe(stack, members: list[int], x) -> list[dict]:
    """Every probe of the members ``members`` of a ``calibration.stacked._Stack`` after a
    step: one {diagnostics name: value} per member, in ``members`` order."""
    import torch

    from calibration.model.groups import param_group

    idx = torch.tensor(members, device=stack.device)
    params = stack.model.subset(idx)
    autocast = stack.autocast

    def member_forward(forward, x):
        with autocast():
            logits, attn = forward(x, probe=True)
        return forward_stats(logits, attn)

    fn = stack.model.vmapped(member_forward, batched_extra=0, shared_extra=1)
    with torch.no_grad():
        lse_mean, lse_max, attn = (t.tolist() for t in fn(params, stack.model.buffers, x))
    out = [forward_rows(lse_mean[i], lse_max[i], attn[i]) for i in range(len(members))]
    adam = getattr(stack.opt, "adamw", stack.opt)
    K = len(members)
    sums = [dict() for _ in range(K)]
    for name, p in stack.model.params.items():
        if p.grad is None:
            continue
        kind = param_group(p[0], name)
        g = p.grad.index_select(0, idx)
        dims = tuple(range(1, p.dim()))
        st = adam.state.get(name) if hasattr(adam, "state") else None
        if st is not None and adam.t > 0:
            eps = st["settings"][2]
            eps_m = (eps.index_select(0, idx) if torch.is_tensor(eps) else eps)
            gsq, usq = adam_direction_sq(g, st["exp_avg"].index_select(0, idx),
                                         st["exp_avg_sq"].index_select(0, idx), adam.t,
                                         adam.beta1, adam.beta2, eps_m, dims)
            usq = usq.tolist()
            eps_list = (eps_m.reshape(-1).tolist() if torch.is_tensor(eps_m) else [eps_m] * K)
        else:
            gsq = g.double().pow(2).sum(dims)
            usq, eps_list = [None] * K, [float("nan")] * K
        gsq = gsq.tolist()
        n = p[0].numel()
        for i in range(K):
            acc = sums[i].setdefault(kind, [0.0, 0.0, 0, eps_list[i]])
            acc[0] += gsq[i]
            acc[1] = None if (acc[1] is None or usq[i] is None) else acc[1] + usq[i]
            acc[2] += n
    for i in range(K):
        out[i].update({k: v for k, v in _group_rows(sums[i]).items() if math.isfinite(v)})
    return out
