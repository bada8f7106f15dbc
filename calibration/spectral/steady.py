"""Steady-state mode of ``advisor check-spectral``: do the top singular values of trained
hidden matrices stay put across widths once AdamW's weight decay has had its say?

Fan et al. 2025 ("Robust Layerwise Scaling Rules by Proper Weight Decay Tuning", arXiv
2510.15262) find that under AdamW a matrix's spectrum settles to a width-invariant shape with
a top singular value near sqrt(eta / lambda) * d^0.75 (eta the matrix's LR, lambda PyTorch's
decoupled weight-decay coefficient, so the per-step decay is eta * lambda); Kosson et al. 2025
(arXiv 2510.19093) find the same loss of muP's early invariance later in training. With muP's
Adam LR eta ~ 1/d the predicted width slope of log sigma_max is

    0.75 + 0.5 * (s_eta - s_lambda)          (s_x: d log x / d log width)

so: lambda constant ("none") -> +0.25; lambda ~ d (what ``mup.MuAdamW`` 1.0.0 does: it
multiplies a matrix's weight_decay by its width multiplier, keeping eta * lambda constant)
-> -0.25; lambda ~ sqrt(d) (Fan et al.'s rule) -> 0, the only width-invariant one.

The mode trains each width for ``steps`` steps (several decay time constants 1 / (eta *
lambda) at CPU-sized defaults), reads each hidden matrix's eta and lambda from the optimizer's
param groups, and reports per matrix the measured slope of sigma_max (t interval over seeds,
:mod:`calibration.spectral.verdict`), the slope the rule predicts, and whether sigma_max had
settled (its change over the last quarter of training). The verdict is on invariance: pass
when every interval lies within +-tol of 0, FAIL when one lies outside, inconclusive when
one straddles; the prediction says why. Units: sigma_max of the raw (fan_out, fan_in) weight,
widths in channels, steps are optimizer steps.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from advisor.errors import AdvisorError
from calibration.spectral.verdict import INCONCLUSIVE, PASS, fit_slope, judge, loglog_slope, overall

STEADY_EXPONENT = 0.75           # Fan et al. 2025: sigma_max ~ sqrt(eta/lambda) d^0.75
DEFAULT_STEADY = dict(widths=(64, 128, 256), steps=300, seeds=2, batch=8, seq_len=32, tol=0.15)
RULES = {0.0: "none (lambda constant)", 0.5: "sqrt(d) (Fan et al.)",
         1.0: "muP-coupled (lambda ~ d, as mup.MuAdamW)"}


def predicted_slope(s_lr: float, s_wd: float) -> float:
    """Width slope of log sigma_max that Fan et al.'s steady state predicts."""
    return STEADY_EXPONENT + 0.5 * (s_lr - s_wd)


def rule_name(s_wd: float, s_lr: float) -> str:
    """Name of the weight-decay width rule, from lambda's slope (with muP's eta ~ 1/d)."""
    for k, name in RULES.items():
        if abs(s_wd - k) < 0.05:
            return name if abs(s_lr + 1) < 0.05 else f"{name}, with LR slope {s_lr:+.2f}"
    return f"lambda ~ d^{s_wd:.2f}"


@dataclass
class SteadyRow:
    layer: str
    slope: float
    lo: float
    hi: float
    predicted: float
    verdict: str
    sigma: list[float] = field(default_factory=list)      # geometric mean over seeds, per width
    settle: float = 0.0             # largest relative change of sigma over the last quarter
    lr_slope: float = 0.0
    wd_slope: float = 0.0

    def to_dict(self):
        return asdict(self)


@dataclass
class SteadyResult:
    widths: list[int]
    steps: int
    tol: float
    rows: list[SteadyRow]
    seeds: int
    seconds: float = 0.0

    @property
    def status(self) -> str:
        return overall(r.verdict for r in self.rows)

    @property
    def exit_code(self) -> int:
        return {PASS: 0, "FAIL": 1, INCONCLUSIVE: 3}[self.status]

    def rule(self) -> str:
        s_wd = float(np.median([r.wd_slope for r in self.rows]))
        s_lr = float(np.median([r.lr_slope for r in self.rows]))
        return rule_name(s_wd, s_lr)

    def to_dict(self):
        return {"mode": "steady-state", "widths": self.widths, "steps": self.steps,
                "tol": self.tol, "seeds": self.seeds, "status": self.status,
                "exit_code": self.exit_code, "weight_decay_rule": self.rule(),
                "seconds": self.seconds, "rows": [r.to_dict() for r in self.rows]}

    def report(self) -> str:
        w = max([len(r.layer) for r in self.rows] + [5])
        head = (f"{'layer':<{w}}  {'slope':>7}  {'interval':<16} {'predicted':>9}  "
                f"{'settled':>7}  {'verdict':<12}  sigma_max at widths {self.widths}")
        lines = [f"weight-decay width rule in use: {self.rule()}", head, "-" * len(head)]
        for r in self.rows:
            sig = " ".join(f"{v:.3g}" for v in r.sigma)
            lines.append(f"{r.layer:<{w}}  {r.slope:>+7.3f}  [{r.lo:+.2f}, {r.hi:+.2f}]{'':<3}"
                         f"{r.predicted:>+9.2f}  {r.settle:>6.0%}  {r.verdict:<12}  {sig}")
        st = self.status
        pred = float(np.median([r.predicted for r in self.rows]))
        lines.append(f"{st.upper() if st != 'FAIL' else 'FAIL'}: top singular values of hidden "
                     f"matrices {'stay within' if st == PASS else 'do not stay within'} "
                     f"+-{self.tol} of slope 0 after {self.steps} steps"
                     + ("" if st == PASS else
                        f"; the rule predicts slope {pred:+.2f}: scale hidden matrices' "
                        "weight decay as sqrt(width) (lambda = lambda0 * sqrt(m), after "
                        "MuAdamW's LR / m) to keep them invariant"))
        if any(r.settle > 0.1 for r in self.rows):
            lines.append("note: some sigma_max still moved by more than 10% over the last "
                         "quarter of training: raise --steps for a steady state")
        return "\n".join(lines)


