"""Sharpness: the top eigenvalue of the loss Hessian on a fixed batch, plain and as Adam sees it.

Definitions and thresholds (see shared/notes/spectral.md):

- sharpness = lambda_max(H), H the Hessian of the training loss on one fixed batch. Full-batch
  gradient descent with step size lr is stable while lr * lambda_max < 2, and sharpness rises
  to about 2/lr and hovers there ("edge of stability", Cohen et al. 2021).
- Adam's preconditioned sharpness = lambda_max(P^-1 H) with P = diag(sqrt(v_hat) + eps); it
  hovers near (2 + 2 beta1) / ((1 - beta1) lr), i.e. 38/lr for beta1 = 0.9 (Cohen et al. 2022,
  "Adaptive Gradient Methods at the Edge of Stability"). With per-group learning rates
  (muP's MuAdamW) we fold each parameter's LR into the preconditioner and compare
  lambda_max(diag(lr / (sqrt(v_hat) + eps)) H) with the dimensionless 38.

Hessian-vector products (HVPs), three ways, all tested against each other and against a full
Hessian on a model small enough to form it:

- ``double_backward``: grad of (grad . v); the first gradient's graph is built once and reused,
  so each further HVP is one backward through it.
- ``jvp``: forward-over-reverse, ``torch.func.jvp`` of the gradient (one forward-mode pass
  through forward + backward per HVP).
- ``finite_difference``: (g(w + h v) - g(w - h v)) / 2h, two forward-backwards; works with any
  attention kernel.

Double backward and forward-mode AD are not implemented for the fused attention kernels
(seen on an H100 with the memory-efficient kernel, shared/notes/spectral.md), so the autodiff
methods run the model under ``sdpa_kernel(SDPBackend.MATH)``.

The loss function must be deterministic (no dropout): ``loss_fn()`` evaluates the model's
loss on the fixed batch with the parameters as they are.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from advisor.errors import AdvisorError

METHODS = ("double_backward", "jvp", "finite_difference")


def math_attention():
    """Context manager selecting PyTorch's math attention kernel (differentiable twice)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # older torch: nothing to select
        return contextlib.nullcontext()
    return sdpa_kernel([SDPBackend.MATH])


