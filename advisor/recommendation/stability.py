"""The recommendation's ``stability`` block: how far the recommended LR sits below the largest
stable LR at the target, what the attention logits will reach, and what to do when the margin
is small.

Evidence, in order of preference:

* **the user's own stability sweep** (``advisor recommend --stability-sweep FILE``: the JSON of
  ``advisor results STORE --by stability --format json > FILE`` over a plan like
  ``recipes/plans/cpu-stability.yaml``): the arm matching the target (``qk_norm`` when the
  model has QK-norm, else ``base``) gives the law log2 largest-stable-LR = a + b log2 width,
  evaluated at the target's width, and the joint fit of the max attention logit on width and
  LR, evaluated at the target's width and the recommended LR (both with 95% prediction
  intervals; far extrapolations in width are what they are: wide);
* otherwise **published observations**: the cliff in Step Law's released LR grids
  (``advisor.fit.stability_evidence``, recipes/published/stability.yaml: log2 cliff = a + b log2 N
  over 13 cells at N = 215M-1.07B), evaluated at the target's non-embedding N. No published
  source gives the attention logits of an arbitrary model, so the max attention logit is then
  not predicted (null, with the reason).

Margin (octaves) = log2(largest stable LR / recommended LR); its 95% interval is the law's
prediction interval. **Small** when the interval's lower end is below
:data:`SMALL_MARGIN_OCTAVES`: the block then lists mitigations, each with its cost (Wortsman et
al. 2023, arXiv 2309.14322: QK-layernorm, section 3.1.1; z-loss 1e-4, section 3.1.2;
longer warmup, section 3.2.1; AdamW eps, section 3.4; or simply a lower LR).

``--hf-config`` feeds :func:`architecture_from_hf_config`: explicit QK-norm fields
(``qk_norm``, ``qk_layernorm``, ``use_qk_norm``, ``attention_layer_norm``), model types whose
attention always normalises queries and keys (Qwen3, OLMo-2, Gemma-3), and the related
attention-logit soft-capping (Gemma-2) and QKV clipping (OLMo, DBRX) fields.

Torch-free and numpy-free (the recommendation's cold start does not import numpy).
Units: LRs are peak AdamW LRs; margins in octaves (log2); logits in nats.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from advisor.errors import AdvisorError
from advisor.recommendation.blocks import Block

SMALL_MARGIN_OCTAVES = 1.0
Z_LOSS = 1e-4
LOW_EPS = 1e-15
SWEEP_SCHEMA = "hp-advisor/stability-sweep/v1"

_QK_FIELDS = ("qk_norm", "qk_layernorm", "use_qk_norm", "attention_layer_norm")
# Hugging Face model types whose attention applies RMSNorm to queries and keys per head
# (transformers: Qwen3Attention, Olmo2Attention, Gemma3Attention have q_norm and k_norm).
_QK_NORM_TYPES = ("qwen3", "olmo2", "gemma3", "gemma3_text")

WORTSMAN = "Wortsman et al. 2023 (arXiv 2309.14322)"


@dataclass(frozen=True)
class Architecture(Block):
    """What a model config says about the attention logits' safeguards."""

    qk_norm: bool | None = None          # None: the config does not say
    source: str = "not given (no --hf-config)"
    attn_logit_softcap: float | None = None
    qkv_clip: float | None = None


@dataclass(frozen=True)
class StabilityInputs:
    """The stability block's inputs besides the recommendation itself."""

    architecture: Architecture = field(default_factory=Architecture)
    sweep: dict | None = None            # a calibration.analyze.stability_summary JSON
    sweep_path: str | None = None


@dataclass(frozen=True)
class Mitigation(Block):
    name: str
    action: str
    cost: str


@dataclass(frozen=True)
class StabilityBlock(Block):
    """JSON key ``stability`` (docs/stability.md)."""

    margin_octaves: float | None
    margin_interval_95: tuple | None
    largest_stable_lr: float | None
    largest_stable_lr_interval_95: tuple | None
    verdict: str                         # comfortable | small | unknown
    evidence_kind: str                   # calibration | published
    evidence: str
    max_attention_logit: float | None
    max_attention_logit_interval_95: tuple | None
    max_attention_logit_note: str
    architecture: Architecture
    mitigations: tuple = ()
    notes: tuple = ()


