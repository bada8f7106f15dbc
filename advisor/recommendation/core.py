"""``recommend``: a complete training configuration for a target model size, with evidence.

Data flow: target size -> model shape (recipes/families) -> law sets (recipes/laws or a fitted
file) -> LR, batch, weight decay, loss -> optimizer, warmup, schedule, muP view -> a typed
:class:`Recommendation` of frozen blocks (``advisor.recommendation.blocks``).

Two stages. :func:`resolve_inputs` does all the parsing and reading: the options, the target
family or architecture, every law set (the shipped ones loaded once, the chosen file), and the
published evidence and trust tables (``advisor.laws.published``, ``advisor.recommendation.trust``: cached per
process). :func:`compute` and the steps it calls are pure functions of those inputs, with one
exception: with ``schedule_law`` the schedule step reads that file, through
``advisor.schedule.recommend_schedule``, which takes a path. Printing and files are in
``advisor/cli/commands`` and ``advisor/export``. Units are stated on every value: batch sizes in
tokens and in sequences of ``seq_len`` tokens; N in each law set's own parameter convention.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from advisor.common.yamlio import plain
from advisor.errors import AdvisorError
from advisor.laws.lawforms import NotApplicable
from advisor.laws.lawset import LawSet, load_lawset, load_lawset_file, load_shipped
from advisor.rules.lr_schedule import Schedule
from advisor.recommendation.mup_view import mup_view
from advisor.rules.optim_rules import check_muon_convention
from advisor.rules.plausibility import check as check_plausible, check_target
from advisor.recommendation.blocks import (AlternativeSchedule, DepthView, ExcessLoss, FittedSchedule,
                                GivenBlock, LawInfo, LawSchedule, ModelShape, MupView,
                                OptimizerBlock, ParamsForLaws, PublishedNearest,
                                ScheduleBlock, SizeError, Target, Uncertainty, Value)
from advisor.specs.conventions import Conventions
from advisor.specs.shapes import Shape, load_family, shape_for_params
from advisor.specs.transfer import TargetGroups, target_groups
from advisor.recommendation.batch_plan import BatchPlan
from advisor.recommendation.stability import StabilityBlock, StabilityInputs, stability_block

DEFAULT_LAW = "optima-fit"        # laws of tuned optima; best held out by setup (docs/conditional.md)
TRUST_FALLBACK_LAW = "evidence-fit"   # whose trust.yaml spread a law without its own falls back to
DEFAULT_LOSS_LAW = "epoch-chinchilla"
DEFAULT_WD_LAW = "power-lines"
DEFAULT_FAMILY = "llama"
DEFAULT_SEQ_LEN = 4096
DEFAULT_BASE_WIDTH = 256
SPREAD_WARN_FACTOR = 2.0          # warn when shipped laws' LR or batch differ by more than this

__all__ = ["Recommendation", "Value", "recommend", "resolve_inputs", "compute", "law_table"]


@dataclass(frozen=True)
class Recommendation:
    """The advisor's answer: typed blocks read by attribute. Stable JSON keys (``to_dict``):
    docs/recommend.md, "Output schema"."""

    target: Target
    model: ModelShape
    learning_rate: Value
    weight_decay: Value
    batch_size_tokens: Value
    batch_size_sequences: Value
    optimizer: OptimizerBlock
    warmup_steps: Value
    total_steps: Value
    schedule: ScheduleBlock
    mup: MupView
    predicted_loss: Value
    law: LawInfo
    warnings: list = field(default_factory=list)
    published_nearest: tuple = ()            # of PublishedNearest
    uncertainty: Uncertainty | None = None
    expected_excess_loss: ExcessLoss | None = None
    depth: DepthView | None = None           # advisor.recommendation.depth_view: the depth rules
    given: GivenBlock | None = None          # the user's fixed choices and what they cost
    batch_plan: BatchPlan | None = None      # advisor.recommendation.batch_plan
    stability: StabilityBlock | None = None  # advisor.recommendation.stability: margin to the largest stable LR

    # the LR and weight decay mapped to every parameter group (advisor.specs.transfer), what
    # the muP, depth and Muon views read; not part of the output schema
    transfer: TargetGroups | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict:
        return {key: plain(val) for key, val in self.__dict__.items() if key != "transfer"}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_yaml(self) -> str:
        import yaml
        return yaml.safe_dump(self.to_dict(), sort_keys=False, width=100)


def compute_optimal_tokens(params_total: float, loss_law: LawSet) -> float:
    """Training tokens D at which ``params_total`` is compute-optimal under L = E + A/N^a + B/D^b.

    Minimising L at fixed C = 6ND gives N_opt = G (C/6)^(b/(a+b)), G = (a A / (b B))^(1/(a+b))
    (Hoffmann et al. 2022, Eq. 4); we invert it for C and return D = C / (6 N).
    """
    law = loss_law.laws.get("loss")
    if law is None or law["form"] != "chinchilla":
        raise AdvisorError(f"law set {loss_law.name!r} has no Chinchilla-form loss law "
                           "to derive compute-optimal tokens from")
    a, b, A, B = (float(law[k]) for k in ("alpha", "beta", "A", "B"))
    G = (a * A / (b * B)) ** (1.0 / (a + b))
    c_over_6 = (params_total / G) ** ((a + b) / b)
    return c_over_6 / params_total


def round_batch(sequences: float) -> tuple[int, int]:
    """Round a batch in sequences to a multiple of a power of two g <= sequences/32.

    Returns (rounded, g). The rounding moves the batch by at most 1/64 (about 1.6%), well
    inside the flat region of loss vs batch, and keeps the global batch divisible by many
    data-parallel sizes.
    """
    if sequences < 1:
        return 1, 1
    g = 1
    while g * 2 <= sequences / 32:
        g *= 2
    return max(g, int(round(sequences / g)) * g), g


def adam_beta2(batch_tokens: float, ref_tokens: float = 1_048_576, ref_beta2: float = 0.95):
    """beta2 for a batch of ``batch_tokens``; keeps the EMA half-life in tokens fixed below ref.

    At and above ``ref_tokens`` (1M tokens) LLM practice uses 0.95 (LLaMA, DeepSeek). Below
    it, beta2 = ref_beta2 ** (B / ref), which holds the second-moment half-life constant in
    tokens (Marek et al. 2025, "Small Batch Size Training for Language Models"); Porian et
    al. 2024 likewise found beta2 of 0.99-0.999 necessary at small batches. Capped at 0.999.
    """
    if batch_tokens >= ref_tokens:
        return ref_beta2
    return min(0.999, ref_beta2 ** (batch_tokens / ref_tokens))


def _citation(ls: LawSet) -> str:
    return str(ls.source.get("citation", ls.title))


def _predict(ls: LawSet, quantity: str, shape: Shape, D: float, seq_len: int, **extra):
    """(value, interval, N used) of a law in its set's own conventions."""
    N = shape.params(ls.conventions["params"])
    kw = dict(M=shape.flops_per_token(seq_len), W=float(shape.d_model), **extra)
    value = ls.predict(quantity, N, D, **kw)
    if quantity == "batch_size":
        value = ls.batch_tokens(value)
    return value, ls.interval(quantity, N, D, **kw), N


