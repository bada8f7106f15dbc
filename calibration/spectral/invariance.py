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
width of a replicate sees the same batches and probe. A factory that seeds torch itself gives
identical replicates, which count once (wider intervals; the report says so). A factory
that returns no optimizer is trained with torch's AdamW at ``lr`` (2^-10 by default, small so
that 20 steps stay in the early regime muP describes). Units: widths in channels, steps are
optimizer steps of ``batch`` sequences of ``seq_len`` tokens.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from advisor.errors import AdvisorError
from calibration.spectral.verdict import (FAIL, INCONCLUSIVE, PASS, fit_slope, judge,
                                          loglog_slope, overall, seeds_to_settle)

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
    distinct_seeds: int = 1            # replicates that differed (a self-seeding factory: 1)
    defect: str | None = None          # a mistake found before any measurement (e.g. no infshape)
    width_mults: dict = field(default_factory=dict)   # width -> largest mup width multiplier
    defect_cause: str | None = None    # the blame cause of ``defect``
    muon_layers: list = field(default_factory=list)   # layers whose weight Muon steps

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
        """What would settle an inconclusive result."""
        if self.status != INCONCLUSIVE:
            return ""
        need = [r.seeds_needed for r in self.inconclusive]
        parts = []
        if self.distinct_seeds < self.seeds:
            parts.append(f"only {self.distinct_seeds} of {self.seeds} seeds gave different "
                         "results: let the check seed your factory (do not call "
                         "torch.manual_seed inside it)")
        if all(n is not None for n in need):
            parts.append(f"rerun with --seeds {max(need)}")
        else:
            parts.append("some slopes sit on the edge of the band: more seeds alone will not "
                         "settle them")
        lo, hi = self.widths[0], self.widths[-1]
        parts.append(f"or widen the width range (e.g. --widths {lo},{lo * 4},{lo * 16}, "
                     "which also shrinks finite-width effects of the smallest width)")
        return "; ".join(parts)

    def to_dict(self):
        return {"widths": self.widths, "steps": self.steps, "tol": self.tol,
                "seeds": self.seeds, "distinct_seeds": self.distinct_seeds,
                "confidence": self.confidence, "status": self.status,
                "width_mults": {str(w): m for w, m in self.width_mults.items()},
                "muon_layers": list(self.muon_layers),
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
                     f"{self.confidence:.0%} intervals over {self.distinct_seeds} seeds)")
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
    import torch

    from calibration.train.data import load_data

    data = load_data("stdlib")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        starts = rng.integers(0, len(data.train) - seq_len - 1, size=batch)
        chunk = np.stack([np.asarray(data.train[s:s + seq_len + 1], dtype=np.int64) for s in starts])
        t = torch.from_numpy(chunk)
        out.append((t[:, :-1], t[:, 1:]))
    return out


# --------------------------------------------------------------------------------------
# Measurement at one width
# --------------------------------------------------------------------------------------

def _build(factory: Callable, width: int, lr: float):
    import torch

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
    return model, opt


