"""Evidence that no law set here was fitted to: how far each law's LR and batch lie from it.

Evidence points (units: N non-embedding parameters, D tokens, lr peak AdamW LR, batch tokens
per step) come from two kinds of source:

* recipes/published/configs.yaml: published runs (practice) and tuned optima of independent
  sweeps, grouped by setup (``pythia``, ``olmo``, ``marin``, ...: the id's first word);
* the Step Law grid (shared/data/external/steplaw_dense_lr_bs_loss.csv): per (N, D) cell the
  run of lowest smoothed loss, group ``steplaw`` (in-sample for the step-law set only).

Everything here is pure computation on lists of :class:`Point` (no I/O except
:func:`steplaw_cells`, which reads the CSV it is given). ``bench/trust_evidence.py`` runs it
and writes the numbers docs/trust.md reports and recipes/laws/evidence-fit.yaml ships.
"""
from __future__ import annotations

import csv
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from statistics import median

from advisor.fit import powerlaw
from advisor.specs.conventions import STEPLAW_SEQ_LEN

LN2 = math.log(2.0)


@dataclass(frozen=True)
class Point:
    group: str            # setup: pythia, marin, steplaw, ...
    kind: str             # published | tuned_optimum
    id: str
    n: float              # non-embedding parameters
    d: float              # training tokens
    lr: float             # peak LR
    batch: float | None   # tokens per step
    shape: object = None  # advisor.specs.shapes.Shape, where known (for laws in other conventions)
    seq_len: int = STEPLAW_SEQ_LEN


def published_points(entries) -> list[Point]:
    """Points from advisor.laws.published entries, grouped by the first word of their id."""
    return [Point(group=e.id.split("-")[0], kind=e.kind, id=e.id,
                  n=float(e.shape.params_non_embedding), d=e.tokens, lr=e.peak_lr,
                  batch=e.batch_tokens, shape=e.shape, seq_len=e.seq_len) for e in entries]


def steplaw_cells(csv_path) -> list[dict]:
    """Per (N, D) cell of the Step Law grid: its runs as dicts lr, batch (tokens), loss."""
    cells = defaultdict(list)
    with open(csv_path, newline="") as f:
        for r in csv.DictReader(f):
            cells[(float(r["N"]), float(r["D"]))].append(
                {"lr": float(r["lr"]), "batch": float(r["bs"]) * STEPLAW_SEQ_LEN,
                 "loss": float(r["smooth loss"]), "h": int(r["h"]), "numl": int(r["numl"]),
                 "numh": int(r["numh"]), "ffnh": int(r["ffnh"])})
    return [{"n": n, "d": d, "runs": runs} for (n, d), runs in sorted(cells.items())]


def steplaw_points(cells) -> list[Point]:
    """The lowest-loss run of each Step Law cell as a tuned optimum (group steplaw)."""
    out = []
    for c in cells:
        best = min(c["runs"], key=lambda r: r["loss"])
        out.append(Point(group="steplaw", kind="tuned_optimum",
                         id=f"steplaw-N{c['n']:.3g}-D{c['d']:.3g}", n=c["n"], d=c["d"],
                         lr=best["lr"], batch=best["batch"]))
    return out


# ------------------------------------------------------------------------- fitting a law
def _solve3(a, b):
    """Solve the 3x3 system a x = b (Gaussian elimination with partial pivoting)."""
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for col in range(3):
        piv = max(range(col, 3), key=lambda r: abs(m[r][col]))
        m[col], m[piv] = m[piv], m[col]
        if abs(m[col][col]) < 1e-300:
            raise ValueError("singular system")
        for r in range(3):
            if r != col:
                f = m[r][col] / m[col][col]
                m[r] = [x - f * y for x, y in zip(m[r], m[col])]
    return [m[i][3] / m[i][i] for i in range(3)]


def fit_power_law(points, key: str) -> tuple[float, float, float]:
    """(ln coefficient, exponent of N, exponent of D) of y = c N^a D^b: the package's one
    power-law fitter (``advisor.fit.powerlaw.fit_power_law``, weighted least squares on
    ln y), each setup group weighted equally (a point weighs 1 / its group's size)."""
    pts = [p for p in points if getattr(p, key)]
    size = Counter(p.group for p in pts)
    law = powerlaw.fit_power_law([getattr(p, key) for p in pts],
                                 {"N": [p.n for p in pts], "D": [p.d for p in pts]},
                                 weights=[1.0 / size[p.group] for p in pts], what=key)
    return math.log(law.coefficient), law.exponents["N"], law.exponents["D"]


def power_law_value(coef, n: float, d: float) -> float:
    lnc, a, b = coef
    return math.exp(lnc + a * math.log(n) + b * math.log(d))


def logo_residuals(points, key: str) -> dict:
    """Leave one setup group out: log2(prediction / value) of each point of the held-out
    group, from a fit on all other groups. Returns {point id: residual in octaves}."""
    out = {}
    for g in sorted({p.group for p in points}):
        rest = [p for p in points if p.group != g]
        coef = fit_power_law(rest, key)
        for p in points:
            if p.group == g and getattr(p, key):
                out[p.id] = math.log2(power_law_value(coef, p.n, p.d) / getattr(p, key))
    return out


def summary(values) -> dict:
    """Median, spread (population sd) and RMS of a list of log2 ratios, and its size."""
    xs = list(values)
    if not xs:
        return {"n": 0, "median": None, "sd": None, "rms": None}
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))
    rms = math.sqrt(sum(x * x for x in xs) / len(xs))
    return {"n": len(xs), "median": median(xs), "sd": sd, "rms": rms}


# ---------------------------------------------------------------------- loss curvature
def quadratic_curvature(xs, ys) -> float | None:
    """Second-order coefficient a of the least-squares parabola y = a x^2 + b x + c."""
    n = len(xs)
    if n < 3 or len(set(xs)) < 3:
        return None
    s = [sum(x ** k for x in xs) for k in range(5)]
    t = [sum(y * x ** k for x, y in zip(xs, ys)) for k in range(3)]
    a = [[s[4], s[3], s[2]], [s[3], s[2], s[1]], [s[2], s[1], s[0]]]
    try:
        return _solve3(a, [t[2], t[1], t[0]])[0]
    except ValueError:
        return None


def cell_curvatures(cell, window_octaves: float = 1.5) -> dict:
    """Loss-vs-LR and loss-vs-batch curvature (nats per octave^2) around a cell's optimum.

    LR: along the best run's batch, runs within ``window_octaves`` of the best LR; batch:
    along the best LR, runs within the window of the best batch. Parabola in log2.
    """
    runs = cell["runs"]
    best = min(runs, key=lambda r: r["loss"])
    out = {}
    for var, other in (("lr", "batch"), ("batch", "lr")):
        line = [r for r in runs if r[other] == best[other]
                and abs(math.log2(r[var] / best[var])) <= window_octaves + 1e-9]
        out[var] = quadratic_curvature([math.log2(r[var]) for r in line],
                                       [r["loss"] for r in line])
    return out
