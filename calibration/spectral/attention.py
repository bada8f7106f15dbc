"""Attention logits of any implementation, recorded while a model runs (one forward pass).

A ``torch.overrides.TorchFunctionMode`` sees every torch call the model's Python code makes,
so attention is found however it is written:

- ``F.scaled_dot_product_attention(q, k, v, scale=s)`` (s = 1/sqrt(d_head) when None);
- explicit ``softmax((q @ k^T) * s)`` with ``matmul``/``@``/``bmm``/``baddbmm``/``einsum``,
  a mask added or filled in, the scale applied to the product, to q, to k or to both
  (``q = q * scaling`` before the product, as ``nn.MultiheadAttention`` and the mup
  package's Transformer example do), as a Python number or a 0-d tensor;
- ``nn.MultiheadAttention`` (``F.multi_head_attention_forward``, whose insides a function mode
  does not see: its q and k are recomputed from its projection weights, with its fixed scale
  1/sqrt(d_head));
- Hugging Face attention modules (eager: matmul then ``nn.functional.softmax``; sdpa: the
  first case).

For each attention call it records the logits (the softmax input, or s q k^T for SDPA) and the
total scale s_total that multiplies the raw product of q and k as they were produced (by a
projection, a norm or a rotation): every scalar multiplication or division on the way from q,
k or the product to the softmax is followed through shape operations (view, reshape,
transpose, contiguous, dtype casts) and masking. ``attn_scale`` = s_total * d_head is then
exact: attn_mult under muP's attn_mult/d_head (constant in width), sqrt(d_head) under
1/sqrt(d_head) (slope +0.5 when the head size grows with width).

Units: logits are the softmax input (nats of preference); d_head in channels.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

_SCALAR_MUL = {"mul", "__mul__", "__rmul__", "mul_", "__imul__", "multiply"}
_SCALAR_DIV = {"div", "__truediv__", "div_", "__itruediv__", "true_divide", "divide"}
_SHAPE = {"view", "reshape", "transpose", "permute", "contiguous", "flatten", "unflatten",
          "float", "to", "type_as", "t", "clone", "view_as", "reshape_as", "half", "bfloat16",
          "double", "swapaxes", "movedim", "__get__", "expand", "repeat_interleave"}
_MASK = {"masked_fill", "masked_fill_", "add", "__add__", "__radd__", "add_", "__iadd__",
         "where", "__sub__", "sub", "sub_"}
_PRODUCT = {"matmul", "__matmul__", "bmm", "baddbmm", "einsum"}
_SOFTMAX = {"softmax", "_softmax"}


def _name(func) -> str:
    return getattr(func, "__name__", "")


def _scalar(x) -> float | None:
    """A Python number or a 0-d / one-element tensor as a float, else None."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    if isinstance(x, torch.Tensor) and x.numel() == 1 and x.ndim <= 1:
        return float(x.detach())
    return None


class _Lineage:
    """What a tensor is, relative to where it was produced: a scalar ``factor`` applied to a
    ``root`` (q, k as produced) or to a q.k ``product`` (with its d_head and q/k factors)."""

    __slots__ = ("tensor", "factor", "product")

    def __init__(self, tensor, factor=1.0, product=None):
        self.tensor, self.factor, self.product = tensor, factor, product