def measure_width(factory: Callable, width: int, steps: int, batches, probe, lr: float = 2 ** -10,
                  seed: int = 0) -> tuple[dict, dict]:
    """Train a fresh model of ``width`` for ``steps`` steps on ``batches`` (cycled) and return
    ({(layer, statistic): value}, {layer: (fan_out, fan_in)})."""
    import torch

    from calibration.spectral import probes

    torch.manual_seed(seed)
    model, opt = _build(factory, width, lr)
    model.train()
    x_probe = probe[0]
    before = probes.record(model, x_probe)
    logits = before["acts"]["logits"]
    if logits.ndim != 3 or logits.shape[:2] != x_probe.shape:
        raise AdvisorError(f"the model maps {tuple(x_probe.shape)} token ids to logits of shape "
                           f"{tuple(logits.shape)}; expected (batch, seq, vocab)")
    if not any(True for _ in model.parameters()):
        raise AdvisorError("the model has no parameters")
    w0 = probes.snapshot_weights(model)
    for step in range(steps):
        x, y = batches[step % len(batches)]
        out = probes.logits_of(model(x))
        loss = torch.nn.functional.cross_entropy(out.float().reshape(-1, out.shape[-1]), y.reshape(-1))
        if not torch.isfinite(loss):
            raise AdvisorError(f"width {width}: loss became {loss.item()} at step {step + 1}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    after = probes.record(model, x_probe)
    w1 = probes.snapshot_weights(model)

    stats = {}
    for name, a1 in after["acts"].items():
        a0 = before["acts"].get(name)
        stats[(name, "act_rms")] = probes.rms(a1)
        if a0 is not None and a0.shape == a1.shape:
            stats[(name, "act_delta")] = probes.rms(a1 - a0)
    for name, a0 in before["attn"].items():
        v = probes.attention_scale_stat(a0, before["attn_meta"][name])
        if v is not None and v > 0:
            stats[(name, "attn_scale")] = v
    for name, a1 in after["attn"].items():
        a0 = before["attn"].get(name)
        stats[(name, "attn_rms")] = probes.rms(a1)
        if a0 is not None and a0.shape == a1.shape:
            stats[(name, "attn_delta")] = probes.rms(a1 - a0)
    shapes = {n: tuple(m.shape) for n, m in w1.items()}
    return stats, {"shapes": shapes, "w0": w0, "w1": w1, "width_mult": _mup_width_mult(model),
                   "muon_layers": muon_layers(model, opt)}


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


def _measure_guarded(factory, width, steps, batches, probe, lr, seed):
    try:
        return measure_width(factory, width, steps, batches, probe, lr=lr, seed=seed)
    except AdvisorError:
        raise
    except Exception as exc:                 # the user's model raised: a defect or a bug of theirs
        defect = _defect_of(exc)
        if defect:
            raise ModelDefect(*defect) from None
        raise AdvisorError(f"width {width}: the model or its optimizer raised "
                           f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}") from None


def run_check(factory: Callable, widths, steps: int = 20, tol: float = DEFAULT_TOL,
              batch: int = 8, seq_len: int = 64, lr: float = 2 ** -10, seed: int = 0,
              seeds: int = DEFAULT_SEEDS, confidence: float = DEFAULT_CONFIDENCE,
              progress: Callable[[str], None] | None = None) -> CheckResult:
    """Measure every width for every seed, fit slopes with intervals, give verdicts (see the
    module docstring and :mod:`calibration.spectral.verdict`). Replicate s seeds torch with
    ``seed + s`` before calling the factory and trains on its own batches; every width of a
    replicate sees the same batches and probe."""
    from calibration.spectral import probes

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
    probe = text_batches(1, batch, seq_len, seed=seed + 10_000)[0]
    shapes_seen: dict[int, dict] = {}
    raw: dict[tuple, tuple] = {}
    for s in range(seeds):
        batches = text_batches(8, batch, seq_len, seed=seed + s)
        for w in widths:
            if progress:
                progress(f"width {w}, seed {seed + s}: training {steps} steps")
            try:
                stats, wts = _measure_guarded(factory, w, steps, batches, probe, lr, seed + s)
            except ModelDefect as exc:
                return CheckResult(widths, steps, tol, [], seeds, confidence, 0,
                                   defect=exc.args[1], defect_cause=exc.args[0])
            shapes_seen[w] = wts["shapes"]
            raw[(w, s)] = (stats, wts)
    kinds = classify(shapes_seen)
    logs: dict[tuple, dict] = {}                 # key -> {(w, s): value}
    for (w, s), (stats, wts) in raw.items():      # weight statistics need the kinds
        k = {n: kinds.get(n, "hidden") for n in wts["w1"]}
        dw = {n: wts["w1"][n] - wts["w0"][n] for n in wts["w1"]}
        for n, v in probes.operator_norms(wts["w1"], k).items():
            stats[(n, "weight_op")] = v
        for n, v in probes.operator_norms(dw, k).items():
            stats[(n, "update_op")] = v
        for key, v in stats.items():
            logs.setdefault(key, {})[(w, s)] = v
    distinct = _distinct_seeds(raw, widths, seeds)
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
        if corroborating(stat, kind) and v == INCONCLUSIVE:
            v, rule = PASS, "slope <= tol (corroborating: fails only when clearly above)"
        need = seeds_to_settle(fit, tol, side) if v == INCONCLUSIVE else None
        gm = [float(np.exp(np.mean(np.log(table[i])))) for i in range(len(widths))]
        rows.append(Row(layer, stat, fit.slope, v, gm, rule, fit.lo, fit.hi, kind, need))
    on_muon = sorted({n for _, wts in raw.values() for n in wts["muon_layers"]})
    return CheckResult(widths, steps, tol, rows, seeds, confidence, distinct,
                       width_mults=mults, muon_layers=on_muon)


def _distinct_seeds(raw, widths, seeds) -> int:
    """How many replicates gave different logits at the smallest width."""
    w = widths[0]
    seen = []
    for s in range(seeds):
        v = raw[(w, s)][0].get(("logits", "act_rms"))
        if v is not None and not any(abs(v - u) <= 1e-9 * abs(u) for u in seen):
            seen.append(v)
    return max(1, len(seen))