def flatten(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vec: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    out, i = [], 0
    for t in like:
        out.append(vec[i:i + t.numel()].view_as(t))
        i += t.numel()
    return out


class HVP:
    """v -> H v for the Hessian of ``loss_fn()`` with respect to ``params`` (flat vectors).

    ``method``: one of :data:`METHODS`. ``fd_step``: relative step of the finite difference,
    h = fd_step * max(||w||, 1) / ||v|| (default: see below).

    An HVP object belongs to one set of parameter values: ``double_backward`` caches the
    gradient's graph, which an optimizer step (or another object's finite difference, which
    moves the parameters and restores them in place) invalidates; torch then raises.
    """

    def __init__(self, loss_fn: Callable[[], torch.Tensor], params: Sequence[torch.nn.Parameter],
                 method: str = "double_backward", fd_step: float | None = None):
        if method not in METHODS:
            raise AdvisorError(f"unknown HVP method {method!r} (known: {', '.join(METHODS)})")
        self.loss_fn, self.params, self.method = loss_fn, list(params), method
        if not self.params:
            raise AdvisorError("no parameters to differentiate")
        self.dim = sum(p.numel() for p in self.params)
        dtype = self.params[0].dtype
        eps = float(torch.finfo(dtype).eps)
        # Relative step: eps^(1/3) in float64; in float32 the cube-root rule (5e-3) truncates
        # badly along sharp directions, and 1e-4 was the best single value measured here
        # (relative HVP error ~5e-4 along the top eigenvector of a width-64 GPT).
        self.fd_step = fd_step if fd_step is not None else (eps ** (1 / 3) if eps < 1e-10 else 1e-4)
        self._grads = None
        self.calls = 0

    # -- the three products ------------------------------------------------------------
    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return getattr(self, "_" + self.method)(v)

    def _double_backward(self, v):
        if self._grads is None:
            with math_attention():
                loss = self.loss_fn()
            self._grads = torch.autograd.grad(loss, self.params, create_graph=True)
        hv = torch.autograd.grad(self._grads, self.params, grad_outputs=unflatten(v, self.params),
                                 retain_graph=True)
        return flatten(hv).detach()

    def _jvp(self, v):
        from torch.func import grad, jvp

        model_params = {id(p): p for p in self.params}
        names = [n for n, p in self._named() if id(p) in model_params]
        module = self._module()

        def loss_of(ps):
            with math_attention(), frozen_width_mults(module):
                return self.loss_fn_functional(module, dict(zip(names, ps)))

        primals = tuple(p.detach() for p in self.params)
        tangents = tuple(unflatten(v, self.params))
        _, hv = jvp(grad(loss_of), (primals,), (tangents,))
        return flatten(hv).detach()

    @torch.no_grad()
    def _finite_difference(self, v):
        w0 = [p.detach().clone() for p in self.params]
        wnorm = float(torch.sqrt(sum((p.double() ** 2).sum() for p in w0)))
        vnorm = float(v.double().norm())
        if vnorm == 0:
            return torch.zeros_like(v)
        h = self.fd_step * max(wnorm, 1.0) / vnorm
        vs = unflatten(v, self.params)
        grads = []
        for sign in (1.0, -1.0):
            for p, p0, dv in zip(self.params, w0, vs):
                p.copy_(p0 + sign * h * dv)
            with torch.enable_grad():
                loss = self.loss_fn()
                grads.append(flatten(torch.autograd.grad(loss, self.params)))
        for p, p0 in zip(self.params, w0):
            p.copy_(p0)
        return (grads[0] - grads[1]) / (2 * h)

    # -- forward-over-reverse needs the module and names ---------------------------------
    def bind_module(self, module: torch.nn.Module,
                    functional_loss: Callable[[torch.nn.Module, dict], torch.Tensor]):
        """For ``method="jvp"``: the module owning ``params`` and a loss that takes
        (module, {name: tensor}) and evaluates with those parameters (torch.func.functional_call)."""
        self._mod = module
        self.loss_fn_functional = functional_loss
        return self

    def _module(self):
        if not hasattr(self, "_mod"):
            raise AdvisorError("the jvp method needs bind_module(model, functional_loss)")
        return self._mod

    def _named(self):
        return list(self._module().named_parameters())


@contextlib.contextmanager
def frozen_width_mults(module: torch.nn.Module):
    """Freeze ``width_mult()`` of mup's readouts while parameters are substituted.

    ``mup.MuReadout.width_mult`` reads ``self.weight.infshape``, an attribute that the
    tensors substituted by ``torch.func.functional_call`` do not carry; the value is a
    constant of the model, so it is computed once here and served from the instance."""
    patched = []
    for m in module.modules():
        wm = getattr(m, "width_mult", None)
        if callable(wm) and hasattr(getattr(m, "weight", None), "infshape"):
            value = wm()
            m.width_mult = (lambda v=value: v)
            patched.append(m)
    try:
        yield
    finally:
        for m in patched:
            del m.width_mult


def model_hvp(model: torch.nn.Module, loss_of_logits: Callable, batch, method="double_backward",
              params: Sequence[torch.nn.Parameter] | None = None, **kw) -> HVP:
    """HVP of ``loss_of_logits(model(inputs), targets)`` on a fixed ``batch = (inputs, targets)``.

    Handles the three methods uniformly (``jvp`` goes through ``torch.func.functional_call``).
    ``params``: which parameters (default: all that require grad).
    """
    inputs, targets = batch
    params = list(params) if params is not None else [p for p in model.parameters() if p.requires_grad]

    def logits_of(out):
        return out.logits if hasattr(out, "logits") else out

    def loss_fn():
        return loss_of_logits(logits_of(model(inputs)), targets)

    def functional_loss(module, pdict):
        from torch.func import functional_call

        return loss_of_logits(logits_of(functional_call(module, pdict, (inputs,))), targets)

    hvp = HVP(loss_fn, params, method=method, **kw)
    if method == "jvp":
        hvp.bind_module(model, functional_loss)
    return hvp


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats per token)."""
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                             targets.reshape(-1))


# --------------------------------------------------------------------------------------
# Top eigenvalue from products
# --------------------------------------------------------------------------------------

@dataclass
class Eigen:
    """Top eigenvalue of a symmetric operator. ``residual``: ||A y - theta y|| for the unit
    Ritz vector y (an eigenvalue lies within it of ``value``); ``products``: operator calls."""

    value: float
    vector: torch.Tensor
    residual: float
    products: int
    converged: bool


def lanczos_top(op: Callable[[torch.Tensor], torch.Tensor], dim: int, tol: float = 1e-3,
                max_iter: int = 100, v0: torch.Tensor | None = None, dtype=torch.float32,
                device="cpu", seed: int = 0) -> Eigen:
    """Largest (algebraic) eigenvalue of a symmetric operator by Lanczos with full
    reorthogonalisation. Stops when the Ritz residual is below ``tol * |theta|``."""
    from scipy.linalg import eigh_tridiagonal

    g = torch.Generator(device="cpu").manual_seed(seed)
    q = (v0.detach().to(dtype=dtype, device=device).clone() if v0 is not None
         else torch.randn(dim, generator=g, dtype=dtype).to(device))
    q /= q.norm()
    Q = [q]
    alphas, betas = [], []
    theta, y, res = 0.0, None, math.inf
    for j in range(min(max_iter, dim)):
        w = op(Q[-1]).to(dtype)
        a = float(torch.dot(w, Q[-1]))
        alphas.append(a)
        Qm = torch.stack(Q)
        for _ in range(2):
            w = w - Qm.T @ (Qm @ w)
        b = float(w.norm())
        evals, evecs = eigh_tridiagonal(np.array(alphas), np.array(betas)) if j else \
            (np.array(alphas), np.ones((1, 1)))
        theta = float(evals[-1])
        s = evecs[:, -1]
        res = abs(b * s[-1])
        if res <= tol * max(abs(theta), 1e-30) or b <= 1e-10 * max(abs(theta), 1e-30):
            y = Qm.T @ torch.as_tensor(s, dtype=dtype, device=device)
            return Eigen(theta, y / y.norm(), res, j + 1, True)
        betas.append(b)
        Q.append(w / b)
    Qm = torch.stack(Q[:len(alphas)])
    y = Qm.T @ torch.as_tensor(s, dtype=dtype, device=device)
    return Eigen(theta, y / y.norm(), res, len(alphas), False)


def power_top(op: Callable[[torch.Tensor], torch.Tensor], dim: int, tol: float = 1e-3,
              max_iter: int = 200, v0: torch.Tensor | None = None, dtype=torch.float32,
              device="cpu", seed: int = 0) -> Eigen:
    """Largest-*magnitude* eigenvalue by power iteration (what PyHessian reports). Stops
    when the Rayleigh quotient changes by less than ``tol`` (relative) between iterations."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    v = (v0.detach().to(dtype=dtype, device=device).clone() if v0 is not None
         else torch.randn(dim, generator=g, dtype=dtype).to(device))
    v /= v.norm()
    prev = None
    for i in range(max_iter):
        w = op(v).to(dtype)
        lam = float(torch.dot(v, w))
        res = float((w - lam * v).norm())
        if prev is not None and abs(lam - prev) <= tol * abs(lam):
            return Eigen(lam, v, res, i + 1, True)
        prev = lam
        n = w.norm()
        if n == 0:
            return Eigen(0.0, v, 0.0, i + 1, True)
        v = w / n
    return Eigen(lam, v, res, max_iter, False)


