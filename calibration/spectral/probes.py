"""Per-layer statistics of any torch language model, for the width-invariance check.

- Activations: forward hooks on every module that owns a 2-D weight (``nn.Linear``,
  ``nn.Embedding``, mup's ``MuReadout``, Hugging Face's ``Conv1D``) and on the model's output
  (logits), recording the outputs on a fixed probe batch. Activations see every multiplier,
  wherever it is applied.
- Attention logits: :func:`capture_attention` wraps ``torch.nn.functional.
  scaled_dot_product_attention`` and records scale * q k^T (the ``scale`` argument, or
  1/sqrt(d_head) when it is None) at every call, so it works for any model that calls it.
- Weights: the *effective* matrix, i.e. the weight times any multiplier applied outside it
  (``MuReadout`` multiplies its output by output_mult / width_mult()); other modules may
  declare one with a float attribute ``spectral_multiplier``.

Operator norms by layer kind (Yang, Simon & Bernstein 2023; shared/notes/spectral.md), for W
mapping fan_in -> fan_out:

- hidden (both sides grow with width) and readout (output side fixed): the RMS -> RMS norm
  sqrt(fan_in / fan_out) * sigma_max(W);
- input / embedding (input side fixed, one-hot inputs): the l1 -> RMS norm, the largest RMS
  of a column (one token's embedding).
"""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from advisor.errors import AdvisorError


def logits_of(out) -> torch.Tensor:
    """Accept a tensor or an output object with ``.logits`` (Hugging Face)."""
    t = getattr(out, "logits", out)
    if not isinstance(t, torch.Tensor):
        raise AdvisorError(f"the model returned {type(out).__name__}, not logits "
                           "(a tensor or an object with .logits)")
    return t


def rms(t: torch.Tensor) -> float:
    return float(t.detach().double().pow(2).mean().sqrt())


def weight_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Modules that own a 2-D ``weight`` parameter, by qualified name."""
    out = {}
    for name, mod in model.named_modules():
        w = getattr(mod, "weight", None)
        if isinstance(w, nn.Parameter) and w.ndim == 2:
            out[name] = mod
    return out


def output_multiplier(mod: nn.Module) -> float:
    """Multiplier applied to the module's output outside its weight (1 if none known)."""
    if hasattr(mod, "spectral_multiplier"):
        return float(mod.spectral_multiplier)
    wm = getattr(mod, "width_mult", None)
    if callable(wm) and hasattr(mod, "output_mult") and hasattr(mod.weight, "infshape"):
        return float(mod.output_mult) / float(wm())          # mup.MuReadout
    return 1.0


def effective_matrix(mod: nn.Module) -> torch.Tensor:
    """The module's weight as an (fan_out, fan_in) matrix times its output multiplier."""
    w = mod.weight.detach()
    if isinstance(mod, nn.Embedding) or type(mod).__name__ == "Conv1D":
        w = w.T                                              # stored (fan_in, fan_out)
    return w.float() * output_multiplier(mod)


@contextlib.contextmanager
def capture_attention(store: list, meta: list | None = None):
    """Record scale * q k^T of every ``F.scaled_dot_product_attention`` call (in order);
    with ``meta``, also {"scale", "explicit" (scale given), "d_head", "q_rms", "k_rms"}."""
    original = F.scaled_dot_product_attention

    def wrapped(q, k, v, *args, **kwargs):
        scale = kwargs.get("scale")
        if scale is None and len(args) >= 4:
            scale = args[3]
        explicit = scale is not None
        if scale is None:
            scale = 1.0 / math.sqrt(q.shape[-1])
        with torch.no_grad():
            kk = k
            if kk.shape[-3] != q.shape[-3]:                  # grouped-query attention
                kk = kk.repeat_interleave(q.shape[-3] // kk.shape[-3], dim=-3)
            store.append((scale * (q.float() @ kk.float().transpose(-2, -1))).cpu())
            if meta is not None:
                meta.append({"scale": float(scale), "explicit": explicit,
                             "d_head": int(q.shape[-1]), "q_rms": rms(q), "k_rms": rms(kk)})
        return original(q, k, v, *args, **kwargs)

    F.scaled_dot_product_attention = wrapped
    torch.nn.functional.scaled_dot_product_attention = wrapped
    try:
        yield store
    finally:
        F.scaled_dot_product_attention = original
        torch.nn.functional.scaled_dot_product_attention = original


@torch.no_grad()
def record(model: nn.Module, inputs: torch.Tensor) -> dict:
    """Activations (module outputs and logits) and attention logits on ``inputs``."""
    acts, hooks = {}, []
    for name, mod in weight_modules(model).items():
        def hook(m, args, out, name=name):
            if isinstance(out, torch.Tensor):
                acts[name] = out.detach().float().cpu()
        hooks.append(mod.register_forward_hook(hook))
    attn: list = []
    meta: list = []
    try:
        with capture_attention(attn, meta):
            acts["logits"] = logits_of(model(inputs)).detach().float().cpu()
    finally:
        for h in hooks:
            h.remove()
    return {"acts": acts, "attn": {f"attn_logits[{i}]": a for i, a in enumerate(attn)},
            "attn_meta": {f"attn_logits[{i}]": m for i, m in enumerate(meta)}}


def attention_scale_stat(logits: torch.Tensor, meta: dict) -> float | None:
    """The attention scale times d_head, read from behaviour at initialisation:
    rms(scale * q.k) * sqrt(d_head) / (rms(q) rms(k)). For independent random q and k,
    rms(q.k) = sqrt(d_head) rms(q) rms(k), so this is scale * d_head: constant in width under
    muP's attn_mult / d_head, growing as sqrt(d_head) under 1/sqrt(d_head). None where it
    cannot be read: q or k zero at init, or scale passed as exactly 1 (q or k pre-scaled
    inside the model, where this reading would be wrong)."""
    if meta["q_rms"] <= 0 or meta["k_rms"] <= 0 or (meta["explicit"] and meta["scale"] == 1.0):
        return None
    return rms(logits) * math.sqrt(meta["d_head"]) / (meta["q_rms"] * meta["k_rms"])


def snapshot_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Effective (fan_out, fan_in) matrices of every 2-D weight, copied."""
    return {name: effective_matrix(mod).clone() for name, mod in weight_modules(model).items()}


def operator_norms(mats: dict[str, torch.Tensor], kinds: dict[str, str], tol: float = 1e-3,
                   warm: dict | None = None) -> dict[str, float]:
    """Kind-appropriate operator norm of each (fan_out, fan_in) matrix (see module docstring).

    ``kinds``: name -> "hidden" | "readout" | "input". Top singular values come from the
    batched Lanczos solver, all matrices in one call."""
    from calibration.spectral.svd import top_singular_values

    spectral = {n: m for n, m in mats.items() if kinds.get(n, "hidden") != "input"}
    sv = top_singular_values(spectral, tol=tol, warm_start=warm) if spectral else {}
    out = {}
    for name, m in mats.items():
        fan_out, fan_in = m.shape
        if kinds.get(name, "hidden") == "input":
            out[name] = float(m.double().pow(2).mean(dim=0).sqrt().max())   # l1 -> RMS
        else:
            out[name] = math.sqrt(fan_in / fan_out) * sv[name].top         # RMS -> RMS
    return out