def law_table(shape: Shape, D: float, seq_len: int, loss: float | None = None,
              sets: list[LawSet] | None = None, default: LawSet | None = None) -> list[dict]:
    """Each law set's LR / batch (tokens) / weight decay / loss for one target, side by side.

    LR and batch come from each set's own laws; weight decay from a set's own
    ``weight_decay`` law, evaluated with the LR and batch of the default law set
    (``default``, else the one named DEFAULT_LAW in ``sets``) when the set has none of its
    own (Power Lines predicts only weight decay). Missing entries are None. Pure when ``sets``
    is given; without it the shipped sets are read.
    """
    sets = sets if sets is not None else load_shipped()
    if default is None:
        default = next((ls for ls in sets if ls.name == DEFAULT_LAW
                        and ls.path == f"{DEFAULT_LAW}.yaml"), None) or load_lawset(DEFAULT_LAW)
    lr0, _, _ = _predict(default, "learning_rate", shape, D, seq_len)
    b0, _, _ = _predict(default, "batch_size", shape, D, seq_len)
    rows = []
    for ls in sets:
        extra = {} if ls.has("loss") or loss is None else {"L": loss}
        row = {"law": ls.name, "title": ls.title, "params_convention": ls.conventions["params"],
               "N": shape.params(ls.conventions["params"]), "not_applicable": {}}

        def value(q, **kw):
            try:
                return _predict(ls, q, shape, D, seq_len, **kw)[0]
            except NotApplicable as exc:
                row["not_applicable"][q] = str(exc)
                return None

        for q, key in (("learning_rate", "learning_rate"), ("batch_size", "batch_size_tokens"),
                       ("loss", "loss"), ("critical_batch_size", "critical_batch_size_tokens")):
            row[key] = value(q, **extra) if ls.has(q) else None
        if row["learning_rate"] and ls.proxy_conventions.lr == "mup_base":
            row["learning_rate"] = target_groups(            # hidden-matrix LR at this width
                ls.proxy_conventions, row["learning_rate"], 0.0, shape.d_model)["hidden"].lr
        if ls.has("weight_decay"):
            lr = row["learning_rate"] or lr0
            bt = row["batch_size_tokens"] or b0
            row["weight_decay"] = value("weight_decay", lr=lr, B_tokens=bt, **extra)
        else:
            row["weight_decay"] = None
        row["out_of_range"] = [f"{q}: {note}" for q in ls.laws
                               for note in ls.out_of_range(
                                   q, shape.params(ls.conventions["params"]), D,
                                   M=shape.flops_per_token(seq_len), W=float(shape.d_model),
                                   **_range_extra(ls, q, lr0, b0, loss))]
        rows.append(row)
    return rows


def disagreement_warnings(rows: list[dict], chosen: str, chosen_values: dict) -> list[str]:
    """Warnings where the laws' LR or batch (tokens) differ by more than SPREAD_WARN_FACTOR.

    Only applicable (positive) values enter the spread; laws reported not applicable are
    named separately, with their reason. The chosen law and its value are always in the
    message, and in the spread even when it is a file rather than a shipped set.
    """
    out = []
    for key, label in (("learning_rate", "peak LR"), ("batch_size_tokens", "batch (tokens)")):
        vals = {r["law"]: r[key] for r in rows if r[key] is not None and r[key] > 0}
        vals[chosen] = float(chosen_values[key])
        excluded = [f"{r['law']} ({r['not_applicable'][q]})" for r in rows
                    for q in r.get("not_applicable", {})
                    if q == {"learning_rate": "learning_rate",
                             "batch_size_tokens": "batch_size"}[key]]
        if len(vals) >= 2:
            lo, hi = min(vals.values()), max(vals.values())
            if hi / lo > SPREAD_WARN_FACTOR:
                spread = ", ".join(f"{n} {v:.3g}" for n, v in sorted(vals.items()))
                msg = (f"laws disagree on the {label} by {hi / lo:.1f}x: {spread}; this "
                       f"recommendation uses {chosen} ({vals[chosen]:.3g}) (see advisor "
                       "compare)")
                if excluded:
                    msg += "; left out: " + "; ".join(excluded)
                out.append(msg)
    return out


WARMUP_MIN_STEPS = 2000
WARMUP_MAX_FRACTION = 0.5
WARMUP_SOURCE = (
    "at least 2,000 steps: in Wen et al. 2025's tuned AdamW sweep (recipes/published/"
    "configs.yaml, marin-*), peak LR 8e-3 diverged with 500 warmup steps (130M, 1-4x "
    "Chinchilla) and with 1,000 (300M), and trained with 2,000; at 4e-3 (520M) 500 steps "
    "cost 0.05 nats against 1,000. Published runs at peak LRs 3e-4 to 3e-3 use 2,000 (LLaMA "
    "1/2, TinyLlama, OLMo-1B, OLMo 2, SmolLM2, DeepSeek LLM) to 8,000 (Llama 3 405B). Also "
    "at least N tokens (Porian et al. 2024) and 2/(1-beta2) steps (Ma and Yarats 2021); at "
    "most half the run (Wen et al.'s 1x-Chinchilla 130M run warmed up over 2,000 of its "
    "3,815 steps)")


