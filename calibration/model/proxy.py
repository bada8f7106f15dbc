"""The proxy model: a small decoder-only transformer, in muP or standard parameterisation.

One file, meant to be read top to bottom. The architecture is what people train today
(Llama-style): token embedding -> depth x [RMSNorm -> causal self-attention with rotary
positions (optional QK-norm) -> residual, RMSNorm -> SwiGLU MLP -> residual] -> RMSNorm ->
readout. No biases, except optional q/k/v biases (``qkv_bias``, as Qwen2); grouped-query
attention with ``kv_group`` query heads per key/value head (GQA).

Two parameterisations share one set of *base constants* (recipes/families/<name>.yaml) and
coincide exactly at the base width d0 (same initialisation, same attention and output
multipliers, same per-parameter learning rates). Away from it, with m = width / d0:

    ===================  ===========================  =================================
    parameter            standard (sp)                muP (mup), Adam
    ===================  ===========================  =================================
    token embedding      std sigma_e, LR eta          std sigma_e, LR eta
    hidden matrices      std sigma_h, LR eta          std sigma_h / sqrt(m_fan_in), LR eta / m
    norm gains           1, LR eta                    1, LR eta
    readout              std sigma_r, LR eta          std sigma_r, LR eta, logits x 1/m (MuReadout)
    attention logits     q.k * 1/sqrt(d_head)         q.k * attn_mult / d_head
    ===================  ===========================  =================================

(Tensor Programs V, Yang et al. 2022, Table 3; the muP column is what ``mup.MuReadout`` and
``mup.MuAdamW`` implement once ``mup.set_base_shapes`` has marked which dimensions grow.)
``attn_mult`` defaults to sqrt(d_head at the base width), so the two scales agree at d0.
Depth scaling (``depth_alpha``; Depth-muP, Yang et al. 2023 and Bordelon et al. 2023, at
alpha = 0.5; CompleteP, Dey et al. 2025, at alpha = 1) multiplies each residual branch by
(depth / base_depth)^-alpha and the LR of every parameter inside the blocks (hidden matrices and
the blocks' norm gains) by (depth / base_depth)^(alpha - 1), their Adam eps by
(depth / base_depth)^-alpha; it is off when ``depth_alpha`` is null or 0. Every multiplier here,
width and depth, comes from ``advisor.rules.optim_rules`` (the recommendation reads the same rules).

Units: widths and head sizes in channels; ``seq_len`` in tokens; LRs are peak LRs of the
base-width model.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from advisor.errors import AdvisorError
from calibration.model.groups import fan_in_multiplier, param_group
from advisor.rules.optim_rules import (MUON_DEFAULTS, check_muon_alpha, check_muon_convention,
                                 check_wd_rule, group_multipliers, independent_torch_wd,
                                 muon_torch_group)
# The configuration is pure data in advisor/ (torch-free); re-exported for the model's users.
from advisor.specs.proxyspec import ProxyConfig, flops_per_token, load_family  # noqa: F401


# --------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def rotary_tables(seq_len: int, d_head: int, theta: float):
    """cos and sin tables of shape (seq_len, d_head / 2) for rotary positions (Su et al. 2021)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, d_head, 2, dtype=torch.float32) / d_head)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rotary(x, cos, sin):
    """Rotate pairs (first half, second half) of the last dimension of x (B, H, T, D)."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos[: x.shape[-2]].to(x.dtype), sin[: x.shape[-2]].to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: ProxyConfig):
        super().__init__()
        self.heads, self.d_head, self.scale = cfg.heads, cfg.d_head, cfg.softmax_scale
        self.kv_heads, self.kv_group = cfg.kv_heads, cfg.kv_group
        self.q = nn.Linear(cfg.width, cfg.width, bias=cfg.qkv_bias)
        self.k = nn.Linear(cfg.width, cfg.kv_width, bias=cfg.qkv_bias)
        self.v = nn.Linear(cfg.width, cfg.kv_width, bias=cfg.qkv_bias)
        self.o = nn.Linear(cfg.width, cfg.width, bias=False)
        self.q_norm = RMSNorm(cfg.d_head, cfg.norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(cfg.d_head, cfg.norm_eps) if cfg.qk_norm else None

    def forward(self, x, cos, sin, probe: bool = False):
        """The attention branch; with ``probe`` also its largest pre-softmax logit."""
        B, T, C = x.shape
        q = self.q(x).view(B, T, self.heads, self.d_head).transpose(1, 2)
        k, v = (lin(x).view(B, T, self.kv_heads, self.d_head).transpose(1, 2)
                for lin in (self.k, self.v))
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if self.kv_group > 1:      # GQA: each key/value head serves kv_group query heads
            k = k.repeat_interleave(self.kv_group, dim=1)
            v = v.repeat_interleave(self.kv_group, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        out = self.o(y.transpose(1, 2).reshape(B, T, C))
        return (out, max_attention_logit(q, k, self.scale)) if probe else out


def max_attention_logit(q, k, scale: float):
    """The largest causal attention logit q.k * scale over batch, heads and positions (a 0-d
    tensor): the quantity whose growth with LR and width Wortsman et al. 2023 (arXiv
    2309.14322, section 3.1.1) tie to attention-entropy collapse. Materialises (B, H, T, T)."""
    T = q.shape[-2]
    logits = (q.float() @ k.float().transpose(-1, -2)) * scale
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    return logits.masked_fill(~causal, float("-inf")).amax()


class SwiGLU(nn.Module):
    def __init__(self, cfg: ProxyConfig):
        super().__init__()
        self.gate = nn.Linear(cfg.width, cfg.ffn_hidden, bias=False)
        self.up = nn.Linear(cfg.width, cfg.ffn_hidden, bias=False)
        self.down = nn.Linear(cfg.ffn_hidden, cfg.width, bias=False)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, cfg: ProxyConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.width, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.width, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)
        self.branch_mult = cfg.residual_mult

    def forward(self, x, cos, sin, probe: bool = False):
        a = self.attn(self.attn_norm(x), cos, sin, probe=probe)
        a, logit_max = a if probe else (a, None)
        x = x + self.branch_mult * a
        x = x + self.branch_mult * self.mlp(self.mlp_norm(x))
        return (x, logit_max) if probe else x


class ProxyLM(nn.Module):
    """Maps token ids (B, T) to next-token logits (B, T, vocab_size)."""

    def __init__(self, cfg: ProxyConfig):
        super().__init__()
        from mup import MuReadout, MuSharedReadout

        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.width)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = RMSNorm(cfg.width, cfg.norm_eps)
        if cfg.readout_kind == "mup":
            if cfg.tied_embeddings:
                self.readout = MuSharedReadout(self.embed.weight, bias=False,
                                               output_mult=cfg.output_mult)
            else:
                self.readout = MuReadout(cfg.width, cfg.vocab_size, bias=False,
                                         output_mult=cfg.output_mult)
        else:
            self.readout = nn.Linear(cfg.width, cfg.vocab_size, bias=False)
            if cfg.tied_embeddings:
                self.readout.weight = self.embed.weight
        cos, sin = rotary_tables(cfg.seq_len, cfg.d_head, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, idx, probe: bool = False):
        """Logits (B, T, vocab); with ``probe``, (logits, the largest attention logit of each
        layer as a (depth,) tensor) (calibration.train.stability_probe reads them)."""
        x = self.embed(idx)
        maxima = []
        for block in self.blocks:
            x = block(x, self.rope_cos, self.rope_sin, probe=probe)
            if probe:
                x, m = x
                maxima.append(m)
        x = self.norm(x)
        if self.cfg.readout_kind == "sp" and self.cfg.output_mult != 1.0:
            x = x * self.cfg.output_mult
        logits = self.readout(x)  # MuReadout applies output_mult / m itself
        return (logits, torch.stack(maxima)) if probe else logits

    def hidden_matrices(self):
        """(name, parameter) of the matrices whose both dimensions grow with width."""
        return [(n, p) for n, p in self.named_parameters()
                if param_group(p, n) == "hidden"]


# --------------------------------------------------------------------------------------
# Factory: shapes, initialisation, optimiser
# --------------------------------------------------------------------------------------

def build_model(cfg: ProxyConfig, device="cpu", seed: int | None = None) -> ProxyLM:
    """Build, set mup base shapes, and initialise a proxy model (see the module docstring).

    For muP, base shapes come from the same family at ``base_width`` (and 2 x base_width to
    tell which dimensions grow). For SP every dimension is marked finite, so the width rules
    give 1 (plain AdamW). Initialisation is done here, after the shapes are known, and never
    by ``mup``'s own rescaling (``rescale_params=False``), so the base constants mean what the
    family file says.
    """
    from mup import set_base_shapes

    if seed is not None:
        torch.manual_seed(seed)
    with torch.device(device):
        model = ProxyLM(cfg)
    if cfg.parameterization == "mup":
        with torch.device("meta"):
            base = ProxyLM(cfg.with_(width=cfg.base_width))
            delta = ProxyLM(cfg.with_(width=2 * cfg.base_width))
        set_base_shapes(model, base, delta=delta, rescale_params=False,
                        do_assert=cfg.readout_kind == "mup")
    else:
        set_base_shapes(model, None, rescale_params=False, do_assert=False)
    init_weights(model, cfg)
    return model


@torch.no_grad()
def init_weights(model: ProxyLM, cfg: ProxyConfig) -> None:
    """Initialise from the base constants; muP divides hidden stds by sqrt(fan-in multiplier)."""
    for name, p in model.named_parameters():
        group = param_group(p, name)
        if name.endswith(".bias"):
            nn.init.zeros_(p)                                  # q/k/v biases (Qwen2)
        elif group in ("block_vector", "final_norm"):
            nn.init.ones_(p)                                   # norm gains
        elif group == "embedding":
            nn.init.normal_(p, std=cfg.init_std_embed)
        elif group == "readout":                               # only when untied
            nn.init.normal_(p, std=cfg.init_std_readout)
        else:
            fan_in_mult = fan_in_multiplier(p) if cfg.parameterization == "mup" else 1.0
            rule = group_multipliers("hidden", fan_in_mult, cfg.depth_mult, cfg.alpha,
                                     width_rule=cfg.parameterization)
            nn.init.normal_(p, std=cfg.init_std_hidden * rule.init_std)


def count_params(model: ProxyLM) -> tuple[int, int]:
    """(all parameters, non-embedding parameters). Non-embedding excludes the token
    embedding and the readout (counted once when tied), as in Kaplan et al. 2020's N."""
    seen, total, emb = set(), 0, 0
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if name in ("embed.weight", "readout.weight"):
            emb += p.numel()
    return total, total - emb


