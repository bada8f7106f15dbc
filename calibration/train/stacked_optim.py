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

Muon members (``calibration.model.proxy.MuonWithAdamW``): :class:`StackedMuon` on the hidden
matrices, one batched Newton-Schulz for all members, with :class:`StackedAdamW` on the rest
(:func:`stacked_optimizer` picks; see the Muon section below).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

from advisor.errors import AdvisorError

if TYPE_CHECKING:                  # torch is imported where it is used
    import torch

# The RunSpec optimizers a stack reproduces (StackedAdamW; Muon: StackedMuonAdamW); others
# train one at a time.
STACKED_OPTIMIZERS = ("muadamw", "adamw", "muon")


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


# --------------------------------------------------------------------------------------
# Muon for stacked matrices: one batched Newton-Schulz over the member axis
# --------------------------------------------------------------------------------------
#
# torch.optim.Muon (torch 2.9-2.13, single-tensor path), per 2-D parameter, term by term:
#
#     buf <- lerp(buf, g, 1 - momentum)
#     u   <- lerp(g, buf, momentum) if nesterov else buf
#     O   <- NS(u): bfloat16; transposed when rows > cols; X / max(||X||_F, eps); then
#            ns_steps times  G = X X^T;  X <- a X + (b G + c G G) X
#     p   <- p * (1 - lr_t * wd)                       (decoupled decay, unadjusted LR)
#     p   <- p - lr_t * adjust(shape) * O              (adjust: "original" or "match_rms_adamw")
#
# Below the same with every tensor carrying a leading member axis: the matmuls become
# torch.bmm/baddbmm over the K members (one launch for all of them on a GPU).

@dataclass
class MuonMemberHypers:
    """One stacked matrix's Muon settings, one entry per member."""

    lr: list[float]            # group LR (peak) of each member
    weight_decay: list[float]
    momentum: list[float]
    nesterov: list[bool]
    adjust: list[float]        # torch's adjust_lr_fn factor for this shape, per member


def newton_schulz_stacked(u, ns_coefficients, ns_steps: int, eps: float, dtype=None,
                          use_addmm: bool = True):
    """torch.optim.Muon's orthogonalisation of each u[k] (u: (K, A, B)), batched over k.

    ``dtype``: the iteration's dtype; None: torch's own cast (``.bfloat16()``).
    ``use_addmm``: the fused forms b G + c G G and a X + G' X as ``baddbmm`` (torch 2.13
    always; versions with a ``use_addmm`` group setting only when it is True), else the
    separate products and sums of the other versions (equal in exact arithmetic, rounded
    differently).
    """
    import torch

    if u.dim() != 3:
        raise AdvisorError(f"stacked Newton-Schulz needs (K, A, B) tensors, got {tuple(u.shape)}")
    a, b, c = (float(x) for x in ns_coefficients)
    x = u.bfloat16() if dtype is None else u.to(dtype)    # torch's own cast when None
    tall = u.shape[1] > u.shape[2]
    if tall:
        x = x.transpose(1, 2)
    norms = torch.linalg.vector_norm(x, dim=(1, 2), keepdim=True)
    x = x / norms.clamp(min=eps)
    for _ in range(ns_steps):
        gram = torch.bmm(x, x.transpose(1, 2))
        if use_addmm:
            gram_update = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)
            x = torch.baddbmm(x, gram_update, x, beta=a)
        else:
            gram_update = b * gram + c * torch.bmm(gram, gram)
            x = a * x + torch.bmm(gram_update, x)
    return x.transpose(1, 2) if tall else x


class StackedMuon:
    """Muon over stacked matrices ``{name: tensor (K, A, B)}`` with per-member settings.

    ``step(scale)``: every member's group LR times ``scale[k]`` (0 = not moved, neither by
    the update nor by the decay). Newton-Schulz steps, coefficients and eps are shared by the
    stack (AdvisorError otherwise, from :func:`muon_hypers_from_optimizers`).
    """

    def __init__(self, params, hypers, ns_coefficients, ns_steps: int, eps: float,
                 ns_dtype=None, use_addmm: bool = True):
        import torch

        self.params = dict(params)
        if set(self.params) != set(hypers):
            raise AdvisorError("stacked Muon: parameters and hyperparameters differ")
        self.ns_coefficients, self.ns_steps, self.eps = tuple(ns_coefficients), ns_steps, eps
        self.ns_dtype, self.use_addmm = ns_dtype, bool(use_addmm)
        self.state = {}
        for n, p in self.params.items():
            if p.dim() != 3:
                raise AdvisorError(f"stacked Muon: {n} is not a stack of matrices")
            h = hypers[n]

            def col(values, p=p):
                return torch.tensor(values, dtype=torch.float64).to(p.device, p.dtype).view(-1, 1, 1)

            self.state[n] = {"lr": col(h.lr), "wd": col(h.weight_decay),
                             "momentum": col(h.momentum), "adjust": col(h.adjust),
                             "nesterov": torch.tensor(h.nesterov, device=p.device).view(-1, 1, 1),
                             "buf": torch.zeros_like(p)}

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    def reset_members(self, mask) -> None:
        """Zero the momentum of the members where ``mask`` (bool (K,)) is True."""
        for n, p in self.params.items():
            self.state[n]["buf"].mul_((~mask).to(p.dtype).view(-1, 1, 1))

    def step(self, scale) -> None:
        import torch

        with torch.no_grad():
            for n, p in self.params.items():
                g = p.grad
                if g is None:
                    continue
                st = self.state[n]
                mu = st["momentum"]
                buf = st["buf"]
                buf.lerp_(g, 1 - mu)
                u = torch.where(st["nesterov"], g.lerp(buf, mu), buf)
                o = newton_schulz_stacked(u, self.ns_coefficients, self.ns_steps, self.eps,
                                          self.ns_dtype, self.use_addmm)
                lr = st["lr"] * scale.to(p.dtype).view(-1, 1, 1)
                p.mul_(1 - lr * st["wd"])
                p.sub_(o.to(p.dtype) * (lr * st["adjust"]))