def warmup_steps_for(lr: float, total_steps: int, n_tokens_steps: float,
                     beta2: float) -> tuple[int, str | None]:
    """Warmup steps for a peak LR ``lr`` (see WARMUP_SOURCE) and an optional note.

    max(2000, ceil(N tokens / batch), ceil(2 / (1 - beta2))), capped at half of
    ``total_steps``; ``n_tokens_steps`` is N / batch tokens (steps that see N tokens).
    """
    want = max(WARMUP_MIN_STEPS, int(math.ceil(n_tokens_steps)),
               int(math.ceil(2.0 / (1.0 - beta2))))
    cap = max(1, int(WARMUP_MAX_FRACTION * total_steps))
    if want <= cap:
        return want, None
    note = f"capped at half of the {total_steps}-step run"
    if cap < WARMUP_MIN_STEPS and lr >= 1e-3:
        note += (f"; {cap} steps is shorter than the 2,000 that kept peak LRs of 4e-3 to "
                 f"8e-3 stable in Wen et al. 2025's sweep, at a peak LR of {lr:.3g}: "
                 "lower the LR or train longer")
    return cap, note


def _target_shape(params, family: str, model_spec):
    """(shape, requested total parameters, where the shape came from)."""
    from advisor.common.numbers import parse_count
    if model_spec is not None:
        from advisor.laws.published import shape_from_spec
        shape = shape_from_spec(model_spec, "model")
        source = ("given architecture (exact counts: matrices, embeddings, norms, biases)"
                  if "norm_params" in model_spec else
                  "given architecture (matrices and embeddings counted; its norm gains and "
                  "biases are not known here, so the count is not exact, under 0.1% low)")
        if params is None:
            return shape, float(shape.params_total), source
        params = parse_count(params, "params", minimum=1e6, maximum=1e14)
        if abs(shape.params_total / params - 1) > 0.1:
            raise AdvisorError(f"--params {params:.4g} and the given architecture "
                               f"({shape.params_total:.4g} parameters) differ by more than "
                               "10%; give one of them")
        return shape, params, source
    if params is None:
        raise AdvisorError("give --params, or the architecture (--hf-config, or --d-model, "
                           "--n-layers and --n-heads)")
    params = parse_count(params, "params", minimum=1e6, maximum=1e14)
    fam = load_family(family)
    return shape_for_params(fam, params), params, (
        f"derived from the {fam.name} family for the requested count: "
        f"{fam.heads_multiple}-multiple heads, depth rule {fam.layer_rule!r}")


def published_rows(params_total: float, tokens: float, lr: float, batch_tokens: float,
                   k_published: int = 3, k_tuned: int = 2,
                   entries=None) -> tuple[PublishedNearest, ...]:
    """What practice used near the target: the nearest published runs and tuned optima.

    Each row carries the entry's values and source (recipes/published/configs.yaml) and
    ``lr_ratio`` / ``batch_ratio``: this recommendation divided by the entry's value.
    ``entries``: the published entries (``advisor.laws.published.load_published()``, read when
    None).
    """
    from advisor.laws.published import nearest
    rows = []
    for kind, k in (("published", k_published), ("tuned_optimum", k_tuned)):
        for e in nearest(params_total, tokens, k=k, kind=kind, entries=entries):
            rows.append(PublishedNearest(
                entry=e, lr_ratio=_sig(lr / e.peak_lr),
                batch_ratio=None if not e.batch_tokens else _sig(batch_tokens / e.batch_tokens)))
    return tuple(rows)


def _range_extra(ls, q, lr, b, loss):
    extra = {"lr": lr, "B_tokens": b} if q == "weight_decay" else {}
    if not ls.has("loss") and loss is not None:
        extra["L"] = loss
    return extra


@dataclass(frozen=True)
class Inputs:
    """Everything :func:`compute` reads, parsed and loaded by :func:`resolve_inputs`.

    ``tokens`` is the parsed training-token count, or None for compute-optimal; ``sets`` the
    shipped law sets (each loaded once); ``published`` the entries of
    recipes/published/configs.yaml; ``base_width`` in channels, ``base_depth`` in blocks.
    """

    seq_len: int
    shape: Shape
    params: float
    shape_source: str
    primary: LawSet
    loss_set: LawSet
    wd_set: LawSet
    tokens_set: LawSet
    default_set: LawSet
    sets: tuple
    published: tuple
    tokens: float | None
    base_width: int
    base_depth: int
    depth_alpha: float
    wd_rule: str
    schedule_law: str | None
    wd_rule_origin: str = ""             # where wd_rule came from (mup_view.resolve_wd_rule)
    wd_rule_warning: str | None = None   # set when --wd-rule contradicts the law set's rule
    fixed: dict = field(default_factory=dict)   # the user's fixed choices (conditional.parse_fixed)
    devices: tuple = (None, None, None)   # advisor.recommendation.batch_plan.parse_device_options
    stability: StabilityInputs | None = None   # advisor.recommendation.stability: architecture, own sweep
    optimizer: str = "adamw"             # adamw | muon (Muon on the hidden matrices)
    muon_convention: str = "match_rms_adamw"

    @property
    def conventions(self) -> Conventions:
        """What the primary law set's LR means (its ``conventions`` and ``mup`` sections), with
        the weight-decay width rule the views apply."""
        return self.primary.proxy_conventions.with_(wd_rule=self.wd_rule)