def _unique_params(model: ProxyLM):
    """(name, parameter, optim_rules group) of each parameter once (a tied weight once)."""
    seen = set()
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        yield name, p, param_group(p, name)


def _add_adamw_param(groups: dict, p, group: str, cfg: ProxyConfig, lr: float,
                     weight_decay: float, eps: float, width_rule: str,
                     wd_rule: str = "mup", wd_coupling: str = "lr") -> None:
    """Put ``p`` into the AdamW group (in ``groups``, keyed by its settings) that
    ``advisor.rules.optim_rules.group_multipliers`` gives it: LR, weight decay (matrices only) and
    eps; the fan-in width multiplier is read off mup's ``infshape`` for matrices with two
    growing dimensions under ``width_rule="mup"`` (1 otherwise)."""
    fan_in_mult = fan_in_multiplier(p) if width_rule == "mup" else 1.0
    rule = group_multipliers(group, fan_in_mult, cfg.depth_mult, cfg.alpha, width_rule,
                             wd_rule=wd_rule)
    wd = weight_decay * rule.weight_decay if p.ndim >= 2 else 0.0
    if wd_coupling == "independent" and wd > 0:      # decay per step schedule_t * weight_decay
        wd = independent_torch_wd(weight_decay, lr * rule.lr)
    key = (group, lr * rule.lr, wd, eps * rule.eps)
    g = groups.setdefault(key, {"params": [], "lr": key[1], "weight_decay": key[2],
                                "eps": key[3], "group": group})
    g["params"].append(p)


