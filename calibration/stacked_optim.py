"""AdamW for K models stacked along a leading member axis: one optimizer step for all.

A stack holds K same-shape models as one set of tensors whose first dimension indexes the
member (``weight[k]`` is member k's weight). Every member keeps its own hyperparameters:

* its peak learning rate, weight decay and Adam eps **per parameter**, read off the
  single-model optimizer that the ordinary path builds for that member
  (:func:`hypers_from_optimizers`). Whatever per-group convention that optimizer applies
  (muP's ``lr / width_mult`` for matrix-like parameters as ``mup.MuAdamW`` does, an
  "independent" weight decay multiplied back, CompleteP's eps scaling, no decay on norms)
  therefore carries over exactly. Stacked tensors lose mup's ``infshape`` (see
  shared/notes/mup.md), so reading the multipliers off the per-member template optimizer is
  the only reliable source;
* its LR schedule, applied as a per-member multiplier each step (:meth:`StackedAdamW.step`);
* an active flag: a member whose multiplier is 0 (diverged, or past its own last step) is not
  moved, neither by the Adam update nor by weight decay.

The arithmetic is PyTorch's own AdamW (``torch.optim.Adam`` with
``decoupled_weight_decay=True``, single-tensor path), term by term, so that member k of a stack
follows the run trained alone to float rounding:

    p   <- p * (1 - lr_t * wd)                     (decoupled decay, lr_t = peak * schedule)
    m   <- lerp(m, g, 1 - beta1)
    v   <- beta2 * v + (1 - beta2) * g * g
    p   <- p - (lr_t / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

Coupled (L2) decay, Adam without ``decoupled_weight_decay``, is also reproduced
(``g <- g + wd * p`` before the moments). AMSGrad and ``maximize`` are refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from advisor.errors import AdvisorError


@dataclass
class MemberHypers:
    """One stacked parameter's optimizer settings, one entry per member (float lists)."""

    lr: list[float]            # peak LR of this parameter for each member (group lr)
    weight_decay: list[float]  # the group's weight_decay (multiplied by lr_t if decoupled)
    eps: list[float]
    decoupled: bool            # AdamW-style decay (True) or L2 added to the gradient (False)


def hypers_from_optimizers(member_params: Sequence[Mapping[str, object]],
                           optimizers: Sequence[object]) -> tuple[dict[str, MemberHypers],
                                                                  tuple[float, float]]:
    """Per-parameter, per-member AdamW settings read off each member's own optimizer.

    ``member_params[k]`` maps parameter names to member k's parameters (``named_parameters``);
    ``optimizers[k]`` is the single-model optimizer built for member k (any torch Adam/AdamW,
    e.g. ``mup.MuAdamW``). Returns ``(hypers, (beta1, beta2))``. A parameter that is in no
    group of an optimizer is frozen for that member (LR 0). Betas must agree across the stack
    (they are part of the stacking key); a different value raises AdvisorError.
    """
    import torch

    if len(member_params) != len(optimizers) or not optimizers:
        raise AdvisorError("need one optimizer per member of the stack")
    names = list(member_params[0])
    betas = None
    out = {n: MemberHypers([], [], [], True) for n in names}
    for k, (params, opt) in enumerate(zip(member_params, optimizers)):
        if not isinstance(opt, (torch.optim.Adam, torch.optim.AdamW)):
            raise AdvisorError(f"stacked training reproduces Adam/AdamW only, "
                               f"not {type(opt).__name__}")
        if list(params) != names:
            raise AdvisorError("members of a stack must have the same parameter names")
        group_of = {}
        for g in opt.param_groups:
            if g.get("amsgrad") or g.get("maximize"):
                raise AdvisorError("stacked AdamW does not reproduce amsgrad or maximize")
            for p in g["params"]:
                group_of[id(p)] = g
        for n, p in params.items():
            g = group_of.get(id(p))
            h = out[n]
            if g is None or not p.requires_grad:
                h.lr.append(0.0)
                h.weight_decay.append(0.0)
                h.eps.append(1e-8)
                continue
            b = tuple(float(x) for x in g["betas"])
            if betas is None:
                betas = b
            elif b != betas:
                raise AdvisorError(f"members of a stack must share Adam betas: {b} vs {betas}")
            decoupled = bool(g.get("decoupled_weight_decay",
                                   isinstance(opt, torch.optim.AdamW)))
            if k > 0 and h.lr and decoupled != h.decoupled:
                raise AdvisorError("members of a stack mix coupled and decoupled weight decay")
            h.decoupled = decoupled
            h.lr.append(float(g["lr"]))
            h.weight_decay.append(float(g["weight_decay"]))
            h.eps.append(float(g["eps"]))
    return out, (betas or (0.9, 0.999))