def resolve_inputs(params=None, tokens=None, seq_len: int = DEFAULT_SEQ_LEN,
                   law: str = DEFAULT_LAW, laws_file=None, family: str = DEFAULT_FAMILY,
                   base_width=None, schedule_law=None, model_spec=None, base_depth=None,
                   depth_alpha=None, wd_rule: str | None = None, devices=None,
                   micro_batch=None, batch_ramp=None,
                   stability: StabilityInputs | None = None, optimizer: str = "adamw",
                   muon_convention: str = "match_rms_adamw", **fixed) -> Inputs:
    """Parse the options and read every file :func:`compute` needs (arguments: see
    :func:`recommend`). Raises AdvisorError (one line) on bad input."""
    from advisor.recommendation.batch_plan import parse_device_options
    device_opts = parse_device_options(devices, micro_batch, batch_ramp)
    from advisor.recommendation.depth_view import DEFAULT_ALPHA, DEFAULT_BASE_DEPTH
    from advisor.common.numbers import parse_count, parse_seq_len
    from advisor.recommendation.mup_view import resolve_wd_rule
    from advisor.laws.published import load_published
    from advisor.recommendation.trust import load_trust
    seq_len = parse_seq_len(seq_len)
    from advisor.recommendation.conditional import load_conditioning, parse_fixed
    fixed = parse_fixed(seq_len, **fixed)
    load_conditioning()
    shape, params, shape_source = _target_shape(params, family, model_spec)
    sets = tuple(load_shipped())
    shipped = {ls.name: ls for ls in sets}
    if laws_file is not None:
        primary = load_lawset_file(laws_file)
    else:
        primary = shipped[law] if law in shipped else load_lawset(law)
    if base_width is None:
        base_width = (primary.mup or {}).get("base_width", DEFAULT_BASE_WIDTH)
    base_width = int(parse_count(base_width, "base-width", minimum=1, maximum=1e6,
                                 example="256 (the proxy's width in channels)"))
    for q in ("learning_rate", "batch_size"):
        if not primary.has(q):
            raise AdvisorError(f"law set {primary.name!r} has no {q} law; choose one that "
                               "has (advisor laws lists them)")
    if tokens is not None:
        tokens = parse_count(tokens, "tokens", minimum=1e3, maximum=1e17)
    base_depth = int(parse_count(DEFAULT_BASE_DEPTH if base_depth is None else base_depth,
                                 "base-depth", minimum=1, maximum=1e4,
                                 example="4 (the proxy's number of blocks)"))
    try:
        alpha = float(DEFAULT_ALPHA if depth_alpha is None else depth_alpha)
    except (TypeError, ValueError):
        raise AdvisorError(f"depth-alpha must be a number, got {depth_alpha!r}") from None
    if optimizer not in ("adamw", "muon"):
        raise AdvisorError(f"optimizer must be adamw or muon, got {optimizer!r}")
    check_muon_convention(muon_convention)
    load_trust()                                   # read once; advisor.recommendation.trust caches it
    wd_rule, wd_origin, wd_warning = resolve_wd_rule(wd_rule, primary.name, primary.wd_rule)
    return Inputs(
        seq_len=seq_len, shape=shape, params=params, shape_source=shape_source,
        primary=primary, loss_set=primary if primary.has("loss") else shipped[DEFAULT_LOSS_LAW],
        wd_set=primary if primary.has("weight_decay") else shipped[DEFAULT_WD_LAW],
        tokens_set=shipped[DEFAULT_LOSS_LAW], default_set=shipped[DEFAULT_LAW], sets=sets,
        published=tuple(load_published()), tokens=tokens, base_width=base_width,
        base_depth=base_depth, depth_alpha=alpha, wd_rule=wd_rule,
        schedule_law=None if schedule_law is None else str(schedule_law),
        wd_rule_origin=wd_origin, wd_rule_warning=wd_warning, fixed=fixed,
        devices=device_opts, stability=stability, optimizer=optimizer,
        muon_convention=muon_convention)


def recommend(params=None, tokens=None, seq_len: int = DEFAULT_SEQ_LEN,
              law: str = DEFAULT_LAW, laws_file=None, family: str = DEFAULT_FAMILY,
              base_width=None, schedule_law=None,
              model_spec=None, base_depth=None, depth_alpha=None,
              wd_rule: str | None = None, batch_tokens=None, batch_size=None, lr=None,
              beta2=None, weight_decay=None, warmup=None, schedule=None, devices=None,
              micro_batch=None, batch_ramp=None,
              stability: StabilityInputs | None = None, optimizer: str = "adamw",
              muon_convention: str = "match_rms_adamw") -> Recommendation:
    """Recommend a training configuration: :func:`resolve_inputs`, then :func:`compute`.

    Any subset of the user's fixed choices may be given; the rest is the optimum given them
    (``advisor.recommendation.conditional``; JSON key ``given``): ``batch_tokens`` (global
    batch, tokens; a whole number of sequences) or ``batch_size`` (sequences of ``seq_len``),
    ``lr`` (peak LR: where it sits relative to the optimum given the batch, and its expected
    loss cost), ``beta2``, ``weight_decay`` (coupled AdamW lambda), ``warmup`` (steps),
    ``schedule`` (a spec such as ``cosine:final=0.1``).

    Args:
        params: total parameters of the target model (embeddings included), e.g. 7e9.
        tokens: training tokens; default: compute-optimal for ``params`` under Epoch AI's
            Chinchilla refit.
        seq_len: tokens per sequence, to express the batch in sequences.
        law: name of a shipped law set for LR and batch size (``advisor laws`` lists them).
        laws_file: path to a law-set YAML (e.g. from ``advisor fit``); overrides ``law``.
        family: target-model family in recipes/families (shape for the parameter count).
        base_width: width (channels) of the muP proxy the muP multipliers are relative to;
            default: the law set's ``mup.base_width`` (``advisor fit`` records the sweep's),
            else DEFAULT_BASE_WIDTH.
        schedule_law: path to a fitted schedule law (``advisor schedule fit``); when given,
            the schedule block comes from ``advisor.schedule.recommend_schedule``.
        model_spec: the real architecture (advisor.specs.modelspec: d_model, n_layers, n_heads,
            n_kv_heads, ffn_hidden, vocab, tied, mlp); its parameter counts replace
            the family's derived shape, and ``params`` may then be omitted.
        base_depth, depth_alpha: blocks of the proxy and the depth exponent of the depth
            view (``advisor.recommendation.depth_view``; defaults 4 and 1.0, CompleteP).
        wd_rule: width rule of the hidden matrices' weight decay in the muP view, a key of
            ``advisor.rules.optim_rules.WD_WIDTH_RULES``; default: the law set's ``mup.wd_rule``
            (``advisor fit`` records its runs' rule), else ``mup`` (as mup.MuAdamW). A rule
            other than the one the law set states is used, with a warning.
        devices, micro_batch: data-parallel devices and sequences per device per micro-step
            (``advisor.recommendation.batch_plan``): the global batch is devices x micro_batch x a whole
            accumulation, the law's batch rounded to it with the cost stated.
        batch_ramp: doublings of a batch warmup ending at the planned batch (Merrill et al.
            2025), or None.
        stability: the stability block's inputs (``advisor.recommendation.stability.StabilityInputs``: the
            architecture's QK-norm fields, a stability sweep summary); default: none known.
        optimizer: ``adamw``, or ``muon`` (Muon on the hidden matrices, AdamW elsewhere: the
            optimizer block of ``advisor.recommendation.muon_view``).
        muon_convention: Muon's width convention (``advisor.rules.optim_rules.MUON_CONVENTIONS``).
    """
    return compute(resolve_inputs(params, tokens, seq_len, law, laws_file, family,
                                  base_width, schedule_law, model_spec, base_depth,
                                  depth_alpha, wd_rule, devices, micro_batch, batch_ramp,
                                  stability=stability, optimizer=optimizer,
                                  muon_convention=muon_convention,
                                  batch_tokens=batch_tokens, batch_size=batch_size, lr=lr,
                                  beta2=beta2, weight_decay=weight_decay, warmup=warmup,
                                  schedule=schedule))