def build_optimizer(model: ProxyLM, cfg: ProxyConfig, lr: float, weight_decay: float = 0.0,
                    betas=(0.9, 0.95), eps: float = 1e-8, kind: str = "muadamw",
                    muon: dict | None = None, wd_rule: str = "mup", wd_coupling: str = "lr"):
    """AdamW with per-group LR, weight decay and eps from ``advisor.rules.optim_rules``.

    ``kind="muadamw"``: muP's width rules for a muP model (what ``mup.MuAdamW`` gives: hidden
    matrices LR lr/m, m their fan-in multiplier read off mup's ``infshape``, and, with
    ``wd_rule="mup"``, weight decay wd*m, so the decay per step lr*wd is the same at every
    width; ``wd_rule`` "sqrt" gives wd*sqrt(m) (Fan et al. 2025) and "none" wd at every width,
    ``advisor.rules.optim_rules.WD_WIDTH_RULES``); ``"adamw"``: no width multipliers (plain AdamW on
    any model; ``wd_rule`` must then be "mup", which means nothing there). The depth rules
    (``cfg.depth_alpha``) apply to both. Weight decay is decoupled (torch's AdamW: weights x
    (1 - lr_group * wd_group) per step) and applied to matrices only, not to norm gains.
    ``lr`` is the base model's peak LR; each group's ``initial_lr`` is its peak LR, which the
    schedule multiplies. ``wd_coupling="independent"``: the matrices' decay per step is
    schedule_t * ``weight_decay`` instead of lr_t * ``weight_decay``
    (``advisor.rules.optim_rules.WD_COUPLINGS``). ``kind="muon"``: :func:`build_muon_optimizer` (``muon`` holds its
    settings; ``wd_rule`` must be "mup": Muon's decay per step is lr*wd at every width).
    """
    check_wd_rule(wd_rule)
    if kind == "muon":
        _refuse_wd_rule(wd_rule, "optimizer muon (its decay per step is lr * wd at every width)")
        return build_muon_optimizer(model, cfg, lr, weight_decay, betas=betas, eps=eps,
                                    **(muon or {}))
    if kind not in ("muadamw", "adamw"):
        raise AdvisorError(f"optimizer kind must be muadamw, adamw or muon, got {kind!r}")
    width_rule = "mup" if (kind == "muadamw" and cfg.parameterization == "mup") else "sp"
    if width_rule == "sp":
        _refuse_wd_rule(wd_rule, "a model or optimizer without muP's width rules")
    groups: dict = {}
    for _name, p, group in _unique_params(model):
        _add_adamw_param(groups, p, group, cfg, lr, weight_decay, eps, width_rule, wd_rule,
                         wd_coupling)
    fused = {}
    if next(model.parameters()).is_cuda:
        fused = {"fused": True}
    opt = torch.optim.AdamW(list(groups.values()), lr=lr, betas=betas, eps=eps, **fused)
    for g in opt.param_groups:
        g["initial_lr"] = g["lr"]   # the schedule multiplies this
    return opt


