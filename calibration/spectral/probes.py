"""Per-layer statistics of any torch language model, for the width-invariance check.

- Activations: forward hooks on every module that owns a 2-D weight (``nn.Linear``,
  ``nn.Embedding``, mup's ``MuReadout``, Hugging Face's ``Conv1D``) and on the model's output
  (logits), recording the outputs on a fixed probe batch.
- Attention logits: :mod:`calibration.spectral.attention` records the logits and total scale
  of every attention call, however written (SDPA, explicit softmax of q k^T with matmul, bmm
  or einsum, ``nn.MultiheadAttention``, Hugging Face's eager and sdpa paths).
- Weights: every 2-D parameter (:func:`matrices`), so a fused ``in_proj_weight`` has rows.
- The readout is judged from what the model computes (:func:`readout_scales`): its
  multiplier is measured from the model's logits and the hidden state entering it, wherever
  the muP output multiplier sits. A float attribute ``spectral_multiplier`` on a module
  overrides the measurement.

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

from advisor.errors import AdvisorError


def logits_of(out) -> torch.Tensor:
    """The logits in a model's output: a tensor; a tuple or list (its first element, e.g.
    ``(logits, loss)``); a dict or Hugging Face ``ModelOutput`` (its ``logits`` entry, else
    its first tensor value); or any object with ``.logits``."""
    t = out
    if isinstance(t, dict) or hasattr(t, "keys"):
        try:
            t = t["logits"] if "logits" in t.keys() else next(
                v for v in t.values() if isinstance(v, torch.Tensor))
        except (StopIteration, TypeError, KeyError):
            t = out
    elif isinstance(t, (tuple, list)) and t:
        t = t[0]
    t = getattr(t, "logits", t)
    if not isinstance(t, torch.Tensor):
        raise AdvisorError(f"the model returned {type(out).__name__}, not logits (a tensor, a "
                           "tuple whose first element is one, a dict or ModelOutput with "
                           "'logits', or an object with .logits)")
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
    """Multiplier applied to the module's output outside its weight (1 if none known): a
    float attribute ``spectral_multiplier`` (an override: the check otherwise measures a
    readout's multiplier from the logits, :func:`readout_scales`), or mup's ``MuReadout``
    output_mult / width_mult()."""
    if hasattr(mod, "spectral_multiplier"):
        return float(mod.spectral_multiplier)
    wm = getattr(mod, "width_mult", None)
    if callable(wm) and hasattr(mod, "output_mult") and hasattr(mod.weight, "infshape"):
        return float(mod.output_mult) / float(wm())          # mup.MuReadout
    return 1.0


def effective_matrix(mod: nn.Module, declared: bool = True) -> torch.Tensor:
    """The module's weight as an (fan_out, fan_in) matrix, times its declared output
    multiplier unless ``declared`` is False."""
    w = mod.weight.detach()
    if isinstance(mod, nn.Embedding) or type(mod).__name__ == "Conv1D":
        w = w.T                                              # stored (fan_in, fan_out)
    return w.float() * (output_multiplier(mod) if declared else 1.0)


@contextlib.contextmanager
def capture_attention(store: list, meta: list | None = None):
    """Record the attention logits of every attention call (in order; any implementation,
    :mod:`calibration.spectral.attention`); with ``meta``, also {"scale" (the total scale of
    q.k), "d_head", "kind"} per call."""
    from calibration.spectral.attention import AttentionRecorder

    rec = AttentionRecorder()
    try:
        with rec:
            yield store
    finally:
        store.extend(c["logits"] for c in rec.calls)
        if meta is not None:
            meta.extend({k: v for k, v in c.items() if k != "logits"} for c in rec.calls)


@torch.no_grad()
def record(model: nn.Module, inputs: torch.Tensor, call=None) -> dict:
    """Activations (module outputs), the inputs of matrix modules, the logits and the
    attention calls (any implementation) of one forward pass on ``inputs``.

    ``call``: a function inputs -> output standing for ``model`` (an adapter: layout, output
    type); it may set ``call.raw`` to the logits in the model's own layout. Returns {"acts":
    {name: output}, "ins": {name: input}, "logits": (B, T, V), "raw": the model's own logits,
    "attn": {"attn_logits[i]": logits}, "attn_meta": {"attn_logits[i]": {"scale", "d_head",
    "kind"}}}."""
    from calibration.spectral.attention import AttentionRecorder

    acts, ins, hooks = {}, {}, []
    for name, mod in weight_modules(model).items():
        def hook(m, args, out, name=name):
            if isinstance(out, torch.Tensor):
                acts[name] = out.detach().float().cpu()
            if args and isinstance(args[0], torch.Tensor) and args[0].is_floating_point():
                ins[name] = args[0].detach().float().cpu()
        hooks.append(mod.register_forward_hook(hook))
    rec = AttentionRecorder()
    try:
        with rec:
            out = (call or model)(inputs)
    finally:
        for h in hooks:
            h.remove()
    logits = logits_of(out).detach().float().cpu()
    raw = getattr(call, "raw", None)
    raw = logits if raw is None else raw.detach().float().cpu()
    acts["logits"] = logits
    return {"acts": acts, "ins": ins, "logits": logits, "raw": raw,
            "attn": {f"attn_logits[{i}]": c["logits"] for i, c in enumerate(rec.calls)},
            "attn_meta": {f"attn_logits[{i}]": {k: v for k, v in c.items() if k != "logits"}
                          for i, c in enumerate(rec.calls)}}


def attention_scale_stat(meta: dict) -> float | None:
    """The attention scale times d_head: s_total * d_head, where s_total multiplies the raw
    product of q and k as they were produced (:mod:`calibration.spectral.attention`).
    attn_mult under muP's attn_mult / d_head (constant in width), sqrt(d_head) under
    1/sqrt(d_head) (growing when the head size grows). None when it is not positive."""
    v = meta["scale"] * meta["d_head"]
    return v if v > 0 and math.isfinite(v) else None


def _regress(y: torch.Tensor, x: torch.Tensor) -> tuple[float, float] | None:
    """Least-squares c in y ~ c x + b (b one value per output channel) and the correlation
    of y with x: how much ``y`` is a multiple of ``x``. None when x does not vary."""
    y = y.double().reshape(-1, y.shape[-1])
    x = x.double().reshape(-1, x.shape[-1])
    y, x = y - y.mean(0), x - x.mean(0)
    den, yy = float((x * x).sum()), float((y * y).sum())
    if not den > 0 or not yy > 0:
        return None
    xy = float((x * y).sum())
    return xy / den, xy / math.sqrt(den * yy)


def readout_scales(model: nn.Module, rec: dict, min_corr: float = 0.95
                   ) -> dict[str, tuple[float, float]]:
    """Per matrix module whose output the model's logits are a multiple of (same shape,
    correlation >= ``min_corr`` after removing a per-channel offset), (c_act, c_weight): the
    multiplier between its output and the logits, and the multiplier from a Theta(1)-coordinate
    hidden state to the logits per unit of its weight, i.e. the logits' regression on
    F.linear(input, W) times rms(input). Any placement of a muP output multiplier is seen:
    inside the module (MuReadout), on the hidden state before it (``lm_head(x / m)``:
    rms(input) falls as 1/m) or on its output (``lm_head(x) / m``). The check applies them
    to layers whose kind is readout."""
    out = {}
    for name, mod in weight_modules(model).items():
        a, x = rec["acts"].get(name), rec["ins"].get(name)
        if a is None or x is None or isinstance(mod, nn.Embedding) or a.shape != rec["raw"].shape:
            continue
        w = effective_matrix(mod, declared=False).float()
        if x.shape[-1] != w.shape[1]:
            continue
        act, lin = _regress(rec["raw"], a), _regress(rec["raw"], x @ w.T)
        if act is None or lin is None or act[1] < min_corr or lin[1] < min_corr or not lin[0] > 0:
            continue
        out[name] = (act[0], lin[0] * rms(x))
    return out


def matrices(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every 2-D parameter as a (fan_out, fan_in) matrix without multipliers, copied: the
    weight of each module that owns one (named by the module; ``nn.Embedding`` and HF
    ``Conv1D`` transposed) and every other 2-D parameter (named by the parameter, read as used
    by ``F.linear``: e.g. a fused ``in_proj_weight``)."""
    out, seen = {}, set()
    for name, mod in weight_modules(model).items():
        out[name] = effective_matrix(mod, declared=False).clone()
        seen.add(id(mod.weight))
    for name, p in model.named_parameters():
        if p.ndim == 2 and id(p) not in seen:
            out[name] = p.detach().float().clone()
            seen.add(id(p))
    return out


def snapshot_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Effective (fan_out, fan_in) matrices of every module's 2-D weight (declared
    multipliers applied), copied: what the training callback logs."""
    return {name: effective_matrix(mod).clone() for name, mod in weight_modules(model).items()}


def declared_multipliers(model: nn.Module) -> dict[str, float]:
    """{module name: multiplier} for modules that declare one (``spectral_multiplier``, or
    mup's ``MuReadout`` output_mult / width_mult)."""
    return {n: output_multiplier(m) for n, m in weight_modules(model).items()
            if output_multiplier(m) != 1.0}


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