def tokens_step(inp: Inputs) -> tuple[float, str]:
    """(training tokens D, where D came from)."""
    if inp.tokens is not None:
        return inp.tokens, "given (--tokens)"
    ls, total = inp.tokens_set, float(inp.shape.params_total)
    # 4 significant digits: the law's own precision is far coarser than that
    return float(round(_sig(compute_optimal_tokens(total, ls), 4))), (
        f"compute-optimal for {inp.shape.params_total:.4g} parameters under "
        f"{ls.title} ({_citation(ls)})")


def lr_step(inp: Inputs, D: float, extra_L: dict):
    """(the law's LR in its own convention, the hidden matrices' peak LR at the target, N
    used, note): a muP base LR is mapped to the target's groups by :func:`target_step`."""
    primary, shape = inp.primary, inp.shape
    try:
        law_lr, _, n_lr = _predict(primary, "learning_rate", shape, D, inp.seq_len, **extra_L)
    except NotApplicable as exc:
        raise AdvisorError(f"law set {primary.name!r}, learning_rate: {exc}") from None
    at_width = target_step(inp, law_lr)
    return law_lr, at_width["hidden"].lr, n_lr, lr_note(inp, law_lr, at_width)


def target_step(inp: Inputs, law_lr: float, wd: float = 0.0, depth: int | None = None,
                optimizer: str = "adamw"):
    """The target's groups (``advisor.specs.transfer.target_groups``) from an LR in the law's
    convention, under the law's conventions. ``wd``: the coupled lambda of the hidden
    matrices at the target (base weight decay = wd x base_width / d_model, the mup rule's
    relation); ``depth``: scale in depth from the proxy's base depth (the depth view)."""
    conv = inp.conventions
    d = inp.shape.d_model
    if conv.lr == "mup_base":
        base_wd = wd * conv.base_width / d
        if depth is not None:
            conv = conv.with_(base_depth=inp.base_depth, depth_alpha=inp.depth_alpha)
    else:
        base_wd = wd
    return target_groups(conv, law_lr, base_wd, d, depth, optimizer=optimizer,
                         muon_convention=inp.muon_convention if optimizer == "muon" else None)


def lr_note(inp: Inputs, law_lr: float, groups) -> str | None:
    """How a muP base LR became the target's LRs (None for a law that gives the peak LR)."""
    conv, d = inp.conventions, inp.shape.d_model
    if conv.lr != "mup_base":
        return None
    base = float(conv.base_width)
    return (f"{inp.primary.name} gives a muP base LR of {law_lr:.3g} at width {base:g}; "
            f"hidden matrices at width {d} use {law_lr:.3g} * {base:g} / {d}; vector-like "
            f"parameters keep {groups['embedding'].lr:.3g}")


def batch_step(inp: Inputs, D: float, extra_L: dict, fixed_tokens: int | None = None):
    """(batch tokens as the law gives it, sequences after rounding, tokens after rounding,
    a note on the rounding, the batch plan on the devices): ``fixed_tokens`` is the user's
    global batch (tokens, whole sequences), checked against the devices."""
    primary, seq_len = inp.primary, inp.seq_len
    try:
        b_law, _, _ = _predict(primary, "batch_size", inp.shape, D, seq_len, **extra_L)
    except NotApplicable as exc:
        raise AdvisorError(f"law set {primary.name!r}, batch_size: {exc}") from None
    if b_law / seq_len < 0.5:
        raise AdvisorError(
            f"--seq-len {seq_len} is longer than the batch the law gives ({b_law:.3g} tokens): "
            f"one sequence per step would be {seq_len / b_law:.2g}x that batch; use a "
            f"--seq-len of at most {b_law:.3g} tokens")
    seqs, granule = round_batch(b_law / seq_len)
    rounding = (f"{b_law / seq_len:.1f} sequences from the law, rounded to the "
                f"nearest multiple of {granule} ({100 * (seqs * seq_len / b_law - 1):+.1f}%)")
    from advisor.recommendation.batch_plan import plan_batch
    from advisor.recommendation.trust import curvature_batch
    devices, micro, _ = inp.devices
    fixed = None if fixed_tokens is None else int(fixed_tokens) // seq_len
    plan = plan_batch(b_law / seq_len, seq_len, curvature_batch(), devices or 1, micro, fixed,
                      default_sequences=seqs if devices is None else None)
    if plan.global_sequences != seqs:
        seqs, rounding = plan.global_sequences, plan.rounding
    return b_law, seqs, seqs * seq_len, rounding, plan


def weight_decay_step(inp: Inputs, D: float, lr: float, b_tokens: float):
    """(lambda, the Value, coupled?): the weight decay law at this LR and batch."""
    wd_set = inp.wd_set
    wd, _, _ = _predict(wd_set, "weight_decay", inp.shape, D, inp.seq_len, lr=lr,
                        B_tokens=b_tokens)
    coupled = wd_set.conventions.get("weight_decay", "coupled") == "coupled"
    value = Value(
        value=_sig(wd), unit="AdamW weight decay lambda",
        source=f"{wd_set.title} ({_citation(wd_set)})"
        + (", from the AdamW timescale tau = B/(lr lambda D) with the LR and batch above"
           if wd_set.laws["weight_decay"]["form"] == "adamw_timescale" else ""),
        note=("coupled with the LR, as torch.optim.AdamW: each step multiplies weights by "
              f"(1 - lr_t * lambda); at the peak LR that is {lr * wd:.3g} per step" if coupled
              else "independent of the LR: each step multiplies weights by (1 - lambda)"))
    return wd, value, coupled


ADAMW_SOURCE = (
    "beta1 0.9, beta2 0.95, eps 1e-8, clip 1.0: the published runs of "
    "recipes/published/configs.yaml that state them (GPT-3, Pythia, OLMo, "
    "SmolLM2, TinyLlama, LLaMA, DeepSeek LLM use beta 0.9/0.95; eps 1e-8 in "
    "GPT-3, Pythia, SmolLM2, OLMo 2; LLaMA 2 used 1e-5 and StableLM-3B-4E1T "
    "1e-6); below batches of 1M tokens beta2 = 0.95^(B/1M tokens), which keeps "
    "the second-moment half-life in tokens (Marek et al. 2025; Porian et al. "
    "2024 found beta2 0.99-0.999 necessary at small batches)")
