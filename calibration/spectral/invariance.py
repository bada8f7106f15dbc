"""The spectral width-invariance check behind ``advisor check-spectral``.

Train a model family for a few steps at three or more widths on real text (the Python
standard library's source bytes, ``calibration.train.data``), measure per layer

- ``act_rms``: RMS of the layer's output on a fixed probe batch after training;
- ``act_delta``: RMS of its change since initialisation on the same batch (the coordinate
  check's quantity: muP keeps it Theta(1) at every width);
- ``attn_delta`` / ``attn_rms``: the same for the attention logits scale * q k^T;
- ``attn_scale``: the attention scale times d_head read from the logits at initialisation
  (``probes.attention_scale_stat``): constant in width under muP's 1/d_head, growing as
  sqrt(d_head) under 1/sqrt(d_head) when the head size grows; two-sided, and nearly free of
  seed noise, so it catches a wrong attention scale that 20 steps have not yet shown;
- ``update_op``: the kind-appropriate operator norm of the effective weight's change over
  the probe (sigma_max of dW on the Yang-Simon-Bernstein scale);
- ``weight_op``: the same norm of the effective weight itself,

and fit, per (layer, statistic), the slope of log(statistic) against log(width) over
every (width, seed) point, with a t confidence interval (:mod:`calibration.spectral.verdict`).
muP predicts slope 0. A row passes when its interval lies inside the band [-tol, tol]
(default 0.3: over widths 64-256 a factor 1.5), fails when the interval lies wholly outside,
and is inconclusive when it straddles an edge.

One-sided rules (only growth fails):

- the output side's activations and weight level (logits, readout): muP initialises them
  below their natural scale (MuReadout divides by m) so they shrink with width;
- the trained attention logits (``attn_rms``, ``attn_delta``): muP's 1/d_head scale starts
  them near zero and they grow only slowly in the first steps at larger head sizes;
- the activations of hidden layers. Issue 15's false alarm (a correct muP GPT with 4 fixed
  heads: the first block's attention output ``act_rms`` slope -0.31) is a finite-width
  effect: at the smallest head sizes the init part of q.k (which falls as d_head^-1/2 under
  1/d_head scaling) makes attention more concentrated, so the attention output and what it
  feeds are larger at small width. Measured here (4 seeds, widths 64-1024, 20 steps at LR
  1e-2): the first block's attention-output RMS was 0.92, 0.54, 0.50, 0.51, 0.45 and
  sqrt(sum p^2) of its attention 0.43, 0.35, 0.29, 0.28, 0.27: the fall is at 64 -> 128 and
  stops by d_head = 64 (docs/spectral-check.md). Its sign is known (more concentrated at
  smaller width), so shrinking hidden activations are not flagged; growing ones are. The
  mistakes that shrink something (an embedding LR divided by m, a doubly divided hidden LR)
  show in the two-sided ``update_op`` and ``weight_op`` rows.

The readout's update and every weight statistic of hidden and input layers stay two-sided.

Corroborating rows (:func:`corroborating`): the trained attention logits and the hidden
activations are downstream of the per-parameter statistics and noisy across seeds at these
widths (intervals of +-0.2 to +-0.45 at 4 seeds, 20 steps of LR 1e-2). They FAIL when their
interval lies wholly outside the band and pass otherwise: they never make a result
inconclusive. The attention scale is read, nearly noise-free, by ``attn_scale``.

Replicate s seeds torch with seed + s before the factory and trains on its own batches; every
width of a replicate sees the same batches and probe. A factory that seeds torch itself is
re-seeded per replicate (:func:`calibration.spectral.contract.reseeded`); rows identical at
every replicate are deterministic and exact (:func:`verdict.fit_slope`); an inconclusive
result gets more replicates, up to ``max_seeds``, when they could settle it. What the check
feeds the model and reads from it is the contract of :mod:`calibration.spectral.contract`
(layout, output forms, hooks, LR scales); the readout is judged from the logits
(:func:`probes.readout_scales`) and attention from any implementation
(:mod:`calibration.spectral.attention`). A factory that returns no optimizer is trained with torch's AdamW at ``lr`` (2^-10 by default, small so
that 20 steps stay in the early regime muP describes). Units: widths in channels, steps are
optimizer steps of ``batch`` sequences of ``seq_len`` tokens.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from advisor.errors import AdvisorError
from calibration.spectral.verdict import (FAIL, INCONCLUSIVE, PASS, fit_slope, judge, overall,
                                          seeds_to_settle)

DEFAULT_TOL = 0.3
DEFAULT_SEEDS = 4
DEFAULT_CONFIDENCE = 0.95
LEVEL_STATS = {"act_rms", "weight_op", "attn_rms"}


def corroborating(statistic: str, kind: str) -> bool:
    """Rows that can FAIL but are never left inconclusive: the trained attention logits and
    the activations of hidden layers. They are downstream of the per-parameter statistics
    (weights, updates, attention scale), noisy across seeds (intervals of +-0.2 to +-0.45 at
    4 seeds here) and carry the finite-width attention effect of issue 15; a clear violation
    in them still fails the check."""
    return statistic in ("attn_rms", "attn_delta") or (kind == "hidden"
                                                       and statistic.startswith("act_"))
EXIT = {PASS: 0, FAIL: 1, INCONCLUSIVE: 3}


@dataclass
class Row:
    layer: str
    statistic: str
    slope: float
    verdict: str                       # "pass" | "FAIL" | "inconclusive"
    values: list[float] = field(default_factory=list)   # geometric means over seeds
    rule: str = "|slope| <= tol"
    lo: float = -math.inf              # confidence interval of the slope
    hi: float = math.inf
    kind: str = "hidden"               # hidden | input | readout | act | attention | logits
    seeds_needed: int | None = None    # replicates that would settle an inconclusive row

    def to_dict(self):
        return asdict(self)


@dataclass
class CheckResult:
    widths: list[int]
    steps: int
    tol: float
    rows: list[Row]
    seeds: int = 1
    confidence: float = DEFAULT_CONFIDENCE
    distinct_seeds: int = 1            # replicates with different initial weights
    defect: str | None = None          # a mistake found before any measurement (e.g. no infshape)
    width_mults: dict = field(default_factory=dict)   # width -> largest mup width multiplier
    defect_cause: str | None = None    # the blame cause of ``defect``
    muon_layers: list = field(default_factory=list)   # layers whose weight Muon steps
    notes: list = field(default_factory=list)          # what the report says besides rows
    layout: str = "batch-first"                         # how the model was fed
    attention: list = field(default_factory=list)      # attention kinds seen (sdpa, softmax, ...)
    max_seeds: int | None = None                        # replicates the check could add

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == FAIL]

    @property
    def inconclusive(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == INCONCLUSIVE]

    @property
    def status(self) -> str:
        if self.defect:
            return FAIL
        return overall(r.verdict for r in self.rows)

    @property
    def passed(self) -> bool:
        return self.status == PASS

    @property
    def exit_code(self) -> int:
        return EXIT[self.status]

    def causes(self):
        from calibration.spectral.blame import blame
        return blame(self)

    def suggestion(self) -> str:
        """What would settle an inconclusive result (the check has already added replicates
        up to ``max_seeds`` where that was measured to be enough)."""
        if self.status != INCONCLUSIVE:
            return ""
        need = [r.seeds_needed for r in self.inconclusive]
        parts = []
        if all(n is not None for n in need):
            parts.append(f"rerun with --seeds {max(need)} (from the measured scatter, with "
                         "the t quantile of that many seeds)")
        else:
            parts.append("some slopes sit on the edge of the band: more seeds alone will not "
                         "settle them")
        lo = self.widths[0]
        parts.append(f"or widen the width range (e.g. --widths {lo},{lo * 4},{lo * 16}, "
                     "which also shrinks finite-width effects of the smallest width)")
        return "; ".join(parts)

    def to_dict(self):
        return {"widths": self.widths, "steps": self.steps, "tol": self.tol,
                "seeds": self.seeds, "distinct_seeds": self.distinct_seeds,
                "confidence": self.confidence, "status": self.status,
                "width_mults": {str(w): m for w, m in self.width_mults.items()},
                "muon_layers": list(self.muon_layers), "notes": list(self.notes),
                "layout": self.layout, "attention": list(self.attention),
                "passed": self.passed, "exit_code": self.exit_code, "defect": self.defect,
                "failed_layers": sorted({r.layer for r in self.failed}),
                "inconclusive_layers": sorted({r.layer for r in self.inconclusive}),
                "causes": [c.to_dict() for c in self.causes()],
                "suggestion": self.suggestion(),
                "rows": [r.to_dict() for r in self.rows]}

    def table(self, only_failures: bool = False) -> str:
        rows = [r for r in self.rows if r.verdict != PASS] if only_failures else self.rows
        w = max([len(r.layer) for r in rows] + [5])
        head = (f"{'layer':<{w}}  {'statistic':<10} {'slope':>7}  {'interval':<16} "
                f"{'verdict':<12}  values at widths {self.widths}")
        lines = [head, "-" * len(head)]
        for r in rows:
            vals = " ".join(f"{v:.3g}" for v in r.values)
            ci = f"[{r.lo:+.2f}, {r.hi:+.2f}]"
            lines.append(f"{r.layer:<{w}}  {r.statistic:<10} {r.slope:>+7.3f}  {ci:<16} "
                         f"{r.verdict:<12}  {vals}")
        n_fail, n_inc = len(self.failed), len(self.inconclusive)
        lines.append(f"{len(self.rows) - n_fail - n_inc} of {len(self.rows)} pass, {n_fail} fail, "
                     f"{n_inc} inconclusive (tol {self.tol} on the log-log slope, "
                     f"{self.confidence:.0%} intervals over {self.seeds} seeds)")
        return "\n".join(lines)

    def report(self, only_failures: bool = True) -> str:
        """Causes first (one line each, with layer names), then the table, then the verdict."""
        out = []
        if self.defect:
            return "\n".join(["causes, most upstream first:", f"  1. {self.defect}",
                              f"FAIL: {self.defect_cause or 'defect'}"])
        causes = self.causes()
        if causes:
            out.append("causes, most upstream first:")
            for i, c in enumerate(causes, 1):
                out.append(f"  {i}. {c.line()}")
            out.append("")
        for note in self.notes:
            out.append(f"note: {note}")
        out.append(self.table(only_failures=only_failures and self.status != PASS))
        status = self.status
        if status == PASS:
            out.append("PASS")
        elif status == FAIL:
            out.append(f"FAIL: {', '.join(sorted({r.layer for r in self.failed}))}")
        else:
            out.append(f"INCONCLUSIVE: {', '.join(sorted({r.layer for r in self.inconclusive}))}"
                       f"; {self.suggestion()}")
        return "\n".join(out)


# --------------------------------------------------------------------------------------
# Pure parts: which rule applies
# --------------------------------------------------------------------------------------

def one_sided(layer: str, statistic: str, kind: str) -> bool:
    """True where only growth is a violation (see the module docstring): the output side's
    levels and activations, the attention logits, and the activations of hidden layers
    (fed by attention, whose finite-width correction makes them larger at small widths)."""
    output_side = kind == "readout" or layer == "logits"
    return bool((output_side and (statistic.startswith("act_") or statistic in LEVEL_STATS))
                or statistic in ("attn_rms", "attn_delta")
                or (kind == "hidden" and statistic.startswith("act_")))


def verdict(layer: str, statistic: str, kind: str, slope: float, tol: float) -> tuple[str, str]:
    """(verdict, rule) for one exactly known slope (no interval)."""
    if one_sided(layer, statistic, kind):
        return (PASS if slope <= tol else FAIL), "slope <= tol (may shrink)"
    return (PASS if abs(slope) <= tol else FAIL), "|slope| <= tol"


def classify(shapes: dict[int, dict[str, tuple]]) -> dict[str, str]:
    """Layer kind from how a (fan_out, fan_in) weight's shape changes with width:
    both sides grow -> hidden; only fan_out grows -> input; only fan_in grows -> readout."""
    ws = sorted(shapes)
    a, b = shapes[ws[0]], shapes[ws[-1]]
    kinds = {}
    for name in a:
        (o1, i1), (o2, i2) = a[name], b.get(name, a[name])
        grows_out, grows_in = o1 != o2, i1 != i2
        kinds[name] = ("hidden" if grows_out and grows_in else "input" if grows_out
                       else "readout" if grows_in else "fixed")
    return kinds


# --------------------------------------------------------------------------------------
# Factories and data
# --------------------------------------------------------------------------------------

def load_factory(spec: str) -> Callable:
    """'package.module:function' -> the function (AdvisorError if it cannot be found)."""
    from calibration.model.factory import load_callable

    return load_callable(spec)


def family_factory(name: str, depth: int = 2, **overrides) -> Callable:
    """A factory over the project's proxy family (calibration.model.proxy), with model overrides
    (parameterization, attn_scale, readout, n_heads, ...) and ``optimizer`` ("muadamw" |
    "adamw"), ``lr``, ``weight_decay`` and ``wd_rule`` (hidden matrices only, see
    :func:`calibration.spectral.wd_rules.apply_wd_rule`)."""
    from calibration.model.proxy import ProxyConfig, build_model, build_optimizer

    kind = overrides.pop("optimizer", "muadamw")
    lr = overrides.pop("lr", 2 ** -10)
    wd = overrides.pop("weight_decay", 0.0)
    wd_rule = overrides.pop("wd_rule", "mup")
    ProxyConfig.from_family(name, width=128, depth=depth, **overrides)   # validate early

    def factory(width: int):
        cfg = ProxyConfig.from_family(name, width=width, depth=depth, **overrides)
        model = build_model(cfg)            # seeded by the check, per replicate
        opt = build_optimizer(model, cfg, lr=lr, weight_decay=0.0, kind=kind)
        if wd:
            from calibration.spectral.wd_rules import apply_wd_rule
            apply_wd_rule(opt, wd, wd_rule)
        return model, opt

    factory.__name__ = f"{name}-family"
    return factory


def text_batches(n_batches: int, batch: int, seq_len: int, seed: int = 0):
    """``n_batches`` (inputs, targets) LongTensor pairs of real text (stdlib source bytes)."""
    from calibration.spectral.contract import Contract
    from calibration.spectral.contract import text_batches as _tb
    return _tb(n_batches, Contract(batch=batch, seq_len=seq_len, vocab=256), seed)


# --------------------------------------------------------------------------------------
# Measurement at one width
# --------------------------------------------------------------------------------------

def build_at_width(factory: Callable, width: int, lr: float, replicate: int = 0,
           lr_scale_key: str | None = None):
    """(model, optimizer, seeds the factory asked for, groups with an LR scale)."""
    import torch

    from calibration.spectral.contract import apply_lr_scales, reseeded

    with reseeded(replicate) as asked:
        made = factory(width)
    if isinstance(made, tuple):
        if len(made) != 2:
            raise AdvisorError("a factory must return a model or a (model, optimizer) pair")
        model, opt = made
    else:
        model, opt = made, None
    if not isinstance(model, torch.nn.Module):
        raise AdvisorError(f"the factory returned {type(model).__name__}, not a torch.nn.Module")
    if opt is None:
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    scaled = apply_lr_scales(opt, lr_scale_key) if lr_scale_key else 0
    return model, opt, asked, scaled


def measure_width(factory: Callable, width: int, steps: int, batches, probe, lr: float = 2 ** -10,
                  seed: int = 0, replicate: int = 0, contract=None,
                  layout: str | None = None) -> tuple[dict, dict]:
    """Train a fresh model of ``width`` for ``steps`` steps on ``batches`` (cycled; or a
    function step -> batch) and return ({(layer, statistic): value}, {what else was seen:
    shapes, matrices before and after, multipliers, layout, attention, seeding})."""
    import torch

    from calibration.spectral import probes
    from calibration.spectral.contract import (Adapted, Contract, call_loss, detect_layout)

    contract = contract or Contract()
    torch.manual_seed(seed)
    model, opt, asked, scaled = build_at_width(factory, width, lr, replicate, contract.lr_scale_key)
    model.train()
    x_probe = probe[0]
    if not any(True for _ in model.parameters()):
        raise AdvisorError("the model has no parameters")
    lm = contract.loss_fn is None
    if layout is None:
        layout = (detect_layout(model, x_probe, contract.vocab)
                  if lm and contract.layout == "auto" and contract.batch_fn is None
                  else "batch-first" if contract.layout == "auto" else contract.layout)
    call = Adapted(model, layout)
    before = probes.record(model, x_probe, call)
    logits = before["logits"]
    if lm and (logits.ndim != 3 or tuple(logits.shape[:2]) != tuple(x_probe.shape[:2])):
        raise AdvisorError(f"the model maps {tuple(x_probe.shape)} token ids to logits of shape "
                           f"{tuple(logits.shape)}; expected (batch, seq, vocab) (see --layout, "
                           "or give a --loss hook for a model that is not a language model)")
    w0 = probes.matrices(model)
    for step in range(steps):
        x, y = batches(step) if callable(batches) else batches[step % len(batches)]
        loss = call_loss(contract, call, x, y)
        if not torch.isfinite(loss):
            raise AdvisorError(f"width {width}: loss became {loss.item()} at step {step + 1}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    after = probes.record(model, x_probe, call)
    w1 = probes.matrices(model)
    scales = probes.readout_scales(model, after)

    stats = {}
    for name, a1 in after["acts"].items():
        a0 = before["acts"].get(name)
        stats[(name, "act_rms")] = probes.rms(a1)
        if a0 is not None and a0.shape == a1.shape:
            stats[(name, "act_delta")] = probes.rms(a1 - a0)
    for name, meta in before["attn_meta"].items():
        v = probes.attention_scale_stat(meta)
        if v is not None:
            stats[(name, "attn_scale")] = v
    for name, a1 in after["attn"].items():
        a0 = before["attn"].get(name)
        stats[(name, "attn_rms")] = probes.rms(a1)
        if a0 is not None and a0.shape == a1.shape:
            stats[(name, "attn_delta")] = probes.rms(a1 - a0)
    shapes = {n: tuple(m.shape) for n, m in w1.items()}
    digest = tuple(round(float(m.double().sum()), 9) for m in w0.values())
    return stats, {"shapes": shapes, "w0": w0, "w1": w1, "width_mult": _mup_width_mult(model),
                   "muon_layers": muon_layers(model, opt), "layout": layout,
                   "declared": probes.declared_multipliers(model),
                   "overrides": {n for n, m in probes.weight_modules(model).items()
                                 if hasattr(m, "spectral_multiplier")},
                   "readout": {n: v[1] for n, v in scales.items()},
                   "readout_act": {n: abs(v[0]) for n, v in scales.items()},
                   "attention_kinds": sorted({m["kind"] for m in before["attn_meta"].values()}),
                   "attention_modules": ([] if before["attn_meta"] else
                                         _attention_like(model)),
                   "seeds_asked": list(asked), "lr_scaled_groups": scaled, "init": digest}


def _attention_like(model) -> list[str]:
    from calibration.spectral.attention import has_attention
    return has_attention(model)


def muon_layers(model, opt) -> list[str]:
    """Names of the modules whose 2-D weight the optimizer steps with Muon: a parameter group
    with Newton-Schulz settings (``ns_steps``, as torch.optim.Muon's groups have) and no Adam
    ``betas``. ``opt.param_groups`` may list several optimizers' groups
    (calibration.model.proxy.MuonWithAdamW)."""
    from calibration.spectral import probes

    on_muon = {id(p) for g in getattr(opt, "param_groups", []) if "ns_steps" in g
               and "betas" not in g for p in g["params"]}
    return sorted(n for n, m in probes.weight_modules(model).items() if id(m.weight) in on_muon)


def _mup_width_mult(model) -> float | None:
    """The largest width multiplier mup's infshapes give the model's parameters (None when
    the model has no infshapes)."""
    mults = []
    for p in model.parameters():
        inf = getattr(p, "infshape", None)
        if inf is not None:
            mults.append(float(inf.width_mult()) if inf.ninf() > 0 else 1.0)
    return max(mults) if mults else None


class ModelDefect(Exception):
    """A muP mistake that stops the model before anything can be measured."""


def _defect_of(exc: BaseException) -> tuple[str, str] | None:
    """(cause, message) when a mup assertion says what is wrong with the model."""
    text = str(exc).strip()
    first = text.splitlines()[0][:160] if text else ""
    if "MuReadout" in text and "not type" in text:
        return "readout", f"readout not muP: mup.set_base_shapes refused it ({first})"
    if "set_base_shapes" in text or "infshape" in text:
        return "base-shapes", ("base shapes missing: a mup layer or optimizer found no infshape; "
                               "call mup.set_base_shapes(model, base, delta=delta) before "
                               f"building the optimizer ({first})")
    return None


def _measure_guarded(factory, width, steps, batches, probe, lr, seed, replicate=0,
                     contract=None, layout=None):
    try:
        return measure_width(factory, width, steps, batches, probe, lr=lr, seed=seed,
                             replicate=replicate, contract=contract, layout=layout)
    except AdvisorError:
        raise
    except Exception as exc:                 # the user's model raised: a defect or a bug of theirs
        defect = _defect_of(exc)
        if defect:
            raise ModelDefect(*defect) from None
        text = str(exc).strip()
        raise AdvisorError(f"width {width}: the model or its optimizer raised "
                           f"{type(exc).__name__}: {text.splitlines()[0][:200] if text else ''}"
                           ) from None


def _effective(wts: dict, kind_of: Callable[[str], str]) -> tuple[dict, dict]:
    """The (before, after) effective matrices of one run: a readout's weight times the
    multiplier measured from the logits (unless it declares ``spectral_multiplier``), every
    other module's times its declared multiplier (mup's MuReadout)."""
    w0, w1 = {}, {}
    for n in wts["w1"]:
        if kind_of(n) == "readout" and n in wts["readout"] and n not in wts["overrides"]:
            c = wts["readout"][n]
        else:
            c = wts["declared"].get(n, 1.0)
        w0[n], w1[n] = wts["w0"][n] * c, wts["w1"][n] * c
    return w0, w1


def run_check(factory: Callable, widths, steps: int = 20, tol: float = DEFAULT_TOL,
              batch: int = 8, seq_len: int = 64, lr: float = 2 ** -10, seed: int = 0,
              seeds: int = DEFAULT_SEEDS, confidence: float = DEFAULT_CONFIDENCE,
              progress: Callable[[str], None] | None = None, contract=None,
              max_seeds: int | None = None) -> CheckResult:
    """Measure every width for every replicate, fit slopes with intervals, give verdicts (see
    the module docstring and :mod:`calibration.spectral.verdict`).

    Replicate r seeds torch with ``seed + r`` before calling the factory (a factory's own
    ``torch.manual_seed`` is offset per replicate, :func:`contract.reseeded`) and trains on
    its own batches; every width of a replicate sees the same batches and probe. When the
    result is inconclusive after ``seeds`` replicates and some inconclusive row could be
    settled by more of them (its slope is not on the band's edge), replicates are added up
    to ``max_seeds`` (default 2 x seeds) and the rows refitted over all of them."""
    from calibration.spectral.contract import Contract, hook_batch
    from calibration.spectral.contract import text_batches as _text_batches
    from calibration.spectral.contract import token_ids

    contract = contract or Contract(batch=batch, seq_len=seq_len)
    widths = sorted(int(w) for w in widths)
    if len(widths) < 3 or len(set(widths)) != len(widths) or widths[0] < 1:
        raise AdvisorError(f"need at least three distinct positive widths, got {widths}")
    if seeds < 1:
        raise AdvisorError(f"need at least one seed, got {seeds}")
    if steps < 1:
        raise AdvisorError(f"--steps must be at least 1, got {steps}")
    if not tol > 0:
        raise AdvisorError(f"tolerance must be positive, got {tol}")
    if not 0 < confidence < 1:
        raise AdvisorError(f"confidence must lie in (0, 1), got {confidence}")
    max_seeds = max(seeds, 2 * seeds if max_seeds is None else int(max_seeds))
    ids = None if contract.batch_fn else token_ids(contract)
    text_probe = None if contract.batch_fn else _text_batches(1, contract, seed + 10_000, ids)[0]
    raw: dict[tuple, tuple] = {}
    layout = None if contract.layout == "auto" else contract.layout

    def run_replicate(r):
        nonlocal layout
        if not contract.batch_fn:
            batches = _text_batches(8, contract, seed + r, ids)
        for w in widths:
            if progress:
                progress(f"width {w}, seed {seed + r}: training {steps} steps")
            if contract.batch_fn:
                probe = hook_batch(contract, w, -1, seed)
                batches = (lambda step, w=w: hook_batch(contract, w, step % 8, seed + r))
            else:
                probe = text_probe
            stats, wts = _measure_guarded(factory, w, steps, batches, probe, lr, seed + r,
                                          r, contract, layout)
            layout = wts["layout"]
            raw[(w, r)] = (stats, wts)

    try:
        for r in range(seeds):
            run_replicate(r)
        result = _evaluate(raw, widths, seeds, steps, tol, confidence)
        n = seeds
        need = [row.seeds_needed for row in result.inconclusive]
        if result.status == INCONCLUSIVE and n < max_seeds and any(k is not None for k in need):
            if progress:
                progress(f"{len(need)} rows inconclusive at {n} seeds: adding seeds up to "
                         f"{max_seeds}")
            for r in range(n, max_seeds):
                run_replicate(r)
            n = max_seeds
            result = _evaluate(raw, widths, n, steps, tol, confidence)
        result.max_seeds = max_seeds
        return result
    except ModelDefect as exc:
        return CheckResult(widths, steps, tol, [], seeds, confidence, 0,
                           defect=exc.args[1], defect_cause=exc.args[0])


def _evaluate(raw, widths, seeds, steps, tol, confidence) -> CheckResult:
    """Rows and verdicts from the measurements of ``seeds`` replicates."""
    from calibration.spectral import probes

    shapes_seen = {w: raw[(w, 0)][1]["shapes"] for w in widths}
    kinds = classify(shapes_seen)
    logs: dict[tuple, dict] = {}                 # key -> {(w, s): value}
    for (w, s), (stats0, wts) in raw.items():
        if s >= seeds:
            continue
        stats = dict(stats0)
        k = {n: kinds.get(n, "hidden") for n in wts["w1"]}
        for n, c in wts["readout_act"].items():        # a readout judged as the logits see it
            if k.get(n) == "readout" and n not in wts["overrides"]:
                for st in ("act_rms", "act_delta"):
                    if (n, st) in stats:
                        stats[(n, st)] = stats[(n, st)] * c
        w0, w1 = _effective(wts, lambda n: k[n])
        dw = {n: w1[n] - w0[n] for n in w1}
        for n, v in probes.operator_norms(w1, k).items():
            stats[(n, "weight_op")] = v
        for n, v in probes.operator_norms(dw, k).items():
            stats[(n, "update_op")] = v
        for key, v in stats.items():
            logs.setdefault(key, {})[(w, s)] = v
    mults = {w: raw[(w, 0)][1]["width_mult"] for w in widths}
    mults = {w: m for w, m in mults.items() if m is not None}
    rows = []
    for (layer, stat), vals in logs.items():
        if len(vals) != len(widths) * seeds:
            continue
        kind = kinds.get(layer, "logits" if layer == "logits" else
                         "attention" if layer.startswith("attn_logits") else "act")
        if kind == "fixed":
            continue                                 # neither side grows: nothing to test
        table = np.array([[vals[(w, s)] for s in range(seeds)] for w in widths])
        if not np.all(np.isfinite(table)) or not np.all(table > 0):
            continue                                 # e.g. a zero update of a frozen layer
        side = one_sided(layer, stat, kind)
        fit = fit_slope(widths, table, confidence)
        v = judge(fit, tol, side)
        rule = "slope <= tol (may shrink)" if side else "|slope| <= tol"
        if fit.exact:
            rule += " (exact: the same at every seed)"
        if corroborating(stat, kind) and v == INCONCLUSIVE:
            v, rule = PASS, "slope <= tol (corroborating: fails only when clearly above)"
        need = seeds_to_settle(fit, tol, side, confidence) if v == INCONCLUSIVE else None
        gm = [float(np.exp(np.mean(np.log(table[i])))) for i in range(len(widths))]
        rows.append(Row(layer, stat, fit.slope, v, gm, rule, fit.lo, fit.hi, kind, need))
    runs = [wts for (w, s), (_, wts) in raw.items() if s < seeds]
    on_muon = sorted({n for wts in runs for n in wts["muon_layers"]})
    notes = _notes(raw, widths, seeds)
    return CheckResult(widths, steps, tol, rows, seeds, confidence, _distinct_inits(raw, widths, seeds),
                       width_mults=mults, muon_layers=on_muon, notes=notes,
                       layout=raw[(widths[0], 0)][1]["layout"],
                       attention=raw[(widths[0], 0)][1]["attention_kinds"])


def _distinct_inits(raw, widths, seeds) -> int:
    """How many replicates started from different initial weights (at the smallest width)."""
    seen = {raw[(widths[0], s)][1]["init"] for s in range(seeds)}
    return max(1, len(seen))


def _notes(raw, widths, seeds) -> list[str]:
    """What the report must say besides the rows: self-seeding, attention not found, LR
    scales applied, a layout detected."""
    first = raw[(widths[0], 0)][1]
    notes = []
    asked = first["seeds_asked"]
    if asked:
        notes.append(f"the factory seeds its own RNG ({', '.join(map(str, asked[:3]))}); the "
                     "check offset that seed per replicate so that replicates differ")
    elif seeds > 1 and _distinct_inits(raw, widths, seeds) < seeds:
        notes.append("replicates started from identical weights (the factory seeds a generator "
                     "the check cannot reach): rows that depend only on the initialisation "
                     "are treated as exact; training rows still differ by their batches")
    if first["attention_modules"]:
        mods = first["attention_modules"]
        notes.append("attention NOT measured: the model has attention-like parts ("
                     + ", ".join(mods[:3]) + (" ..." if len(mods) > 3 else "")
                     + ") but no softmax of a q.k product and no scaled_dot_product_attention "
                     "call was seen; its scale is unchecked")
    if first["lr_scaled_groups"]:
        notes.append(f"{first['lr_scaled_groups']} parameter groups carry an LR scale; the "
                     "check applied it (group lr x scale)")
    if first["layout"] == "seq-first":
        notes.append("the model is sequence-first: fed (seq, batch) token ids")
    overrides = sorted(first["overrides"])
    if overrides:
        notes.append("spectral_multiplier overrides the measured multiplier of "
                     + ", ".join(overrides))
    return notes
