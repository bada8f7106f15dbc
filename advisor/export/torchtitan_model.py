"""What both torchtitan formats need of the model: the Llama 3 flavor the shape is (8B, 70B,
405B), or the arguments that build it as a new flavor. Pure functions; widths in channels."""
from __future__ import annotations

from advisor.errors import AdvisorError

FLAVOR = "hp-advisor"           # the flavor name a new shape is registered under
ROPE_THETA = 500000             # Llama 3's, as torchtitan's llama3 flavors use
#: Llama 3 shapes torchtitan registers in both 0.2.x and 0.3.x (torchtitan/models/llama3):
#: (d_model, n_layers, n_heads, n_kv_heads, ffn_hidden, vocab) -> flavor
LLAMA3_FLAVORS = {(4096, 32, 32, 8, 14336, 128256): "8B",
                  (8192, 80, 64, 8, 28672, 128256): "70B",
                  (16384, 126, 128, 8, 53248, 128256): "405B"}


def known_flavor(model) -> str | None:
    """The torchtitan llama3 flavor with exactly this shape, or None."""
    key = (model.d_model, model.n_layers, model.n_heads, model.n_kv_heads, model.ffn_hidden,
           model.vocab_size)
    return LLAMA3_FLAVORS.get(key)


def check_llama3_shape(model) -> None:
    """torchtitan's llama3 model has head_dim = d_model / n_heads, a SwiGLU MLP and untied
    embeddings: refuse a shape it cannot build rather than write a file for another model."""
    if model.n_heads * model.head_dim != model.d_model:
        raise AdvisorError(f"torchtitan's llama3 model needs head_dim = d_model / n_heads; this "
                           f"shape has {model.n_heads} heads of {model.head_dim} at d_model "
                           f"{model.d_model}")
    if model.tied_embeddings:
        raise AdvisorError("torchtitan's llama3 model has untied embeddings; this shape ties "
                           "them")


def ffn_args(d_model: int, ffn_hidden: int) -> tuple[int, float]:
    """(multiple_of, ffn_dim_multiplier) with which torchtitan 0.2's llama3 FeedForward
    builds exactly ``ffn_hidden``: hidden = int(2 * 4d / 3), int(multiplier * hidden), rounded
    up to a multiple of multiple_of."""
    multiple = 1
    while multiple < 4096 and ffn_hidden % (multiple * 2) == 0:
        multiple *= 2
    base = int(2 * 4 * d_model / 3)
    mult = ffn_hidden / base
    if torchtitan_ffn(d_model, multiple, mult) != ffn_hidden:      # float rounding guard
        raise AdvisorError(f"cannot express an MLP width of {ffn_hidden} in torchtitan 0.2's "
                           "llama3 arguments")
    return multiple, mult


def torchtitan_ffn(d_model: int, multiple_of: int, multiplier: float) -> int:
    """torchtitan 0.2's llama3 FeedForward hidden width (model/model.py, FeedForward)."""
    hidden = int(2 * 4 * d_model / 3)
    hidden = int(multiplier * hidden)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


def job_numbers(rec):
    """(TrainerNumbers, model shape, (decay_ratio, decay_type, min_lr_factor), flavor or None)
    for a torchtitan file; refuses a shape torchtitan's llama3 cannot build."""
    from advisor.export.common import trainer_numbers
    n = trainer_numbers(rec)
    check_llama3_shape(rec.model)
    return n, rec.model, schedule_args(rec, n), known_flavor(rec.model)


def schedule_args(rec, n) -> tuple[float, str, float]:
    """(decay_ratio, decay_type, min_lr_factor) of torchtitan's [lr_scheduler] (both
    versions): WSD's cooldown as a share of the run (1-sqrt is torchtitan's "sqrt"), or a
    whole-run cosine to 10% / linear to 0."""
    from advisor.export.common import wsd_decay
    s = rec.schedule
    if s.family == "wsd":
        decay, min_factor = wsd_decay(rec, n)
        return decay / n.steps, {"1-sqrt": "sqrt"}.get(s.cooldown_shape, s.cooldown_shape), \
            min_factor
    if s.family == "cosine":
        return 1.0, "cosine", 0.1
    return 1.0, "linear", 0.0