LAW_SCHEDULE_CONVERSION = (
    "none: the peak LR is used as the law gives it. No published conversion "
    "of the optimal peak LR from cosine-style decay (Step Law: to a final LR "
    "of 1e-5) to WSD or linear decay to 0 could be checked here; the "
    "evidence behind the interval mixes cosine to 10% (GPT-3, Pythia, "
    "LLaMA, OLMo), WSD/linear to 0 (SmolLM2, Wen et al. 2025) and "
    "multi-step (DeepSeek LLM), so its setup-to-setup term includes that "
    "variation")


def optimizer_step(b_tokens: float) -> OptimizerBlock:
    """AdamW's settings for a batch of ``b_tokens`` tokens."""
    return OptimizerBlock(name="AdamW", beta1=0.9, beta2=round(adam_beta2(b_tokens), 5),
                          eps=1e-8, grad_clip_norm=1.0, source=ADAMW_SOURCE)


def compute(inp: Inputs) -> Recommendation:
    """The recommendation for resolved inputs (pure but for the schedule-law file; see the
    module docstring)."""
    shape, primary, seq_len = inp.shape, inp.primary, inp.seq_len
    loss_set, wd_set, base_width = inp.loss_set, inp.wd_set, inp.base_width
    warnings: list[str] = []

    D, tokens_source = tokens_step(inp)
    warnings.extend(check_target(shape.params_total, D))

    # --- loss
    loss_N = shape.params(loss_set.conventions["params"])
    loss_value = loss_set.predict("loss", loss_N, D)
    extra_L = {} if primary.has("loss") else {"L": loss_value}
    if not primary.has("loss") and any("L" in str(l.get("exponents", {}))
                                       for l in primary.laws.values()):
        warnings.append(f"{primary.name}: a law reads the loss L; using {loss_set.name}'s "
                        f"prediction {loss_value:.3f}, measured on another corpus")

    law_lr, lr, n_lr, lr_text = lr_step(inp, D, extra_L)
    law_hidden_lr = lr
    fixed = inp.fixed or {}
    b_tokens_law, seqs, b_tokens, rounding, plan = batch_step(inp, D, extra_L,
                                                              fixed.get("batch_tokens"))
    from advisor.recommendation import conditional as cnd
    cond_data = cnd.load_conditioning()
    if fixed.get("batch_tokens"):
        rounding = "given (--batch-tokens / --batch-size)"      # the plan checked it
        warnings.extend(cnd.evidence_range_warnings(b_tokens, cond_data))
    cond_lr = cnd.conditioned_lr(lr, b_tokens_law, fixed.get("batch_tokens"), primary.name,
                                 cnd.DEFAULT_CONDITIONED_LAW, cond_data)
    lr_opt = lr = cond_lr["lr"]
    if cond_lr["outside_ridge"]:
        warnings.append(f"the batch lies {cond_lr['batch_offset_oct']:+.1f} octaves from the "
                        "law's optimum, beyond the ridge measured on Step Law's grid (+-3 "
                        "octaves): the LR given it is extrapolated")
    if fixed.get("lr") is not None:
        lr = fixed["lr"]
    wd, wd_value, coupled = weight_decay_step(inp, D, lr, b_tokens)
    if fixed.get("weight_decay") is not None:
        wd = fixed["weight_decay"]
        wd_value = Value(wd, "AdamW weight decay lambda", "given (--weight-decay)",
                         note=("coupled with the LR, as torch.optim.AdamW: each step "
                               f"multiplies weights by (1 - lr_t * lambda); at the peak LR "
                               f"that is {lr * wd:.3g} per step"))
        coupled = True
    optimizer = optimizer_step(b_tokens)
    beta2_rec = optimizer.beta2
    if fixed.get("beta2") is not None:
        from dataclasses import replace as _replace
        optimizer = _replace(optimizer, beta2=fixed["beta2"],
                             source="beta2 given (--beta2); " + optimizer.source)

    # --- steps and warmup
    total = int(math.ceil(D / b_tokens))
    warm, warm_note = warmup_steps_for(lr, total, shape.params_total / b_tokens,
                                       optimizer.beta2)
    warm_source = WARMUP_SOURCE
    if fixed.get("warmup") is not None:
        rule_warm = warm
        warm, warm_source = fixed["warmup"], "given (--warmup)"
        warm_note = f"the rule ({WARMUP_MIN_STEPS:,}+ steps, see docs) gives {rule_warm}"
        if warm < min(rule_warm, WARMUP_MIN_STEPS) and lr >= 1e-3:
            warnings.append(
                f"warmup: {warm} steps at a peak LR of {lr:.3g} is shorter than the 2,000 "
                "that kept peak LRs of 4e-3 to 8e-3 stable in Wen et al. 2025's sweep "
                f"(500-1,000 diverged); the rule gives {rule_warm}")
    if warm_note and "shorter than" in warm_note:
        warnings.append(f"warmup: {warm_note}")
    warmup = Value(warm, "optimizer steps (linear from 0 to the peak LR)",
                   warm_source, note=warm_note)
    warnings.extend(check_plausible({"warmup_steps": warm}))
    warnings.extend(check_plausible({
        "learning_rate": lr, "weight_decay": wd,
        "decay_per_step": lr * wd if coupled else wd, "batch_size_tokens": b_tokens,
        "total_steps": total}))
    total_steps = Value(total, "optimizer steps",
                        f"ceil(tokens / batch) = ceil({D:.4g} / {b_tokens})")

    schedule = schedule_step(total, warm, lr, inp.schedule_law, LawSchedule(
        law=primary.name, measured_under=primary.conventions.get("schedule"),
        conversion=LAW_SCHEDULE_CONVERSION), fixed_spec=fixed.get("schedule"))
    # every group's LR and weight decay, mapped once from the law's convention: a muP base LR
    # moved by the factor the conditioning (or a fixed --lr) moved the hidden LR; a peak LR
    # as stated. Every view reads these groups.
    mup_base = inp.conventions.lr == "mup_base"
    view_lr = law_lr * (lr / law_hidden_lr) if mup_base else _sig(lr)
    groups = target_step(inp, view_lr, _sig(wd))
    mup = mup_view(shape.d_model, shape.head_dim, base_width, _sig(lr), _sig(wd), inp.wd_rule,
                   origin=inp.wd_rule_origin or None, groups=groups if mup_base else None)
    if inp.wd_rule_warning:
        warnings.append(inp.wd_rule_warning)
    if mup_base and base_width != inp.conventions.base_width:
        warnings.append(
            f"--base-width {base_width}: law set {primary.name}'s LR is a muP base LR at "
            f"width {inp.conventions.base_width}; the muP and depth views' multipliers are "
            f"relative to width {base_width}, every LR and weight decay follows the law's "
            f"width {inp.conventions.base_width}")
    from advisor.recommendation.depth_view import depth_view
    depth = depth_view(shape.n_layers, inp.base_depth, inp.depth_alpha,
                       shape.d_model / base_width,
                       target_step(inp, view_lr, _sig(wd), shape.n_layers) if mup_base
                       else None, wd_rule=inp.wd_rule)

    # --- warnings: ranges and disagreement
    for ls, q, extra in ((primary, "learning_rate", extra_L), (primary, "batch_size", extra_L),
                         (wd_set, "weight_decay", {"lr": lr, "B_tokens": b_tokens}),
                         (loss_set, "loss", {})):
        for note in ls.out_of_range(q, shape.params(ls.conventions["params"]), D,
                                    M=shape.flops_per_token(seq_len), W=float(shape.d_model),
                                    **extra):
            warnings.append(f"{ls.name} {q}: target outside the fitted range: {note}")
    rows = law_table(shape, D, seq_len, loss=loss_value, sets=list(inp.sets),
                     default=inp.default_set)
    warnings.extend(disagreement_warnings(rows, primary.name, {"learning_rate": lr,
                                                               "batch_size_tokens": b_tokens}))

    law_info = LawInfo(
        name=primary.name, title=primary.title, citation=_citation(primary),
        url=primary.source.get("url"), file=primary.path, conventions=dict(primary.conventions),
        used_for={"learning_rate": primary.name, "batch_size": primary.name,
                  "weight_decay": wd_set.name, "loss": loss_set.name,
                  "tokens": inp.tokens_set.name if inp.tokens is None else "given"})
    model = ModelShape.of(
        shape,
        params_for_laws=ParamsForLaws(n_lr, primary.conventions["params"]),
        shape_source=inp.shape_source,
        size_error=SizeError(value=round(shape.params_total / inp.params - 1.0, 4),
                             unit="fraction: params_total / requested - 1",
                             requested=_count(inp.params)))
    # counts as whole numbers (tokens_step rounds a compute-optimal D to 4 significant
    # digits): no 139272622563.6487 tokens in a config
    target = Target(params_total=_count(inp.params),
                    tokens=Value(_count(D), "training tokens", tokens_source),
                    tokens_per_param=_sig(D / shape.params_total, 4), seq_len=seq_len)
    nearest_rows = published_rows(float(shape.params_total), D, lr, b_tokens,
                                  entries=inp.published)
    from advisor.recommendation.trust import excess_loss_block, quantity_uncertainty
    law_vars = primary.variables(n_lr, D, M=shape.flops_per_token(seq_len),
                                 W=float(shape.d_model), **extra_L)
    parts = {}
    for q, key, value in (("learning_rate", "learning_rate", lr),
                          ("batch_size", "batch_size_tokens", b_tokens_law)):
        others = {r["law"]: r[key] for r in rows if r[key] is not None and r[key] > 0}
        parts[key] = quantity_uncertainty(primary, q, value, law_vars, others,
                                          TRUST_FALLBACK_LAW)
    unc = cnd.with_conditioned_lr(Uncertainty(**parts), lr_opt, cond_lr,
                                  cnd.batch_sd(cond_data, primary.name))
    lr_int = tuple(unc.learning_rate.interval_95)
    b_int = tuple(unc.batch_size_tokens.interval_95)
    if unc.learning_rate.width_factor > 6.0:
        warnings.append(
            f"the peak LR is uncertain by a factor of {unc.learning_rate.width_factor:.0f}"
            f" (95% interval {lr_int[0]:.3g}-{lr_int[1]:.3g}): independent setups put their "
            "optimum or choice that far apart (docs/trust.md); expected_excess_loss says what "
            "calibrating would save")
    excess = excess_loss_block(float(shape.params_non_embedding), D, shape,
                               unc.learning_rate.sd_ln, unc.batch_size_tokens.sd_ln)
    given = cnd.given_block(
        fixed, lr_opt=lr_opt, lr_sd_ln=unc.learning_rate.sd_ln, batch=b_tokens,
        b_opt=b_tokens_law, cond_info=cond_lr, curvature_lr=excess.curvature_lr.value,
        curvature_batch=excess.curvature_batch.value, beta2=optimizer.beta2,
        beta2_rec=beta2_rec, wd=wd, tokens=D, total_steps=total, eps=optimizer.eps,
        width_mult=shape.d_model / base_width)
    if given.lr is not None and not given.lr.inside_80:
        warnings.append(f"--lr {fixed['lr']:g} lies {given.lr.octaves_from_optimum:+.2f} "
                        f"octaves from the optimum given the rest ({lr_opt:.3g}), outside its "
                        f"80% interval; expected cost {given.lr.expected_cost_nats:.3g} "
                        "nats per token")
    rec = Recommendation(
        published_nearest=nearest_rows, uncertainty=unc, expected_excess_loss=excess,
        target=target, model=model,
        learning_rate=Value(_sig(lr), "peak LR (AdamW)",
                            f"{primary.title} ({_citation(primary)}) at "
                            + (f"width W = {shape.d_model}" if "W" in primary.laws[
                                "learning_rate"].get("exponents", {}) else
                               f"N = {n_lr:.4g} ({primary.conventions['params']})")
                            + f", D = {D:.4g}" + ("" if not fixed.get("batch_tokens") else
                                                  ", moved along the Step Law ridge to the "
                                                  "given batch"),
                            note=(lr_text if fixed.get("lr") is None else
                                  f"given (--lr); the optimum given the rest is {lr_opt:.3g}"),
                            interval_95=lr_int,
                            interval_80=tuple(unc.learning_rate.interval_80)),
        weight_decay=wd_value,
        batch_size_tokens=Value(b_tokens, "tokens per optimizer step",
                                f"{primary.title}: {b_tokens_law:.4g} tokens, rounded to "
                                "whole sequences" if not fixed.get("batch_tokens") else
                                f"given; {primary.title} gives {b_tokens_law:.4g} tokens",
                                interval_95=b_int,
                                interval_80=tuple(unc.batch_size_tokens.interval_80)),
        batch_size_sequences=Value(seqs, f"sequences of {seq_len} tokens", "batch_size_tokens "
                                   "/ seq_len", note=rounding),
        optimizer=optimizer, warmup_steps=warmup, total_steps=total_steps, schedule=schedule,
        mup=mup,
        predicted_loss=Value(round(loss_value, 4), loss_set.laws["loss"].get("unit",
                                                                            "nats/token"),
                             f"{loss_set.title} ({_citation(loss_set)}) at N = {loss_N:.4g}, "
                             f"D = {D:.4g}",
                             note="a loss on the law's own corpus and tokenizer; compare "
                                  "across runs of one setup only"),
        law=law_info, warnings=warnings, depth=depth, given=given,
        batch_plan=_plan_views(inp, plan, rows, D, warnings),
        stability=stability_block(_sig(lr), float(shape.params_non_embedding), shape.d_model,
                                  warm, total, optimizer.eps, inp.stability),
        transfer=groups)
    if inp.optimizer == "muon":
        from advisor.recommendation.muon_view import with_muon
        rec = with_muon(rec, inp.muon_convention)
    return rec


