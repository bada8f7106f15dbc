"""torch.optim.Muon with its Newton-Schulz iteration in float32: the same optimizer, fast on a CPU.

torch.optim.Muon (torch 2.9-2.13) orthogonalises every update in bfloat16, which this
project's CPU runs 30-100x slower than float32 (measured here, one thread: a 1024 x 256
matrix's five iterations 2.9 s in bfloat16 against 0.09 s in float32), so a Muon model of
width 256 needs ~13 s a step. :class:`Float32Muon` is a ``torch.optim.Muon`` (same
constructor, parameter groups, defaults, state ``momentum_buffer`` and ``adjust_lr_fn``)
whose step runs torch's single-tensor algorithm term by term with the iteration in
``ns_dtype`` (float32 by default; ``None``: torch's own bfloat16 cast), through
``calibration.train.stacked_optim.newton_schulz_stacked`` (tested equal to torch.optim.Muon in
float64). Used by the spectral check's zoo; anything that reads Muon groups sees torch's.
"""
from __future__ import annotations

import torch

from advisor.rules.optim_rules import torch_muon_adjust
from calibration.train.stacked_optim import newton_schulz_stacked


class Float32Muon(torch.optim.Muon):
    """``torch.optim.Muon(params, ...)`` with ``ns_dtype`` for the orthogonalisation."""

    def __init__(self, params, *args, ns_dtype=torch.float32, **kwargs):
        super().__init__(params, *args, **kwargs)
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd, mu = group["lr"], group["weight_decay"], group["momentum"]
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if g.ndim != 2:
                    raise ValueError("Param gradient must be a 2D matrix")
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(g)
                buf = state["momentum_buffer"]
                buf.lerp_(g, 1 - mu)
                u = g.lerp(buf, mu) if group["nesterov"] else buf
                o = newton_schulz_stacked(u[None], group["ns_coefficients"], group["ns_steps"],
                                          group["eps"], self.ns_dtype)[0]
                adjust = torch_muon_adjust(int(p.shape[0]), int(p.shape[1]),
                                           group.get("adjust_lr_fn") or "original")
                p.mul_(1 - lr * wd)
                p.add_(o.to(p.dtype), alpha=-lr * adjust)
        return loss
