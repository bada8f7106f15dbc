"""``advisor check-stability``: does the max attention logit grow with width at a fixed LR?

Wortsman et al. 2023 (arXiv 2309.14322, section 3.3) predict the attention-logit instability
of a larger model from how the max attention logit of small ones scales with size at a fixed
LR: a logit that grows with width keeps growing until attention collapses. For each arm of a
stability sweep (``advisor.runs.stability_data``) and each LR where two or more widths finished,
this fits log2(max attention logit) = c + e log2(width) over every (width, seed) run and gives
e a 95% interval (``advisor.fit.stability.Line``). A row is **GROWS** when the whole interval
lies above ``tol`` (default :data:`GROWTH_TOL`: the logit gains more than 19% per doubling of
width), **ok** when it lies below ``tol``, else **unresolved** (more seeds or widths needed).
Units: slopes in log2 units per doubling of width; LRs as the runs store them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from advisor.fit.stability import fit_line
from advisor.runs.stability_data import Point, attn_max

GROWTH_TOL = 0.25


@dataclass(frozen=True)
class GrowthRow:
    arm: str
    lr: float
    widths: tuple
    n: int
    slope: float
    half_width_95: float
    verdict: str                 # GROWS | ok | unresolved

    def to_dict(self) -> dict:
        return {"arm": self.arm, "lr": self.lr, "widths": list(self.widths), "runs": self.n,
                "slope": self.slope,
                "slope_interval_95": None if not math.isfinite(self.half_width_95) else
                [self.slope - self.half_width_95, self.slope + self.half_width_95],
                "verdict": self.verdict}


def growth_rows(points: list[Point], tol: float = GROWTH_TOL) -> list[GrowthRow]:
    """One row per (arm, LR) with finished runs at 2 or more widths, sorted by arm, LR."""
    groups: dict = {}
    for p in points:
        a = attn_max(p)
        if math.isfinite(p.loss) and math.isfinite(a) and a > 0:
            groups.setdefault((p.arm, p.lr), []).append((p.width, a))
    rows = []
    for (arm, lr), pts in sorted(groups.items()):
        widths = tuple(sorted({w for w, _ in pts}))
        if len(widths) < 2:
            continue
        line = fit_line([math.log2(w) for w, _ in pts], [math.log2(a) for _, a in pts])
        half = line.coef_half_width(1)
        if line.b - half > tol:
            verdict = "GROWS"
        elif line.b + half < tol:
            verdict = "ok"
        else:
            verdict = "unresolved"
        rows.append(GrowthRow(arm, lr, widths, len(pts), line.b, half, verdict))
    return rows