def _plan_views(inp: Inputs, plan, rows: list, D: float, warnings: list):
    """The batch plan with its critical-batch view (Kaplan's law, the one shipped law of the
    critical batch) and, when asked, its batch ramp; adds the plan's warnings."""
    import dataclasses
    from advisor.recommendation.batch_plan import batch_ramp, critical_batch_view, rounding_warning
    note = rounding_warning(plan)
    if note and not (inp.fixed or {}).get("batch_tokens"):   # a fixed batch: priced in `given`
        warnings.append(note)
    crit = next((r for r in rows if r.get("critical_batch_size_tokens")), None)
    view = None if crit is None else critical_batch_view(
        plan, crit["critical_batch_size_tokens"],
        f"law set {crit['law']} ({crit['title']}) at this target: B_crit(L) with L from its "
        "own loss law on its own corpus; one law, not a measurement on your data")
    ramp = None
    if inp.devices[2] is not None:
        if crit is None:
            raise AdvisorError("--batch-ramp needs a critical-batch law; none is shipped")
        ls = next(s for s in inp.sets if s.name == crit["law"])
        n = inp.shape.params(ls.conventions["params"])
        ramp = batch_ramp(plan, inp.devices[2], D,
                          lambda d: ls.predict("critical_batch_size", n, d))
    return dataclasses.replace(plan, critical=view, ramp=ramp)