def adam_update(params, grads, exp_avgs, exp_avg_sqs, settings, scale, bc1, bc2_sqrt,
                beta1: float, beta2: float) -> None:
    """One Adam(W) update of stacked tensors, in place (see the module docstring).

    ``settings[i]``: (peak LR (K,1..), weight decay (K,1..), eps (K,1..) or a float,
    decoupled, any decay); ``scale``: (K,) schedule multipliers; ``bc1`` and ``bc2_sqrt``: the
    bias corrections 1 - beta1^t and sqrt(1 - beta2^t), floats or 0-d tensors (tensors when
    compiled, so that a new step does not recompile).
    """
    for p, g, m, v, (lr0, wd, eps, decoupled, any_wd) in zip(params, grads, exp_avgs,
                                                               exp_avg_sqs, settings):
        lr = lr0 * scale.view(lr0.shape)
        if any_wd:
            if decoupled:
                p.mul_(1 - lr * wd)
            else:
                g = g + wd * p
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (v.sqrt() / bc2_sqrt).add_(eps)
        p.sub_(m / denom * (lr / bc1))


class StackedAdamW:
    """Adam(W) over stacked parameters ``{name: tensor (K, ...)}`` with per-member settings.

    ``step(scale)`` multiplies every member's peak LR by ``scale[k]`` (its schedule value at
    this step, 0 for a stopped member) and applies one Adam(W) update to all members at once.
    Gradients are read from ``param.grad``. With ``compile=True`` the update is one
    ``torch.compile``d function (inductor fuses the per-parameter loop into a few kernels;
    worth it on a GPU, where the eager loop is ~8 kernel launches per parameter).
    """

    def __init__(self, params: Mapping[str, "torch.Tensor"], hypers: Mapping[str, MemberHypers],
                 betas: tuple[float, float], compile: bool = False):
        import torch

        self.params = dict(params)
        if set(self.params) != set(hypers):
            raise AdvisorError("stacked optimizer: parameters and hyperparameters differ")
        first = next(iter(self.params.values()))
        self.K = first.shape[0]
        self.device, self.dtype = first.device, first.dtype
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        self.t = 0
        self.state = {}
        for n, p in self.params.items():
            h = hypers[n]
            if len(h.lr) != p.shape[0]:
                raise AdvisorError(f"{n}: {len(h.lr)} settings for {p.shape[0]} members")
            shape = (p.shape[0],) + (1,) * (p.dim() - 1)

            def col(values, p=p, shape=shape):
                return torch.tensor(values, dtype=torch.float64).to(p.device, p.dtype).view(shape)

            eps = h.eps[0] if len(set(h.eps)) == 1 else col(h.eps)
            self.state[n] = {
                "settings": (col(h.lr), col(h.weight_decay), eps, h.decoupled,
                             any(w != 0 for w in h.weight_decay)),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
            }
        self._update = adam_update
        self.compiled = bool(compile)
        if self.compiled:
            self._update = torch.compile(adam_update)

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    def reset_members(self, mask) -> None:
        """Zero the Adam moments of the members where ``mask`` (bool tensor (K,)) is True."""
        for n, p in self.params.items():
            keep = (~mask).to(p.dtype).view((self.K,) + (1,) * (p.dim() - 1))
            self.state[n]["exp_avg"].mul_(keep)
            self.state[n]["exp_avg_sq"].mul_(keep)

    def step(self, scale) -> None:
        """One Adam(W) step; ``scale`` is a tensor (K,) of schedule multipliers (0 = frozen)."""
        import torch

        self.t += 1
        b1, b2 = self.beta1, self.beta2
        bc1 = 1 - b1 ** self.t
        bc2_sqrt = (1 - b2 ** self.t) ** 0.5
        if self.compiled:
            bc1 = torch.tensor(bc1, dtype=self.dtype, device=self.device)
            bc2_sqrt = torch.tensor(bc2_sqrt, dtype=self.dtype, device=self.device)
        names = [n for n, p in self.params.items() if p.grad is not None]
        with torch.no_grad():
            self._update([self.params[n] for n in names], [self.params[n].grad for n in names],
                         [self.state[n]["exp_avg"] for n in names],
                         [self.state[n]["exp_avg_sq"] for n in names],
                         [self.state[n]["settings"] for n in names],
                         scale.to(self.dtype), bc1, bc2_sqrt, b1, b2)