def muon_hypers_from_optimizers(member_params, optimizers):
    """Per-matrix, per-member Muon settings read off each member's ``torch.optim.Muon``.

    ``member_params[k]``: {name: parameter} of member k restricted to the Muon matrices;
    ``optimizers[k]``: its torch.optim.Muon. Returns ``(hypers, (ns_coefficients, ns_steps,
    eps, use_addmm))``; those must agree across the stack (``use_addmm``: the group's setting
    where torch has one, else True, torch 2.13's fused forms).
    """
    import torch

    from advisor.rules.optim_rules import torch_muon_adjust

    cls = getattr(torch.optim, "Muon", None)
    names = list(member_params[0])
    out = {n: MuonMemberHypers([], [], [], [], []) for n in names}
    shared = None
    for params, opt in zip(member_params, optimizers):
        if cls is None or not isinstance(opt, cls):
            raise AdvisorError(f"stacked Muon reproduces torch.optim.Muon only, "
                               f"not {type(opt).__name__}")
        if list(params) != names:
            raise AdvisorError("members of a stack must have the same parameter names")
        group_of = {id(p): g for g in opt.param_groups for p in g["params"]}
        for n, p in params.items():
            g = group_of.get(id(p))
            if g is None:
                raise AdvisorError(f"stacked Muon: {n} is in no Muon group of a member")
            s = (tuple(float(x) for x in g["ns_coefficients"]), int(g["ns_steps"]),
                 float(g["eps"]), bool(g.get("use_addmm", True)))
            if shared is None:
                shared = s
            elif s != shared:
                raise AdvisorError(f"members of a stack must share Muon's Newton-Schulz "
                                   f"settings: {s} vs {shared}")
            h = out[n]
            h.lr.append(float(g["lr"]))
            h.weight_decay.append(float(g["weight_decay"]))
            h.momentum.append(float(g["momentum"]))
            h.nesterov.append(bool(g["nesterov"]))
            h.adjust.append(torch_muon_adjust(int(p.shape[0]), int(p.shape[1]),
                                              g.get("adjust_lr_fn") or "original"))
    return out, shared


class StackedMuonAdamW:
    """Muon on the stacked hidden matrices and AdamW on the rest, stepped together: the
    stacked counterpart of calibration.model.proxy.MuonWithAdamW (same ``step(scale)``,
    ``zero_grad``, ``reset_members``). Not compiled (``compiled`` is False)."""

    compiled = False

    def __init__(self, muon: StackedMuon, adamw: StackedAdamW):
        self.muon, self.adamw = muon, adamw

    def zero_grad(self) -> None:
        self.muon.zero_grad()
        self.adamw.zero_grad()

    def reset_members(self, mask) -> None:
        self.muon.reset_members(mask)
        self.adamw.reset_members(mask)

    def step(self, scale) -> None:
        self.muon.step(scale)
        self.adamw.step(scale)


def stacked_optimizer(params, member_params, optimizers, compile: bool = False):
    """The stacked optimizer that reproduces the members' own optimizers.

    ``params``: the stack's {name: (K, ...)} tensors; ``member_params[k]``: member k's
    ``named_parameters`` dict; ``optimizers[k]``: what ``calibration.model.proxy.build_optimizer``
    built for it: all Adam/AdamW (-> :class:`StackedAdamW`) or all Muon + AdamW pairs (objects
    with ``.muon`` and ``.adamw``; -> :class:`StackedMuonAdamW`). Anything else: AdvisorError.
    """
    pairs = [hasattr(o, "muon") and hasattr(o, "adamw") for o in optimizers]
    if not any(pairs):
        hypers, betas = hypers_from_optimizers(member_params, optimizers)
        return StackedAdamW(params, hypers, betas, compile=compile)
    if not all(pairs):
        raise AdvisorError("a stack cannot mix Muon and AdamW members")
    muon_ids = [{id(p) for g in o.muon.param_groups for p in g["params"]} for o in optimizers]
    muon_names = [n for n, p in member_params[0].items() if id(p) in muon_ids[0]]
    for k, mp in enumerate(member_params):
        if [n for n, p in mp.items() if id(p) in muon_ids[k]] != muon_names:
            raise AdvisorError("members of a stack put different parameters on Muon")
    split = [({n: mp[n] for n in muon_names}, {n: p for n, p in mp.items() if n not in muon_names})
             for mp in member_params]
    m_hypers, (coeffs, steps, eps, addmm) = muon_hypers_from_optimizers(
        [s[0] for s in split], [o.muon for o in optimizers])
    a_hypers, betas = hypers_from_optimizers([s[1] for s in split], [o.adamw for o in optimizers])
    muon = StackedMuon({n: params[n] for n in muon_names}, m_hypers, coeffs, steps, eps,
                       use_addmm=addmm)
    adamw = StackedAdamW({n: p for n, p in params.items() if n not in muon_names}, a_hypers,
                         betas, compile=compile)
    return StackedMuonAdamW(muon, adamw)