def _sig(x: float, digits: int = 3) -> float:
    return float(f"{x:.{digits}g}")


def _count(x: float):
    """A count (parameters, tokens) as an int when it is whole, else as given."""
    return int(x) if float(x).is_integer() else x


WSD_SOURCE = ("WSD with a 20% 1-sqrt cooldown to zero: matches cosine at a fixed budget "
              "and lets one run branch cooldowns from its stable phase (Hagele et al. "
              "2024); long or to-zero decays help more at high tokens per parameter "
              "(Bergsma et al. 2025). Fit a schedule law for a measured choice.")


def _schedule_fields(sched: Schedule, total: int, warm: int, lr: float) -> dict:
    """The ScheduleBlock fields that say what ``sched`` is, with the rule's warmup ``warm``
    (steps) in a run of ``total`` steps at peak LR ``lr``."""
    s = sched.with_(warmup=warm)
    wsd = s.family == "wsd"
    return dict(family=s.family, spec=s.to_spec(), warmup_steps=warm,
                decay_start_step=s.decay_start(total),
                cooldown_fraction=s.cooldown if wsd else None,
                cooldown_shape=s.shape if wsd else None, final_lr=_sig(lr * s.final_ratio))


def schedule_step(total: int, warm: int, lr: float, schedule_law,
                  law_schedule: LawSchedule, fixed_spec: str | None = None) -> ScheduleBlock:
    """The schedule: WSD with a 20% 1-sqrt cooldown (cosine to 10% the alternative), or, with
    ``schedule_law`` (a path), the schedule a fitted schedule law predicts best; ``total`` and
    ``warm`` in optimizer steps, ``lr`` the peak LR."""
    if schedule_law is not None:
        from advisor.rules.lr_schedule import parse_schedule
        from advisor.schedule import recommend_schedule
        fitted = recommend_schedule(schedule_law, total, peak_lr=lr)
        return ScheduleBlock(
            **_schedule_fields(parse_schedule(fitted.schedule), total, warm, lr),
            fitted=FittedSchedule(
                predicted_final_loss=fitted.predicted_final_loss,
                predicted_final_loss_interval=fitted.final_loss_interval,
                interval_reason=fitted.interval_reason,
                gain_over_cosine_nats=fitted.gain_over_cosine_nats,
                cooldown_band=fitted.cooldown_band, branch_points=fitted.branch_points,
                law_warmup_steps=fitted.warmup_steps, notes=fitted.notes),
            source=(f"fitted schedule law {schedule_law} ({fitted.law}), the schedule "
                    "with the lowest predicted final loss (advisor schedule optimize); "
                    "warmup from the rule above, not from the law"),
            alternative=AlternativeSchedule(family="cosine", spec=fitted.cosine_reference,
                                            note="cosine to 10% of the peak, the law's "
                                                 "reference"),
            law_schedule=law_schedule)
    wsd = Schedule(family="wsd", warmup=warm, cooldown=0.2, shape="1-sqrt", final=0.0)
    cos = Schedule(family="cosine", warmup=warm, final=0.1)
    if fixed_spec is not None:
        from advisor.rules.lr_schedule import parse_schedule
        return ScheduleBlock(
            **_schedule_fields(parse_schedule(fixed_spec), total, warm, lr),
            source="given (--schedule)",
            alternative=AlternativeSchedule(family="wsd", spec=wsd.to_spec(),
                                            note="the default: " + WSD_SOURCE),
            law_schedule=law_schedule)
    return ScheduleBlock(
        family="wsd", spec=wsd.to_spec(), warmup_steps=warm,
        decay_start_step=wsd.decay_start(total), cooldown_fraction=0.2,
        cooldown_shape="1-sqrt", final_lr=0.0, source=WSD_SOURCE,
        alternative=AlternativeSchedule(family="cosine", spec=cos.to_spec(),
                                        final_lr=_sig(lr * 0.1),
                                        note="cosine to 10% of the peak over the whole run"),
        law_schedule=law_schedule)