def architecture_from_hf_config(path) -> Architecture:
    """The QK-norm-style fields of a Hugging Face config.json (read after
    ``advisor.specs.modelspec.spec_from_hf_config`` has validated the file)."""
    try:
        c = json.loads(Path(path).read_text(encoding="utf-8", errors="replace"))
    except (OSError, json.JSONDecodeError) as exc:
        raise AdvisorError(f"Hugging Face config {path} cannot be read: {exc}") from None
    if not isinstance(c, dict):
        raise AdvisorError(f"Hugging Face config {path} must be a JSON object")
    softcap = c.get("attn_logit_softcapping")
    clip = c.get("clip_qkv")
    softcap = float(softcap) if isinstance(softcap, (int, float)) and softcap else None
    clip = float(clip) if isinstance(clip, (int, float)) and clip else None
    for k in _QK_FIELDS:
        if isinstance(c.get(k), bool):
            return Architecture(c[k], f"{Path(path).name}: {k} = {str(c[k]).lower()}", softcap,
                                clip)
    mtype = str(c.get("model_type", ""))
    if mtype in _QK_NORM_TYPES:
        return Architecture(True, f"{Path(path).name}: model_type {mtype} (its attention "
                                  "normalises queries and keys)", softcap, clip)
    return Architecture(False, f"{Path(path).name}: no QK-norm field and model_type "
                               f"{mtype or 'unset'} has none", softcap, clip)


def stability_inputs(hf_config=None, sweep_path=None) -> StabilityInputs:
    """The block's inputs from the command line: a Hugging Face config (its QK-norm fields)
    and a stability sweep summary, either or both None."""
    arch = architecture_from_hf_config(hf_config) if hf_config else Architecture()
    sweep = load_stability_sweep(sweep_path) if sweep_path else None
    return StabilityInputs(arch, sweep, str(sweep_path) if sweep_path else None)


