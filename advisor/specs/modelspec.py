"""The user's real architecture: from command-line sizes or a Hugging Face config.json.

Both give a shape spec for :func:`advisor.laws.published.shape_from_spec`, which counts the
parameters (GQA key/value heads, tied or untied embeddings, SwiGLU or GELU MLP), so the laws
see the N of the model that will be trained rather than of a shape re-derived from a count.
The count is exact (every parameter transformers builds: norms, biases, learned positions
too) for the model types in :data:`EXACT_MODEL_TYPES` and for the command-line sizes (a
Llama model); for other types norms and biases are left out and the count is not called exact.
"""
from __future__ import annotations

import json
from pathlib import Path

from advisor.errors import AdvisorError

MAX_CONFIG_BYTES = 1 << 20
_GATED_ACTS = ("silu", "swish", "swiglu", "gelu_pytorch_tanh_gated")
_GPT2_TYPES = ("gpt2", "gpt_bigcode")


def spec_from_options(d_model=None, n_layers=None, n_heads=None, n_kv_heads=None, ffn=None,
                      vocab=None, tied=None, mlp=None):
    """A shape spec from --d-model/--n-layers/--n-heads/--n-kv-heads/--ffn/--vocab, or None
    when none is given. d_model, n_layers and n_heads are required together; ffn defaults to
    the LLaMA rule (8/3 d rounded up to 256) for SwiGLU and 4 d for GELU; vocab to 32000."""
    given = {k: v for k, v in dict(d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                                   n_kv_heads=n_kv_heads, ffn=ffn, vocab=vocab).items()
             if v is not None}
    if not given:
        return None
    missing = [k for k in ("d_model", "n_layers", "n_heads") if k not in given]
    if missing:
        raise AdvisorError("a model shape needs --d-model, --n-layers and --n-heads together "
                           f"(missing: {', '.join('--' + m.replace('_', '-') for m in missing)})")
    ints = {}
    for k, v in given.items():
        try:
            ints[k] = int(str(v).replace("_", ""))
        except ValueError:
            raise AdvisorError(f"--{k.replace('_', '-')} must be a whole number, "
                               f"got {v!r}") from None
        if not 0 < ints[k] <= 10_000_000:
            raise AdvisorError(f"--{k.replace('_', '-')} must be between 1 and 1e7, got {v}")
    mlp = mlp or "swiglu"
    d = ints["d_model"]
    f = ints.get("ffn") or (256 * -(-int(8 * d / 3) // 256) if mlp == "swiglu" else 4 * d)
    return {"d_model": d, "n_layers": ints["n_layers"], "n_heads": ints["n_heads"],
            "n_kv_heads": ints.get("n_kv_heads", ints["n_heads"]), "ffn_hidden": f,
            "vocab": ints.get("vocab", 32000), "tied": bool(tied), "mlp": mlp,
            "norm_params": (2 * ints["n_layers"] + 1) * d}     # Llama: RMSNorm gains, no biases


def read_config_json(path) -> dict:
    """A Hugging Face config.json as a dict (AdvisorError if missing, too large or not JSON)."""
    p = Path(path)
    if not p.is_file():
        raise AdvisorError(f"Hugging Face config not found: {path}")
    if p.stat().st_size > MAX_CONFIG_BYTES:
        raise AdvisorError(f"Hugging Face config {path} is larger than 1 MiB")
    try:
        c = json.loads(p.read_text(encoding="utf-8", errors="replace"))
    except json.JSONDecodeError as exc:
        raise AdvisorError(f"Hugging Face config {path} is not valid JSON: {exc.msg} "
                           f"(line {exc.lineno})") from None
    if not isinstance(c, dict):
        raise AdvisorError(f"Hugging Face config {path} must be a JSON object")
    return c


def spec_from_hf_config(path) -> dict:
    """A shape spec from a Hugging Face model config.json (LLaMA-style or GPT-2-style)."""
    c = read_config_json(path)
    if any(c.get(k) for k in ("num_experts", "num_local_experts", "n_routed_experts")):
        raise AdvisorError(f"{path} describes a mixture-of-experts model; the shipped laws "
                           "are for dense models")
    mtype = str(c.get("model_type", ""))

    def get(*keys, default=None):
        for k in keys:
            if c.get(k) is not None:
                return c[k]
        return default

    d = get("hidden_size", "n_embd", "d_model")
    L = get("num_hidden_layers", "n_layer", "num_layers")
    h = get("num_attention_heads", "n_head")
    if d is None or L is None or h is None:
        raise AdvisorError(f"{path}: needs hidden_size, num_hidden_layers and "
                           "num_attention_heads (or n_embd, n_layer, n_head)")
    act = str(get("hidden_act", "activation_function", default="silu")).lower()
    gated = mtype not in _GPT2_TYPES and mtype != "gpt_neox" and act in _GATED_ACTS
    ffn = get("intermediate_size", "n_inner", "ffn_dim")
    if ffn is None:
        ffn = 4 * int(d)
    tied = get("tie_word_embeddings", default=mtype in _GPT2_TYPES)
    spec = {"d_model": d, "n_layers": L, "n_heads": h,
            "n_kv_heads": get("num_key_value_heads", default=h), "ffn_hidden": ffn,
            "vocab": get("vocab_size"), "tied": bool(tied), "mlp": "swiglu" if gated else "gelu"}
    if get("head_dim") is not None:
        spec["head_dim"] = c["head_dim"]
    for k, v in spec.items():
        if k not in ("tied", "mlp") and (isinstance(v, bool) or not isinstance(v, int)):
            raise AdvisorError(f"{path}: {k} must be an integer, got {v!r}")
    counts = vector_params(mtype, c, spec)
    if counts is not None:
        spec.update(counts)
    return spec


#: model_type -> how transformers builds its norms, biases and position embeddings; the
#: counts are checked against real models in tests/test_hf_counts.py.
EXACT_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "gpt2", "gpt_neox")


def vector_params(model_type: str, config: dict, spec: dict) -> dict | None:
    """Norm gains and biases, linear biases and learned position embeddings (numbers of
    scalars) of a transformers model of ``model_type``, or None for a type not in
    EXACT_MODEL_TYPES (its count then leaves them out and is not called exact)."""
    if model_type not in EXACT_MODEL_TYPES:
        return None
    d, L, f = spec["d_model"], spec["n_layers"], spec["ffn_hidden"]
    hd = spec.get("head_dim") or d // spec["n_heads"]
    q, kv = spec["n_heads"] * hd, spec["n_kv_heads"] * hd
    if model_type in ("gpt2", "gpt_neox"):     # LayerNorm weight + bias; every linear biased
        pos = d * int(config.get("n_positions") or 1024) if model_type == "gpt2" else 0
        return {"norm_params": L * 4 * d + 2 * d, "bias_params": L * (q + 2 * kv + 2 * d + f),
                "position_params": pos}
    norms = L * 2 * d + d                        # RMSNorm gains: two per block, one final
    if model_type == "qwen3":
        norms += L * 2 * hd                      # q_norm, k_norm over each head
    bias = 0
    if model_type == "qwen2":
        bias = L * (q + 2 * kv)                  # q, k, v biased; o not
    elif config.get("attention_bias"):
        bias = L * (q + 2 * kv + d)
    if model_type == "llama" and config.get("mlp_bias"):
        bias += L * (2 * f + d)
    return {"norm_params": norms, "bias_params": bias}