def top_eigenvalue(hvp: HVP, algorithm: str = "lanczos", scale: torch.Tensor | None = None,
                   **kw) -> Eigen:
    """Top eigenvalue of H, or of S^1/2 H S^1/2 (same eigenvalues as S H) for a positive
    diagonal ``scale`` S (a flat vector)."""
    p0 = hvp.params[0]
    if scale is None:
        op = hvp
    else:
        root = scale.to(p0.dtype).sqrt()
        op = lambda v: root * hvp(root * v)  # noqa: E731
    fn = {"lanczos": lanczos_top, "power": power_top}.get(algorithm)
    if fn is None:
        raise AdvisorError(f"unknown eigen algorithm {algorithm!r} (lanczos or power)")
    return fn(op, hvp.dim, dtype=p0.dtype, device=p0.device, **kw)


# --------------------------------------------------------------------------------------
# Adam's preconditioner and the thresholds
# --------------------------------------------------------------------------------------

def adam_threshold(beta1: float) -> float:
    """Adam's edge-of-stability level for lambda_max(lr * P^-1 H): (2 + 2 beta1) / (1 - beta1)
    (Cohen et al. 2022); 38 for beta1 = 0.9."""
    return (2 + 2 * beta1) / (1 - beta1)


def _optimizer_state(optimizer) -> dict:
    """The per-parameter state of ``optimizer``, or of each optimizer it steps together
    (``.optimizers``, as calibration.model.proxy.MuonWithAdamW has), merged."""
    parts = getattr(optimizer, "optimizers", None)
    if parts is None:
        return optimizer.state
    merged: dict = {}
    for o in parts:
        merged.update(o.state)
    return merged


def _is_adam_group(group: dict) -> bool:
    """An Adam-family group (has ``betas``); Muon's groups (torch.optim.Muon) have none."""
    return "betas" in group