def _hidden_groups(opt) -> dict[int, tuple[float, float]]:
    """id(param) -> (lr, weight_decay) from the optimizer's param groups."""
    out = {}
    for g in opt.param_groups:
        for p in g["params"]:
            out[id(p)] = (float(g["lr"]), float(g.get("weight_decay", 0.0)))
    return out


def _train_one(factory, width, steps, batches, seed):
    import torch

    from calibration.spectral import probes
    from calibration.spectral.invariance import build_at_width
    from calibration.spectral.svd import top_singular_values

    torch.manual_seed(seed)
    model, opt, _, _ = build_at_width(factory, width, lr=2 ** -10)
    hp = _hidden_groups(opt)
    mods = probes.weight_modules(model)
    names = {n: m for n, m in mods.items()}
    checkpoint = steps - max(1, steps // 4)
    mid = {}
    for step in range(steps):
        x, y = batches[step % len(batches)]
        out = probes.logits_of(model(x))
        loss = torch.nn.functional.cross_entropy(out.float().reshape(-1, out.shape[-1]),
                                                 y.reshape(-1))
        if not torch.isfinite(loss):
            raise AdvisorError(f"width {width}: loss became {loss.item()} at step {step + 1}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step + 1 == checkpoint:
            mid = {n: m.weight.detach().float().clone() for n, m in names.items()}
    end = {n: m.weight.detach().float().clone() for n, m in names.items()}
    sv_end = {n: r.top for n, r in top_singular_values(end).items()}
    sv_mid = {n: r.top for n, r in top_singular_values(mid).items()} if mid else sv_end
    info = {n: hp.get(id(m.weight), (math.nan, 0.0)) for n, m in names.items()}
    shapes = {n: tuple(t.shape) for n, t in end.items()}
    return sv_end, sv_mid, info, shapes


def run_steady(factory: Callable, widths=DEFAULT_STEADY["widths"], steps: int = 300,
               seeds: int = 2, batch: int = 8, seq_len: int = 32, tol: float = 0.15,
               confidence: float = 0.95, seed: int = 0,
               progress: Callable[[str], None] | None = None) -> SteadyResult:
    """Train, measure sigma_max of every hidden matrix, compare with the rule (docstring)."""
    import time

    from calibration.spectral.invariance import classify, text_batches

    widths = sorted(int(w) for w in widths)
    if len(widths) < 3 or len(set(widths)) != len(widths) or widths[0] < 1:
        raise AdvisorError(f"need at least three distinct positive widths, got {widths}")
    if steps < 8 or seeds < 1 or not tol > 0:
        raise AdvisorError("steady-state mode needs steps >= 8, seeds >= 1 and tol > 0")
    t0 = time.perf_counter()
    runs = {}
    for s in range(seeds):
        batches = text_batches(16, batch, seq_len, seed=seed + s)
        for w in widths:
            if progress:
                progress(f"width {w}, seed {seed + s}: training {steps} steps")
            runs[(w, s)] = _train_one(factory, w, steps, batches, seed + s)
    kinds = classify({w: runs[(w, 0)][3] for w in widths})
    hidden = [n for n, k in kinds.items() if k == "hidden"]
    decayed = [n for n in hidden if all(runs[(w, 0)][2][n][1] > 0 for w in widths)]
    if not decayed:
        raise AdvisorError("steady-state mode needs weight decay on the hidden matrices "
                           "(the optimizer's param groups have weight_decay 0 there)")
    rows = []
    for n in decayed:
        table = np.array([[runs[(w, s)][0][n] for s in range(seeds)] for w in widths])
        fit = fit_slope(widths, table, confidence)
        lrs = [runs[(w, 0)][2][n][0] for w in widths]
        wds = [runs[(w, 0)][2][n][1] for w in widths]
        s_lr, s_wd = loglog_slope(widths, lrs), loglog_slope(widths, wds)
        settle = max(abs(runs[k][0][n] / runs[k][1][n] - 1) for k in runs)
        rows.append(SteadyRow(n, fit.slope, fit.lo, fit.hi, predicted_slope(s_lr, s_wd),
                              judge(fit, tol, one_sided=False),
                              [float(np.exp(np.mean(np.log(r)))) for r in table],
                              float(settle), s_lr, s_wd))
    return SteadyResult(widths, steps, tol, rows, seeds, time.perf_counter() - t0)
