"""Is the run healthy? Loss spikes and divergence against the law's band; grad-norm growth.

The fitted law is the run's expected curve. A logged loss is *above the band* when its
relative residual ``loss / law - 1`` exceeds ``max(K_SIGMA x sigma, MIN_REL)``, sigma
being the robust (median absolute deviation) scale of the residuals. Consecutive points
above the band form an event:

* **divergence**: the event runs to the last logged point and holds at least
  ``DIVERGE_POINTS`` points (the loss left the law's curve and has not come back);
* **spike**: any other event (back inside the band at the step given).

The gradient norm, where logged, is *growing* when its median over the last 10% of
logged steps is more than ``GN_GROWTH`` times its median over 20-50% of the steps; a
grad-norm *spike* is a value above ``GN_SPIKE`` times the running median of 21 points.
The largest logit, where logged, is checked for growth the same way.

Each finding carries the likely causes and the usual remedies (:data:`ADVICE`).
:data:`ALARM_EXIT` is the exit code of ``advisor run`` when a spike or divergence is found.
"""
from __future__ import annotations

import numpy as np

K_SIGMA = 5.0
MIN_REL = 0.01
DIVERGE_POINTS = 3
GN_GROWTH = 2.0
GN_SPIKE = 5.0
ALARM_EXIT = 4

ADVICE = {
    "spike": (
        "likely causes: a bad batch, or a brief instability of Adam (the update outgrowing "
        "the curvature: Molybog et al. 2023, arXiv 2304.09871) or of growing attention "
        "logits (Wortsman et al. 2023, arXiv 2309.14322)",
        "usual remedies, if spikes recur: clip gradients at norm 1; Adam beta2 0.95 and a "
        "larger epsilon; QK-layernorm and a z-loss on the output logits (Wortsman et al. "
        "2023); a peak LR about 30% lower; on a spike that does not recover, restart from a "
        "checkpoint about 100 steps before it and skip the next 200-500 batches (PaLM, "
        "Chowdhery et al. 2022)"),
    "divergence": (
        "likely causes: a peak LR too high for this model and batch, or logits growing "
        "without bound (attention or output logits: Wortsman et al. 2023, arXiv 2309.14322)",
        "usual remedies: stop, restart from the last checkpoint before the onset with the LR "
        "lowered by about 2x (or a longer warmup); enable gradient clipping; add "
        "QK-layernorm and a z-loss if the logits grow"),
    "grad_norm_growth": (
        "likely causes: weight or logit norms growing (too little weight decay, no "
        "QK-norm), often a precursor of divergence (Wortsman et al. 2023)",
        "usual remedies: check the weight decay (AdamW 0.1 is usual) and gradient "
        "clipping; watch the attention-logit and output-logit norms; lower the LR if the "
        "loss starts to leave the band"),
    "logit_growth": (
        "likely causes: attention logits growing without bound (no QK-norm) or output "
        "logits drifting (no z-loss); both precede loss divergence at high LR (Wortsman "
        "et al. 2023, arXiv 2309.14322)",
        "usual remedies: QK-layernorm; a z-loss of about 1e-4 on the output logits; a "
        "lower peak LR"),
}


def _events(above: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index ranges of consecutive True values."""
    out, i, n = [], 0, len(above)
    while i < n:
        if above[i]:
            j = i
            while j < n and above[j]:
                j += 1
            out.append((i, j))
            i = j
        else:
            i += 1
    return out


def band_flags(loss: np.ndarray, pred: np.ndarray, sigma: float | None = None):
    """(relative residuals, threshold, above-band mask)."""
    r = loss / pred - 1.0
    if sigma is None:
        sigma = float(1.4826 * np.median(np.abs(r - np.median(r))))
    thr = max(K_SIGMA * sigma, MIN_REL)
    return r, thr, r > thr


def check_health(steps, loss, pred, grad_norm=None, since: int | None = None,
                 sigma: float | None = None, settled: int = 0, logit=None) -> dict:
    """Findings about a run (see module docstring). ``pred``: the law at ``steps``;
    ``since``: only events ending at or after this step raise the alarm; ``settled``:
    the first step the law is held to (before it, the warmup transient, which no schedule
    law describes, is not judged)."""
    steps = np.asarray(steps)
    r, thr, above = band_flags(np.asarray(loss, float), np.asarray(pred, float), sigma)
    above &= steps >= settled
    findings = []
    for a, b in _events(above):
        kind = "divergence" if b == len(steps) and b - a >= DIVERGE_POINTS else "spike"
        peak = a + int(np.argmax(r[a:b]))
        f = {"kind": kind, "start_step": int(steps[a]), "last_step": int(steps[b - 1]),
             "points": b - a, "max_excess_rel": float(r[peak]), "at_step": int(steps[peak]),
             "recovered_at": int(steps[b]) if b < len(steps) else None}
        findings.append(f)
    gn = _grad_norm(steps, grad_norm)
    if gn.get("growing"):
        findings.append({"kind": "grad_norm_growth", "ratio": gn["ratio"],
                         "start_step": gn["late_from"], "last_step": int(steps[-1])})
    lg = _grad_norm(steps, logit)
    if lg.get("growing"):
        findings.append({"kind": "logit_growth", "ratio": lg["ratio"],
                         "start_step": lg["late_from"], "last_step": int(steps[-1])})
    spike_steps = {f["at_step"] for f in findings if f["kind"] == "spike"}
    for f in findings:
        f["cause"], f["remedy"] = ADVICE[f["kind"]]
        if f["kind"] in ("spike", "divergence") and gn.get("spikes"):
            near = [s for s in gn["spikes"] if f["start_step"] - _spacing(steps) * 2 <= s
                    <= f["last_step"] + _spacing(steps) * 2]
            f["grad_norm_spike_at"] = near
    alarm = [f for f in findings if f["kind"] in ("spike", "divergence")
             and (since is None or f["last_step"] >= since)]
    return {"threshold_rel": thr, "findings": findings, "alarm": bool(alarm),
            "diverging": any(f["kind"] == "divergence" for f in findings),
            "grad_norm": gn, "spike_steps": sorted(spike_steps),
            "above_band": above}


def _spacing(steps) -> int:
    return int(np.median(np.diff(steps))) if len(steps) > 1 else 1


def _grad_norm(steps, g) -> dict:
    """Growth (median of the last 10% over that of 20-50%) and spikes of a logged series."""
    if g is None:
        return {}
    g = np.asarray(g, dtype=np.float64)
    ok = np.isfinite(g)
    if ok.sum() < 10:
        return {"logged": int(ok.sum())}
    st, v = steps[ok], g[ok]
    n = len(v)
    early = v[int(0.2 * n): max(int(0.5 * n), int(0.2 * n) + 1)]
    late = v[int(0.9 * n):]
    ratio = float(np.median(late) / max(np.median(early), 1e-30))
    pad = np.pad(v, 10, mode="edge")
    run_med = np.array([np.median(pad[i:i + 21]) for i in range(n)])
    spikes = [int(s) for s, x, m in zip(st, v, run_med) if x > GN_SPIKE * m]
    return {"logged": n, "ratio": ratio, "growing": ratio > GN_GROWTH,
            "late_from": int(st[int(0.9 * n)]), "spikes": spikes}
