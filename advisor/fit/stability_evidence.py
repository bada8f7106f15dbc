"""Published evidence for the largest stable LR where the user has no stability sweep.

Step Law's released dense grid ("Predictable Scale: Part I", Li et al. 2025; 1,911 runs,
N = 215M-1.07B non-embedding parameters, D = 4B-100B tokens, an LR x batch grid per (N, D)
cell; /work/shared/data/external/steplaw_dense_lr_bs_loss.csv, from step-law/steplaw
``data/dense_lr_bs_loss.csv`` at 32a8f4c) shows the instability as a cliff: at the top of many
LR grids the smoothed final loss jumps by 4 nats between two neighbouring LRs (a factor of
sqrt 2) while the points below it lie within 0.3 nats of the best. Per (cell, batch size)
curve the **cliff** is the geometric mean of the last LR within 1 nat of the curve's best and
the next one (``advisor.fit.stability.stability_edge``, no interpolation); curves without a
jump give only a lower bound and are counted, not fitted. Per cell, the cliffs of its batch
sizes are averaged in log2 (the batch size moves them by less than their scatter: a joint
fit gives -0.05 log2 LR per doubling of the batch), so each cell is one point, and the line
log2 cliff = a + b log2 N is fitted over cells (``advisor.fit.stability.fit_line``).

``python -m advisor.fit.stability_evidence CSV`` recomputes the shipped file
``recipes/published/stability.yaml`` (tests/test_stability.py checks the shipped numbers
against the CSV where the shared data exists). Units: LRs are peak AdamW LRs; N in
non-embedding parameters (Step Law's convention).
"""
from __future__ import annotations

import csv
import math
import sys
from collections import defaultdict
from pathlib import Path

from advisor.errors import AdvisorError
from advisor.fit.stability import Line, fit_line, stability_edge

EVIDENCE_FILE = Path(__file__).resolve().parents[2] / "recipes" / "published" / "stability.yaml"
CLIFF_JUMP_NATS = 1.0
SOURCE = ("Step Law released dense grid (Li et al. 2025, 'Predictable Scale: Part I', "
          "step-law/steplaw data/dense_lr_bs_loss.csv @ 32a8f4c)")


def steplaw_cliffs(rows) -> dict:
    """From Step Law CSV rows (dicts with N, D, bs, lr, 'smooth loss'): {"cells": [{N, D,
    log2_cliff (mean over batch sizes), n_curves, n_censored, log2_best_lr (the smallest of
    its curves' best LRs)}], "line": the
    fitted Line of log2 cliff on log2 N, "margin_octaves": mean and sd over curves of log2
    (cliff / the curve's best LR)}."""
    curves = defaultdict(dict)
    for r in rows:
        try:
            key = (int(r["N"]), int(float(r["D"])), int(r["bs"]))
            curves[key][float(r["lr"])] = float(r["smooth loss"])
        except (KeyError, ValueError) as exc:
            raise AdvisorError(f"Step Law row without a numeric {exc}") from None
    per_cell = defaultdict(lambda: {"cliffs": [], "censored": 0, "best": []})
    margins = []
    for (N, D, _bs), pts in sorted(curves.items()):
        curve = sorted(pts.items())
        best_lr, best = min(curve, key=lambda p: p[1])
        edge = stability_edge(curve, best + CLIFF_JUMP_NATS, interpolate=False)
        cell = per_cell[(N, D)]
        cell["best"].append(math.log2(best_lr))
        if edge.censored:
            cell["censored"] += 1
            continue
        cell["cliffs"].append(math.log2(edge.crossing))
        margins.append(math.log2(edge.crossing / best_lr))
    cells = []
    for (N, D), c in sorted(per_cell.items()):
        cells.append({"N": N, "D": D, "n_curves": len(c["cliffs"]), "n_censored": c["censored"],
                      "log2_cliff": (sum(c["cliffs"]) / len(c["cliffs"])) if c["cliffs"] else None,
                      "log2_best_lr": min(c["best"])})
    fitted = [c for c in cells if c["log2_cliff"] is not None]
    line = fit_line([math.log2(c["N"]) for c in fitted], [c["log2_cliff"] for c in fitted])
    mean = sum(margins) / len(margins)
    sd = math.sqrt(sum((m - mean) ** 2 for m in margins) / (len(margins) - 1))
    return {"cells": cells, "line": line, "margin_octaves": {"mean": mean, "sd": sd,
                                                             "n_curves": len(margins)}}


def evidence_document(rows) -> dict:
    """The shipped YAML's content, computed from Step Law's rows."""
    ev = steplaw_cliffs(rows)
    n = [c["N"] for c in ev["cells"]]
    return {
        "schema": "hp-advisor/stability-evidence/v1",
        "source": SOURCE,
        "definition": (f"cliff = geometric mean of the last LR within {CLIFF_JUMP_NATS:g} nat of "
                       "a (cell, batch) curve's best smoothed loss and the next grid LR; per "
                       "cell the mean over batch sizes in log2; line: log2 cliff = a + b log2 N"),
        "params_convention": "non_embedding",
        "N_range": [min(n), max(n)],
        "line": ev["line"].to_dict(),
        "margin_octaves": {k: round(v, 4) if isinstance(v, float) else v
                           for k, v in ev["margin_octaves"].items()},
        "cells": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in c.items()}
                  for c in ev["cells"]],
    }


_CACHE: dict = {}


def load_evidence(path: Path = EVIDENCE_FILE) -> dict:
    """The shipped evidence (cached), with ``line`` as a :class:`Line`."""
    key = str(path)
    if key not in _CACHE:
        import yaml

        try:
            doc = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise AdvisorError(f"cannot read the stability evidence {path}: {exc}") from None
        doc = dict(doc)
        doc["line"] = Line.from_dict(doc["line"])
        _CACHE[key] = doc
    return _CACHE[key]


def main(argv=None) -> int:
    import yaml

    from advisor.common.yamlio import plain

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m advisor.fit.stability_evidence steplaw_dense_lr_bs_loss.csv",
              file=sys.stderr)
        return 2
    with open(argv[0], newline="") as f:
        doc = evidence_document(list(csv.DictReader(f)))
    line = doc["line"]
    doc["line"] = {"coef": [round(v, 6) for v in line["coef"]],
                   "xtx_inv": [[round(v, 8) for v in r] for r in line["xtx_inv"]],
                   "s": round(line["s"], 6), "n": line["n"]}
    header = ("# Published evidence for the largest stable LR (advisor/fit/stability_evidence.py).\n"
              "# Recompute: python -m advisor.fit.stability_evidence "
              "/work/shared/data/external/steplaw_dense_lr_bs_loss.csv\n")
    EVIDENCE_FILE.write_text(header + yaml.safe_dump(plain(doc), sort_keys=False, width=100))
    print(f"wrote {EVIDENCE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