def _refuse_wd_rule(wd_rule: str, what: str) -> None:
    if wd_rule != "mup":
        raise AdvisorError(f"weight-decay width rule {wd_rule!r} applies to muP AdamW's hidden "
                           f"matrices, not to {what}; leave it at mup")


class MuonWithAdamW:
    """torch.optim.Muon for the hidden matrices and torch.optim.AdamW for the other parameters,
    stepped together. ``param_groups`` lists both optimizers' groups (the same dicts, so the
    schedule's ``g["lr"] = g["initial_lr"] * mult`` reaches both)."""

    def __init__(self, muon, adamw):
        self.muon, self.adamw = muon, adamw

    @property
    def param_groups(self) -> list:
        return list(self.muon.param_groups) + list(self.adamw.param_groups)

    @property
    def optimizers(self) -> tuple:
        return (self.muon, self.adamw)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.optimizers:
            o.step()

    def state_dict(self) -> dict:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}


def _muon_class():
    """torch.optim.Muon, and whether it takes ``adjust_lr_fn`` (AdvisorError when absent)."""
    import inspect

    cls = getattr(torch.optim, "Muon", None)
    if cls is None:
        raise AdvisorError(f"optimizer muon needs torch.optim.Muon (torch >= 2.9); this is "
                           f"torch {torch.__version__}")
    params = inspect.signature(cls.__init__).parameters
    needed = {"lr", "weight_decay", "momentum", "nesterov", "ns_coefficients", "ns_steps", "eps"}
    missing = needed - set(params)
    if missing:
        raise AdvisorError(f"torch {torch.__version__}'s torch.optim.Muon lacks "
                           f"{', '.join(sorted(missing))}: cannot build optimizer muon")
    return cls, "adjust_lr_fn" in params