def load_stability_sweep(path) -> dict:
    """A ``calibration.analyze.stability_summary`` JSON, checked enough to use (AdvisorError else)."""
    p = Path(path)
    if not p.is_file():
        raise AdvisorError(f"stability sweep summary not found: {path}")
    try:
        doc = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AdvisorError(f"stability sweep summary {path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != SWEEP_SCHEMA:
        raise AdvisorError(f"{path} is not a stability sweep summary (schema {SWEEP_SCHEMA}; "
                           "made by advisor results STORE --by stability --format json > FILE)")
    if not isinstance(doc.get("arms"), dict) or not doc["arms"]:
        raise AdvisorError(f"stability sweep summary {path} has no arms")
    return doc


def _interval(center: float, half: float) -> tuple | None:
    if not math.isfinite(half):
        return None
    return (center - half, center + half)


def _sig(x: float, digits: int = 3) -> float:
    return float(f"{x:.{digits}g}")


def stability_block(lr: float, params_non_embedding: float, d_model: int, warmup_steps: int,
                    total_steps: int, eps: float,
                    inputs: StabilityInputs | None = None) -> StabilityBlock:
    """The block for a recommended peak ``lr`` at a target of ``params_non_embedding``
    parameters and width ``d_model`` (channels), trained ``total_steps`` steps with
    ``warmup_steps`` of warmup and AdamW ``eps``."""
    from advisor.fit.stability import Line

    inputs = inputs or StabilityInputs()
    arch = inputs.architecture
    notes = []
    attn, attn_int = None, None
    attn_note = ("not predicted: no stability sweep of your model; published work gives no "
                 "attention-logit scale for an arbitrary architecture (run the cpu-stability "
                 "plan, summarise it with --json, pass it as --stability-sweep)")
    line, x = None, None
    if inputs.sweep is not None:
        arm = "qk_norm" if arch.qk_norm else "base"
        a = inputs.sweep["arms"].get(arm)
        law = (a or {}).get("law", {})
        if a is None or "line" not in law:
            notes.append(f"stability sweep {inputs.sweep_path}: no fitted {arm!r} arm; using "
                         "the published evidence instead")
        else:
            line, x = Line.from_dict(law["line"]), math.log2(d_model)
            widths = a.get("widths", [])
            kind = "calibration"
            evidence = (f"your stability sweep {inputs.sweep_path}, arm {arm!r}: log2 largest "
                        f"stable LR = {line.a:.2f} {line.b:+.2f} log2 width over widths "
                        f"{widths}, evaluated at width {d_model}")
            if widths and d_model > 2 * max(widths):
                notes.append(f"width {d_model} is {math.log2(d_model / max(widths)):.1f} octaves "
                             f"beyond the sweep's widest ({max(widths)}): the interval is the "
                             "line's, not a guarantee")
            joint = (a.get("attn_growth") or {}).get("joint")
            if joint:
                jl = Line.from_dict(joint)
                y, half = jl.predict(math.log2(d_model), math.log2(lr))
                if y < 64 and (not math.isfinite(half) or half < 64):
                    attn = _sig(2 ** y)
                    attn_int = (None if not math.isfinite(half)
                                else (_sig(2 ** (y - half)), _sig(2 ** (y + half))))
                    attn_note = (f"joint fit log2 max attention logit = {jl.coef[0]:.2f} "
                                 f"{jl.coef[1]:+.2f} log2 width {jl.coef[2]:+.2f} log2 LR of "
                                 f"arm {arm!r}, at width {d_model} and LR {lr:.3g}")
                else:
                    attn_note = "not predicted: the sweep's fit extrapolates beyond float range"
    if line is None:
        from advisor.fit.stability_evidence import load_evidence

        ev = load_evidence()
        line, x = ev["line"], math.log2(params_non_embedding)
        kind = "published"
        lo, hi = ev["N_range"]
        evidence = (f"{ev['source']}: log2 cliff LR = {line.a:.2f} {line.b:+.2f} log2 N over "
                    f"{line.n} (N, D) cells at N = {lo:.3g}-{hi:.3g}, at N = "
                    f"{params_non_embedding:.3g} non-embedding parameters")
        if not lo <= params_non_embedding <= hi:
            notes.append(f"N = {params_non_embedding:.3g} is outside the published range "
                         f"{lo:.3g}-{hi:.3g}: extrapolated")
        if arch.qk_norm:
            notes.append(f"your model has QK-norm; the published cliffs do not state theirs. "
                         f"{WORTSMAN} (section 3.1.1, Figure 1) find QK-layernorm removes the "
                         "attention-logit divergence at high LR, so this margin is a lower "
                         "estimate")
    y, half = line.predict(x)
    stable = 2 ** y
    margin = y - math.log2(lr)
    m_int = _interval(margin, half)
    if m_int is None:
        verdict = "unknown"
    else:
        verdict = "small" if m_int[0] < SMALL_MARGIN_OCTAVES else "comfortable"
    mitigations = ()
    if verdict != "comfortable":
        mitigations = tuple(_mitigations(lr, m_int[0] if m_int else margin, warmup_steps,
                                         total_steps, eps, arch))
    else:
        notes.append(f"margin at least {m_int[0]:.1f} octaves: no mitigation needed at this LR")
    if arch.attn_logit_softcap:
        notes.append(f"attention logits are soft-capped at {arch.attn_logit_softcap:g}: they "
                     "cannot grow past it")
    if arch.qkv_clip:
        notes.append(f"queries, keys and values are clipped at {arch.qkv_clip:g}")
    return StabilityBlock(
        margin_octaves=round(margin, 2),
        margin_interval_95=None if m_int is None else (round(m_int[0], 2), round(m_int[1], 2)),
        largest_stable_lr=_sig(stable),
        largest_stable_lr_interval_95=None if m_int is None else (_sig(2 ** (y - half)),
                                                                  _sig(2 ** (y + half))),
        verdict=verdict, evidence_kind=kind, evidence=evidence,
        max_attention_logit=attn, max_attention_logit_interval_95=attn_int,
        max_attention_logit_note=attn_note, architecture=arch,
        mitigations=mitigations, notes=tuple(notes))


def _mitigations(lr, margin_lo, warmup, total, eps, arch) -> list[Mitigation]:
    """What to do about a small margin, cheapest first, each with what it costs."""
    out = []
    if not arch.qk_norm:
        out.append(Mitigation(
            "qk_norm", "normalise queries and keys per head (RMSNorm/LayerNorm before the dot "
            f"product); {WORTSMAN} section 3.1.1: removes attention-logit growth and lowers LR "
            "sensitivity; docs/stability.md measures it on the proxies",
            "two small norms per attention layer; an architecture change (existing checkpoints "
            "do not load)"))
    out.append(Mitigation(
        "z_loss", f"add {Z_LOSS:g} x mean(logsumexp(logits)^2) to the loss (PaLM, Chowdhery et al. "
        f"2022; {WORTSMAN} section 3.1.2): keeps the output log-partition near 0",
        "one logsumexp per token, which the cross-entropy computes anyway; a 1e-4-weighted "
        "extra term in the loss"))
    longer = min(2 * warmup, max(warmup, total // 5))
    if longer > warmup:
        out.append(Mitigation(
            "longer_warmup", f"warm up over {longer} steps instead of {warmup} ({WORTSMAN} "
            "section 3.2.1: longer warmup lowers LR sensitivity, more so for larger models)",
            f"{longer - warmup} more steps below the peak LR ({(longer - warmup) / total:.1%} "
            "of the run)"))
    if eps > LOW_EPS:
        out.append(Mitigation(
            "lower_eps", f"AdamW eps {eps:g} -> {LOW_EPS:g} ({WORTSMAN} section 3.4: at scale "
            "the gradient RMS falls towards eps and the update shrinks)",
            "none in fp32 optimizer states; with bf16/fp16 Adam moments sqrt(v) + eps can "
            "underflow (keep the moments in fp32)"))
    deficit = max(SMALL_MARGIN_OCTAVES - margin_lo, 0.0)
    if deficit > 0:
        lower = lr * 2 ** -deficit
        out.append(Mitigation(
            "lower_lr", f"peak LR {lr:.3g} -> {_sig(lower)} (x 2^-{deficit:.2f}), which puts "
            f"the margin's lower end at {SMALL_MARGIN_OCTAVES:g} octave",
            "a slower run if the recommended LR was at the optimum: expected_excess_loss "
            "prices an LR miss in nats"))
    return out