class AttentionRecorder(TorchFunctionMode):
    """Record attention logits and their total scale during a forward pass (module doc).

    ``calls``: one dict per attention call, in order: {"logits": (..., Tq, Tk) float tensor,
    "scale": s_total, "d_head": int, "kind": "sdpa" | "softmax" | "multihead"}."""

    def __init__(self):
        super().__init__()
        self.calls: list[dict] = []
        self._lin: dict[int, _Lineage] = {}

    # -- lineage ---------------------------------------------------------------------
    def _get(self, t) -> _Lineage | None:
        if not isinstance(t, torch.Tensor):
            return None
        e = self._lin.get(id(t))
        return e if e is not None and e.tensor is t else None

    def _factor(self, t) -> float:
        e = self._get(t)
        return e.factor if e is not None and e.product is None else 1.0

    def _put(self, out, factor, product=None):
        if isinstance(out, torch.Tensor):
            self._lin[id(out)] = _Lineage(out, factor, product)

    # -- dispatch --------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _name(func)
        if func is F.multi_head_attention_forward:
            self._multihead(args, kwargs)
            return func(*args, **kwargs)
        out = func(*args, **kwargs)
        try:
            self._follow(func, name, args, kwargs, out)
        except Exception:              # never let bookkeeping break the user's model
            pass
        return out

    def _follow(self, func, name, args, kwargs, out):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if name in _SOFTMAX and tensors:
            e = self._get(args[0])
            if e is not None and e.product is not None:
                d, qk_factor = e.product
                self._record(args[0], e.factor * qk_factor, d, "softmax")
            return
        if func is F.scaled_dot_product_attention or name == "scaled_dot_product_attention":
            self._sdpa(args, kwargs)
            return
        if name in _PRODUCT:
            self._product(name, args, kwargs, out)
            return
        if not isinstance(out, torch.Tensor) or not tensors:
            return
        first = self._get(tensors[0]) or (self._get(tensors[1]) if len(tensors) > 1 else None)
        if name in _SCALAR_MUL or name in _SCALAR_DIV:
            scal = [_scalar(a) for a in args if not (isinstance(a, torch.Tensor) and a.numel() > 1)]
            big = [a for a in args if isinstance(a, torch.Tensor) and a.numel() > 1]
            if len(big) == 1 and len(scal) == 1 and scal[0] is not None and scal[0] != 0:
                s = scal[0]
                if name in _SCALAR_DIV and args[0] is big[0]:
                    s = 1.0 / s
                e = self._get(big[0])
                base = e.factor if e is not None else 1.0
                self._put(out, base * s, e.product if e is not None else None)
            return
        if first is None:
            return
        if name in _SHAPE and len(tensors) <= 2 and out.numel() >= tensors[0].numel():
            self._put(out, first.factor, first.product)
        elif name in _MASK and first.product is not None:
            self._put(out, first.factor, first.product)

    def _product(self, name, args, kwargs, out):
        if not isinstance(out, torch.Tensor) or out.ndim < 2:
            return
        alpha = 1.0
        if name == "einsum":
            ops = [a for a in args[1:] if isinstance(a, torch.Tensor)]
            if len(ops) == 1 and isinstance(args[1], (list, tuple)):
                ops = list(args[1])
        elif name == "baddbmm":
            ops = [args[1], args[2]] if len(args) >= 3 else []
            alpha = float(kwargs.get("alpha", 1.0))
        else:
            ops = [a for a in args if isinstance(a, torch.Tensor)]
        if len(ops) != 2:
            return
        a, b = ops
        d = int(a.shape[-1])
        self._put(out, 1.0, (d, alpha * self._factor(a) * self._factor(b)))

    def _record(self, logits, scale, d_head, kind):
        x = logits.detach().float()
        x = torch.where(torch.isfinite(x) & (x > -1e4), x, torch.zeros((), dtype=x.dtype))
        self.calls.append({"logits": x.cpu(), "scale": float(scale), "d_head": int(d_head),
                           "kind": kind})

    def _sdpa(self, args, kwargs):
        q, k = args[0], args[1]
        scale = kwargs.get("scale")
        if scale is None and len(args) >= 7:
            scale = args[6]
        if scale is None:
            scale = 1.0 / math.sqrt(q.shape[-1])
        kk = k
        if kk.ndim >= 3 and q.ndim >= 3 and kk.shape[-3] != q.shape[-3]:     # grouped-query
            kk = kk.repeat_interleave(q.shape[-3] // kk.shape[-3], dim=-3)
        with torch.no_grad():
            logits = float(scale) * (q.float() @ kk.float().transpose(-2, -1))
        total = float(scale) * self._factor(q) * self._factor(k)
        self._record(logits, total, q.shape[-1], "sdpa")

    def _multihead(self, args, kwargs):
        """nn.MultiheadAttention's q and k from its projection weights (inputs (T, B, E))."""
        names = ["query", "key", "value", "embed_dim_to_check", "num_heads", "in_proj_weight",
                 "in_proj_bias"]
        a = dict(zip(names, args))
        a.update({k: v for k, v in kwargs.items() if k in names})
        query, key, heads = a["query"], a["key"], int(a["num_heads"])
        E = query.shape[-1]
        if kwargs.get("use_separate_proj_weight"):
            wq, wk = kwargs["q_proj_weight"], kwargs["k_proj_weight"]
        else:
            wq, wk = a["in_proj_weight"][:E], a["in_proj_weight"][E:2 * E]
        b = a.get("in_proj_bias")
        bq, bk = (b[:E], b[E:2 * E]) if b is not None else (None, None)
        with torch.no_grad():
            q, k = F.linear(query, wq, bq), F.linear(key, wk, bk)
            d = E // heads

            def split(t):                                    # (T, B, E) -> (B, H, T, d)
                return t.reshape(t.shape[0], t.shape[1] * heads, d).transpose(0, 1).reshape(
                    t.shape[1], heads, t.shape[0], d)
            scale = 1.0 / math.sqrt(d)
            logits = scale * (split(q).float() @ split(k).float().transpose(-2, -1))
        self._record(logits, scale, d, "multihead")


def has_attention(model: torch.nn.Module) -> list[str]:
    """Names of modules or parameters that look like attention (class name with 'attention'
    or 'attn', nn.MultiheadAttention, or a q/k/v projection): used to say so when attention
    exists but no attention call was seen."""
    found = []
    for name, mod in model.named_modules():
        cls = type(mod).__name__.lower()
        if isinstance(mod, torch.nn.MultiheadAttention) or "attention" in cls or "attn" in cls:
            found.append(name or type(mod).__name__)
    if not found:
        for name, _ in model.named_parameters():
            leaf = name.rsplit(".", 2)
            if any(t in name for t in ("in_proj", "qkv", "q_proj", "c_attn", "query")):
                found.append(".".join(leaf[:-1]) or name)
    return sorted(set(found))