def build_muon_optimizer(model: ProxyLM, cfg: ProxyConfig, lr: float, weight_decay: float = 0.0,
                         betas=(0.9, 0.95), eps: float = 1e-8, convention: str = "spectral",
                         momentum: float = MUON_DEFAULTS["momentum"],
                         nesterov: bool = MUON_DEFAULTS["nesterov"],
                         ns_steps: int = MUON_DEFAULTS["ns_steps"],
                         ns_coefficients=MUON_DEFAULTS["ns_coefficients"],
                         muon_eps: float = MUON_DEFAULTS["eps"]) -> MuonWithAdamW:
    """Muon on the hidden matrices, AdamW (muP rules from ``advisor.rules.optim_rules``) elsewhere.

    Each hidden matrix's group gets the LR and weight decay of
    ``advisor.rules.optim_rules.muon_torch_group`` for its shape (fan_out x fan_in) and
    ``convention`` ("spectral" or "match_rms_adamw"): update lr * s(shape) * NS(momentum),
    decay per step lr * weight_decay. The embedding, norm gains and readout are on AdamW with
    the same per-group rules as ``kind="muadamw"`` (LR x 1 at every width; muP's readout
    multiplier is in the model). ``lr`` is the base peak LR of both parts; Muon's own
    ``eps`` (``muon_eps``) only guards its normalisation. Depth scaling is refused.
    """
    check_muon_convention(convention)
    check_muon_alpha(cfg.alpha)
    cls, has_adjust = _muon_class()
    width_rule = "mup" if cfg.parameterization == "mup" else "sp"
    muon_groups: dict = {}
    adam_groups: dict = {}
    for _name, p, group in _unique_params(model):
        if group != "hidden":
            _add_adamw_param(adam_groups, p, group, cfg, lr, weight_decay, eps, width_rule)
            continue
        rule = muon_torch_group(p.shape[0], p.shape[1], convention,
                                match_rms_builtin=has_adjust)
        key = (rule.lr_factor, rule.wd_factor, rule.adjust_lr_fn)
        if key not in muon_groups:
            g = {"params": [], "lr": lr * rule.lr_factor,
                 "weight_decay": weight_decay * rule.wd_factor, "group": group,
                 "update_scale": rule.update_scale}
            if has_adjust:
                g["adjust_lr_fn"] = rule.adjust_lr_fn
            muon_groups[key] = g
        muon_groups[key]["params"].append(p)
    kw = {"momentum": momentum, "nesterov": nesterov, "ns_steps": ns_steps,
          "ns_coefficients": tuple(ns_coefficients), "eps": muon_eps}
    muon_opt = cls(list(muon_groups.values()), lr=lr, weight_decay=weight_decay, **kw)
    adamw = torch.optim.AdamW(list(adam_groups.values()), lr=lr, betas=betas, eps=eps)
    opt = MuonWithAdamW(muon_opt, adamw)
    for g in opt.param_groups:
        g["initial_lr"] = g["lr"]
    return opt


def compute_loss(logits, targets, z_loss: float = 0.0):
    """(loss to backpropagate, cross-entropy in nats/token). z-loss as in PaLM (Chowdhery et al. 2022)."""
    logits = logits.float()
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    if z_loss > 0:
        z = torch.logsumexp(logits, dim=-1)
        return ce + z_loss * (z ** 2).mean(), ce
    return ce, ce