def adam_step_scale(optimizer: torch.optim.Optimizer, params: Sequence[torch.nn.Parameter],
                    skip_other: bool = False):
    """Flat lr / (sqrt(v_hat) + eps) per parameter entry, from an Adam/AdamW state.

    ``skip_other``: parameters in groups that are not Adam's (Muon's, which have no diagonal
    preconditioner) get 0, so the preconditioned Hessian is the one of the Adam-stepped
    parameters only; otherwise such a parameter is an AdvisorError. Raises AdvisorError
    before the first step (no second moments yet)."""
    by_id = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            by_id[id(p)] = group
    states = _optimizer_state(optimizer)
    parts = []
    for p in params:
        group = by_id.get(id(p))
        if skip_other and group is not None and not _is_adam_group(group):
            parts.append(torch.zeros(p.numel(), dtype=p.dtype, device=p.device))
            continue
        state = states.get(p, {})
        if group is None or not _is_adam_group(group) or "exp_avg_sq" not in state:
            raise AdvisorError("Adam preconditioner needs an Adam-family optimizer that has "
                               "taken at least one step on every parameter")
        beta2 = group["betas"][1]
        step = float(state["step"])
        v_hat = state["exp_avg_sq"] / (1 - beta2 ** step)
        parts.append((group["lr"] / (v_hat.sqrt() + group["eps"])).reshape(-1))
    return torch.cat(parts).to(params[0].dtype)


def sharpness_report(model, batch, optimizer=None, loss_of_logits=lm_loss, method="double_backward",
                     tol: float = 1e-3, max_iter: int = 100) -> dict:
    """Diagnostics dict: ``sharpness`` (lambda_max(H)), ``gd_stability`` (lambda_max of
    diag(lr) H over 2: above 1, gradient descent at these LRs is unstable on this batch), and
    with an Adam optimizer ``adam_sharpness`` (lambda_max(diag(lr/(sqrt(v_hat)+eps)) H)) and
    ``adam_stability`` (that over (2 + 2 beta1) / (1 - beta1)). With Muon and AdamW stepped
    together (torch.optim.Muon groups have no ``betas``), the Adam figures are over the
    AdamW-stepped parameters only (the others' entries of the preconditioner are 0), and
    ``adam_fraction`` says which fraction of the parameter entries that is; with no Adam
    group at all they are left out. Plain floats."""
    hvp = model_hvp(model, loss_of_logits, batch, method=method)
    out = {"sharpness": top_eigenvalue(hvp, tol=tol, max_iter=max_iter).value}
    if optimizer is not None:
        lrs = []
        by_id = {id(p): g for g in optimizer.param_groups for p in g["params"]}
        for p in hvp.params:
            lrs.append(torch.full((p.numel(),), by_id[id(p)]["lr"], dtype=p.dtype, device=p.device))
        lr_flat = torch.cat(lrs)
        out["gd_stability"] = top_eigenvalue(hvp, scale=lr_flat, tol=tol,
                                             max_iter=max_iter).value / 2
        adam_groups = [g for g in optimizer.param_groups if _is_adam_group(g)]
        if not adam_groups:
            return out
        mixed = len(adam_groups) < len(optimizer.param_groups)
        try:
            scale = adam_step_scale(optimizer, hvp.params, skip_other=mixed)
        except AdvisorError:
            return out
        beta1 = adam_groups[0]["betas"][0]
        lam = top_eigenvalue(hvp, scale=scale, tol=tol, max_iter=max_iter).value
        out["adam_sharpness"] = lam
        out["adam_stability"] = lam / adam_threshold(beta1)
        if mixed:
            on_adam = sum(p.numel() for p in hvp.params if _is_adam_group(by_id[id(p)]))
            out["adam_fraction"] = on_adam / hvp.dim
    return out


def full_hessian(hvp: HVP) -> torch.Tensor:
    """The dense Hessian, column by column from ``hvp`` (small models only: dim products),
    symmetrised. Its eigenvalues by LAPACK check the iterative solvers."""
    dim, p0 = hvp.dim, hvp.params[0]
    if dim > 20000:
        raise AdvisorError(f"a dense Hessian of {dim} parameters is too large")
    if hvp.method == "double_backward":     # all columns in one vectorised backward
        hvp(torch.zeros(dim, dtype=p0.dtype, device=p0.device))   # builds the graph
        eye = torch.eye(dim, dtype=p0.dtype, device=p0.device)
        outs, i = [], 0
        for p in hvp.params:
            outs.append(eye[:, i:i + p.numel()].reshape(dim, *p.shape))
            i += p.numel()
        cols = torch.autograd.grad(hvp._grads, hvp.params, grad_outputs=outs,
                                   retain_graph=True, is_grads_batched=True)
        H = torch.cat([c.reshape(dim, -1) for c in cols], dim=1).detach()
        return 0.5 * (H + H.T)
    cols = []
    for i in range(dim):
        e = torch.zeros(dim, dtype=p0.dtype, device=p0.device)
        e[i] = 1
        cols.append(hvp(e))
    H = torch.stack(cols, dim=1)
    return 0.5 * (H + H.T)
