"""The evidence behind docs/trust.md, and the data files it ships (CPU, about a minute).

    python -m bench.trust_evidence [--external ../shared/data/external] [--write]
    python -m bench.trust_evidence --excess optima-fit     # docs/trust.md's excess-loss table

Reads recipes/published/configs.yaml (published runs and tuned optima) and the Step Law grid;
prints, per shipped law set and for the evidence fit, the log2 ratio of its LR and batch to
every evidence point (median, sd, RMS; by kind and by setup group), the coverage and width
of the 95% interval of advisor/recommendation/uncertainty.py measured leave-one-setup-out, and the loss
curvature of the Step Law grid. With --write it writes (atomically)

* recipes/laws/evidence-fit.yaml: lr = c N^a D^b, batch = c' N^a' D^b' fitted to all
  evidence points, each setup weighted equally (N non-embedding, D tokens, batch tokens);
* recipes/published/trust.yaml: the constants the interval and the expected excess loss read
  at run time (setup spread per law, kappa, curvature), with these figures as provenance.

With --excess LAW it prints only the expected-excess-loss table of docs/trust.md for law set
LAW, each row what ``advisor recommend --params P --tokens D --law LAW --format json`` says
(``recommend()``, the product's own function; about a second).
"""
from __future__ import annotations

import math
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from advisor.fit import evidence as ev
from advisor.recommendation import uncertainty as un
from advisor.laws.lawset import lawset_text, load_lawset, load_shipped
from advisor.laws.published import load_published, shape_from_spec
from advisor.recommendation.core import DEFAULT_LOSS_LAW, law_table
from advisor.recommendation.trust import credible_laws
from bench import shipped

LAWS = ("step-law", "deepseek-llm", "porian", "minicpm", "kaplan")
QUANTITIES = (("lr", "learning_rate", "learning_rate"),
              ("batch", "batch_size", "batch_size_tokens"))
STEPLAW_VOCAB = 65536   # assumption: only the total-count laws (porian) read it
# docs/trust.md's targets: (label, total parameters, tokens)
EXCESS_TARGETS = (("138M, 2T (SmolLM2-135M's budget)", 138e6, 2e12),
                  ("953M, 22B (compute-optimal)", 953e6, 22e9),
                  ("6.74B, 139B (compute-optimal)", 6.74e9, 139e9),
                  ("6.74B, 2T", 6.74e9, 2e12),
                  ("71B, 1.3T (compute-optimal)", 71e9, 1.3e12),
                  ("414B, 15.6T (Llama 3 405B's budget)", 414e9, 15.6e12))


def excess_table(law: str) -> str:
    """The expected-excess-loss table for law set ``law``: per target, the recommended LR with
    its 95% interval and width, the batch (tokens) and its interval width, the LR curvature
    c_lr (nats per octave^2), the expected excess loss now and after the priced calibration
    sweep (nats per token) and that sweep's GPU-hours (at the assumed throughput)."""
    from advisor.recommendation.core import recommend

    out = ["| target (total params, tokens) | LR (95% interval, width) | batch tokens (width) | "
           "c_lr | excess loss now | after sweep | sweep GPU-hours |",
           "|---|---|---|---|---|---|---|"]
    for label, params, tokens in EXCESS_TARGETS:
        d = recommend(params=params, tokens=tokens, law=law).to_dict()
        lr, u, e = d["learning_rate"], d["uncertainty"], d["expected_excess_loss"]
        lo, hi = lr["interval_95"]
        out.append(f"| {label} | {lr['value']:.3g} ({lo:.3g}-{hi:.3g}, "
                   f"{u['learning_rate']['width_factor']:.3g}x) | "
                   f"{d['batch_size_tokens']['value']:.3g} "
                   f"({u['batch_size_tokens']['width_factor']:.3g}x) | "
                   f"{e['curvature_lr']['value']:.2g} | {e['value']:.2g} | "
                   f"{e['after_calibration']['value']:.2g} | "
                   f"{e['after_calibration']['gpu_hours']:.2g} |")
    return "\n".join(out) + "\n"


def shape_of(p, cell_runs=None):
    """The model shape of a published point: its own, else that of its Step Law grid cell
    (``cell_runs``: the cell's CSV rows; h, numl, numh, ffnh)."""
    if p.shape is not None:
        return p.shape
    r = cell_runs[0]
    return shape_from_spec({"d_model": r["h"], "n_layers": r["numl"], "n_heads": r["numh"],
                            "ffn_hidden": r["ffnh"], "vocab": STEPLAW_VOCAB}, p.id)


def law_predictions(points, cells_by_id):
    """{law: {point id: (lr, batch)}} for the shipped LR/batch laws at each point's shape."""
    loss_ls = load_lawset(DEFAULT_LOSS_LAW)
    sets = [s for s in load_shipped() if s.name in LAWS]
    out = {s.name: {} for s in sets}
    for p in points:
        shape = shape_of(p, cells_by_id.get(p.id))
        loss = loss_ls.predict("loss", shape.params_total, p.d)
        for row in law_table(shape, p.d, p.seq_len, loss=loss, sets=sets):
            out[row["law"]][p.id] = (row["learning_rate"], row["batch_size_tokens"])
    return out


def ratios(preds, points, qi):
    """{point id: log2(pred / value)} for one law and quantity index (0 lr, 1 batch)."""
    key = QUANTITIES[qi][0]
    return {p.id: math.log2(preds[p.id][qi] / getattr(p, key)) for p in points
            if preds.get(p.id) and preds[p.id][qi] and getattr(p, key)}


def _fmt(s):
    if not s["n"]:
        return "-"
    return f"{s['median']:+.2f} / {s['sd']:.2f} / {s['rms']:.2f} (n={s['n']})"


def setup_entry(log2_errors) -> dict:
    """The setup spread of a law from its log2 errors on evidence it was not fitted on:
    ``setup_sd_ln`` is the sd a normal needs to put 95% of them inside +-1.96 sd, i.e. the
    95th percentile of |error| (octaves) * ln 2 / 1.96; the RMS is kept beside it."""
    xs = sorted(abs(x) for x in log2_errors)
    s = ev.summary(list(log2_errors))
    q95 = xs[min(len(xs) - 1, int(0.95 * len(xs)))]
    return {"setup_sd_ln": round(q95 * math.log(2) / un.Z95, 4),
            "abs_log2_q95": round(q95, 3), "rms_ln": round(s["rms"] * math.log(2), 4),
            "median_log2": round(s["median"], 3), "n": s["n"]}


def _share_within(r, half_width_oct=0.5 * math.log2(6.0)):
    vals = list(r.values()) if isinstance(r, dict) else list(r)
    return sum(abs(x) <= half_width_oct for x in vals) / max(len(vals), 1)


def ranking(out):
    """Laws ordered by the RMS over LR and batch of their setup spread (ln units); a law
    without a batch law counts its LR spread twice. The first is the default law set."""
    score = {}
    for name, q in out["laws"].items():
        lr = q.get("learning_rate", {}).get("setup_sd_ln")
        b = q.get("batch_size", {}).get("setup_sd_ln", lr)
        if lr is not None:
            score[name] = math.sqrt(0.5 * (lr ** 2 + b ** 2))
    return sorted(score.items(), key=lambda kv: kv[1])


def kappa(sets, qname):
    """sd of the N and D exponents of the shipped power laws for a quantity (C counts for
    both N and D, TPP for D and -N); laws without N or D dependence count as 0; laws in the
    width W (optima-fit's LR) are left out."""
    exps = []
    for ls in sets:
        law = ls.laws.get(qname)
        if (not law or law["form"] != "power_law" or "L" in law["exponents"]
                or "W" in law["exponents"]):     # a width law's exponent is not an N exponent
            continue
        e = law["exponents"]
        en = float(e.get("N", 0)) + float(e.get("C", 0)) - float(e.get("TPP", 0))
        ed = float(e.get("D", 0)) + float(e.get("C", 0)) + float(e.get("TPP", 0))
        exps += [en, ed]
    exps_n, exps_d = exps[0::2], exps[1::2]

    def sd(xs):
        m = sum(xs) / len(xs)
        return math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))
    return 0.5 * (sd(exps_n) + sd(exps_d)), exps_n, exps_d


def coverage_logo(points, preds, key, qi, kap, law_coef=None, credible=None):
    """Leave one setup out: fit (unless ``law_coef`` is a fixed law's predictions), set the
    setup sd from the other setups only, and test the 95% interval on the held-out setup."""
    hits, widths, rows = 0, [], []
    for g in sorted({p.group for p in points}):
        rest = [p for p in points if p.group != g and getattr(p, key)]
        held = [p for p in points if p.group == g and getattr(p, key)]
        if not held:
            continue
        if law_coef is None:
            coef = ev.fit_power_law(rest, key)
            inner = ev.logo_residuals(rest, key)
            sd_setup = setup_entry(inner.values())["setup_sd_ln"]
            lo_n, hi_n = min(p.n for p in rest), max(p.n for p in rest)
            lo_d, hi_d = min(p.d for p in rest), max(p.d for p in rest)
        else:
            r = ratios(law_coef, rest, qi)
            sd_setup = setup_entry(r.values())["setup_sd_ln"]
        for p in held:
            if law_coef is None:
                value = ev.power_law_value(coef, p.n, p.d)
                x = un.extrapolation_ln({"N": (lo_n, hi_n), "D": (lo_d, hi_d)},
                                        {"N": p.n, "D": p.d})
            else:
                if not law_coef.get(p.id) or not law_coef[p.id][qi]:
                    continue
                value, x = law_coef[p.id][qi], 0.0
            others = [preds[name][p.id][qi] for name in preds
                      if preds[name].get(p.id) and preds[name][p.id][qi]
                      and (credible is None or name in credible)]
            sd = un.combine(0.0, sd_setup, un.spread_ln(others), kap, x)
            lo, hi = un.interval(value, sd)
            inside = lo <= getattr(p, key) <= hi
            hits += inside
            widths.append(hi / lo)
            rows.append((p.id, inside))
    widths.sort()
    return {"coverage": hits / max(len(rows), 1), "n": len(rows),
            "median_width": widths[len(widths) // 2] if widths else None}


def recommend_coverage(points, cells_by_id, law: str) -> dict:
    """How `advisor recommend --law LAW --params P --tokens D --seq-len S` covers the evidence:
    run at each point's total parameters, tokens and sequence length (the shape derived from
    P, as a user who gives only the count gets it), the share of the points' LR and batch
    inside recommend's own 95% intervals and the median width of those intervals. In-sample
    for evidence-fit: the law and its setup spread were measured on these points.
    {quantity: {"coverage", "n", "median_width"}}."""
    from advisor.errors import AdvisorError
    from advisor.recommendation.core import recommend

    hits = {q: [] for _, q, _ in QUANTITIES}
    widths = {q: [] for _, q, _ in QUANTITIES}
    for p in points:
        shape = shape_of(p, cells_by_id.get(p.id))
        try:
            d = recommend(params=shape.params_total, tokens=p.d, seq_len=p.seq_len,
                          law=law).to_dict()
        except AdvisorError:
            continue                        # refused by recommend: not an interval it printed
        for key, qname, _ in QUANTITIES:
            value = getattr(p, key)
            if not value:
                continue
            out_key = "learning_rate" if qname == "learning_rate" else "batch_size_tokens"
            lo, hi = d[out_key]["interval_95"]
            hits[qname].append(lo <= value <= hi)
            widths[qname].append(hi / lo)
    res = {}
    for q, w in widths.items():
        if w:
            w = sorted(w)
            res[q] = {"coverage": round(sum(hits[q]) / len(w), 3), "n": len(w),
                      "median_width": float(f"{w[len(w) // 2]:.4g}")}
    return res


def coverage_row(law: str, cov: dict) -> str:
    """docs/trust.md's coverage-table row for ``recommend_coverage(..., law)``."""
    cols = [f"covers {cov[q]['coverage']:.0%} of {cov[q]['n']}, median width "
            f"{cov[q]['median_width']:.3g}x" for q in ("learning_rate", "batch_size")]
    return (f"| {law}, as `recommend --law {law}` prints it at each point's size and tokens "
            "(in-sample: the law and its setup spread were measured on these points) | "
            + " | ".join(cols) + " |")


def evidence_points(external):
    """(every evidence point, {Step Law point id: its grid runs}, the Step Law cells)."""
    cells = ev.steplaw_cells(Path(external) / "steplaw_dense_lr_bs_loss.csv")
    sl_points = ev.steplaw_points(cells)
    cells_by_id = {p.id: c["runs"] for p, c in zip(sl_points, cells)}
    return ev.published_points(load_published()) + sl_points, cells_by_id, cells


def print_per_point(points, preds):
    """log2(law / evidence) of every point, one table per quantity."""
    logo = {q: ev.logo_residuals(points, q) for q in ("lr", "batch")}
    for qi, (key, qname, _) in enumerate(QUANTITIES):
        print(f"\n### log2({qname} of law / evidence), per point")
        print("| point | kind | N (non-emb.) | D | value | " + " | ".join(LAWS)
              + " | evidence-fit (held out) |")
        print("|---|---|---|---|---|" + "---|" * (len(LAWS) + 1))
        for p in points:
            if not getattr(p, key):
                continue
            cells = []
            for name in LAWS:
                v = preds[name].get(p.id)
                cells.append(f"{math.log2(v[qi] / getattr(p, key)):+.2f}"
                             if v and v[qi] else "n/a")
            lg = logo[key].get(p.id)
            cells.append("-" if lg is None else f"{lg:+.2f}")
            print(f"| {p.id} | {p.kind} | {p.n:.3g} | {p.d:.3g} | {getattr(p, key):.3g} | "
                  + " | ".join(cells) + " |")


def main():
    ap = shipped.parser(__doc__.splitlines()[0])
    ap.add_argument("--per-point", action="store_true", help="print every point's ratios")
    ap.add_argument("--excess", metavar="LAW",
                    help="print only docs/trust.md's expected-excess-loss table for law set LAW")
    args = ap.parse_args()
    if args.excess:
        print(excess_table(args.excess), end="")
        return None
    points, cells_by_id, cells = evidence_points(args.external)
    preds = law_predictions(points, cells_by_id)
    sets = load_shipped()
    out = {"laws": {}, "kappa": {}, "coverage": {}}

    print("## log2(law / evidence): median / sd / RMS")
    for qi, (key, qname, _) in enumerate(QUANTITIES):
        kap, en, ed = kappa(sets, qname)
        out["kappa"][qname] = {"value": round(kap, 4), "n_exponents": en, "d_exponents": ed}
        print(f"\n### {qname} (kappa = {kap:.3f} from N exponents {en}, D exponents {ed})")
        print("| law | published runs | tuned optima (Marin) | tuned optima (Step Law grid) |")
        print("|---|---|---|---|")
        for name in LAWS:
            r = ratios(preds[name], points, qi)
            if not r:
                continue
            cols = []
            for sel in (lambda p: p.kind == "published",
                        lambda p: p.group == "marin", lambda p: p.group == "steplaw"):
                cols.append(_fmt(ev.summary(r[p.id] for p in points if sel(p) and p.id in r)))
            print(f"| {name} | " + " | ".join(cols) + " |")
            indep = [r[p.id] for p in points if p.id in r
                     and not (name == "step-law" and p.group == "steplaw")]
            out["laws"].setdefault(name, {})[qname] = setup_entry(indep)
        logo = ev.logo_residuals(points, key)
        cols = [_fmt(ev.summary(logo[p.id] for p in points if sel(p) and p.id in logo))
                for sel in (lambda p: p.kind == "published", lambda p: p.group == "marin",
                            lambda p: p.group == "steplaw")]
        print("| evidence-fit (each setup held out) | " + " | ".join(cols) + " |")
        absr = sorted(abs(x) for x in logo.values())
        qs = {f"q{int(100 * f)}": round(absr[min(len(absr) - 1, int(f * len(absr)))], 3)
              for f in (0.5, 0.8, 0.95)}
        out.setdefault("held_out_abs_log2_quantiles", {})[qname] = qs
        print("evidence-fit, each setup held out: |log2 error| quantiles "
              + ", ".join(f"{k} {v:.2f} (a {2 ** (2 * v):.1f}x-wide band)" for k, v in qs.items()))
        out["laws"].setdefault("evidence-fit", {})[qname] = setup_entry(logo.values())

        within6 = {name: _share_within(ratios(preds[name], [
            p for p in points if not (name == "step-law" and p.group == "steplaw")], qi))
            for name in LAWS}
        within6["evidence-fit"] = _share_within(logo)
        print("share of evidence within a 6x-wide band centred on the law (|log2| <= 1.29): "
              + ", ".join(f"{k} {v:.0%}" for k, v in within6.items()))
        out.setdefault("within_6x", {})[qname] = {k: round(v, 3) for k, v in within6.items()}
        print(f"\n95% interval, each setup held out ({qname}):")
        credible = credible_laws(out["laws"], qname)
        print(f"laws whose disagreement counts as model uncertainty ({qname}): "
              + ", ".join(sorted(credible)))
        cov = {"evidence-fit": coverage_logo(points, preds, key, qi, kap, credible=credible)}
        for name in ("step-law", "deepseek-llm", "porian"):
            indep = [p for p in points if not (name == "step-law" and p.group == "steplaw")]
            cov[name] = coverage_logo(indep, preds, key, qi, kap, law_coef=preds[name],
                                      credible=credible)
        for name, c in cov.items():
            print(f"  {name:<14} coverage {c['coverage']:.0%} of {c['n']}, median width "
                  f"{c['median_width']:.1f}x")
        out["coverage"][qname] = {k: {"coverage": round(v["coverage"], 3), "n": v["n"],
                                      "median_width": round(v["median_width"], 2)}
                                  for k, v in cov.items()}

    print("\n## Loss curvature on the Step Law grid (nats per octave^2, parabola within "
          "1.5 octaves of each cell's best run)")
    curv = [(c["n"], c["d"], ev.cell_curvatures(c)) for c in cells]
    for n, d, k in curv:
        print(f"  N {n:.3g} D {d:.3g}: LR {k['lr']:.4f}  batch {k['batch']:.4f}")
    lr_pts = [ev.Point("steplaw", "tuned_optimum", "c", n, d, k["lr"], None)
              for n, d, k in curv if k["lr"] and k["lr"] > 0]
    coef = ev.fit_power_law(lr_pts, "lr")
    kl = sorted(p.lr for p in lr_pts)
    kb = sorted(k["batch"] for _, _, k in curv if k["batch"] and k["batch"] > 0)
    print(f"  LR curvature trend: {math.exp(coef[0]):.4g} N^{coef[1]:.3f} D^{coef[2]:.3f} "
          f"(range {kl[0]:.4f}-{kl[-1]:.4f}, median {kl[len(kl) // 2]:.4f}); batch median "
          f"{kb[len(kb) // 2]:.4f} (range {kb[0]:.4f}-{kb[-1]:.4f})")
    out["curvature"] = {
        "unit": "nats per octave^2",
        "learning_rate": {"coefficient": float(f"{math.exp(coef[0]):.6g}"),
                          "exponents": {"N": round(coef[1], 4), "D": round(coef[2], 4)},
                          "clip": [round(kl[0], 5), round(kl[-1], 5)],
                          "median": round(kl[len(kl) // 2], 5)},
        "batch_size": {"median": round(kb[len(kb) // 2], 5), "range": [round(kb[0], 5),
                                                                      round(kb[-1], 5)]},
        "source": "Step Law released grid (steplaw_dense_lr_bs_loss.csv, smoothed final "
                  "loss), 17 cells, N 2.15e8-1.07e9 non-embedding, D 4e9-1e11"}

    out["recommend_coverage"] = recommend_coverage(points, cells_by_id, "evidence-fit")
    print("\n95% interval as `recommend` prints it (docs/trust.md's coverage table):\n"
          + coverage_row("evidence-fit", out["recommend_coverage"]))
    if args.per_point:
        print_per_point(points, preds)
    rank = ranking(out)
    out["ranking"] = [{"law": k, "rms_setup_sd_ln": round(v, 4)} for k, v in rank]
    print("\n## Ranking by setup spread (RMS over LR and batch, ln units; lower is better): "
          + ", ".join(f"{k} {v:.2f}" for k, v in rank))
    shipped.write_or_check(render_files(points, out), write=args.write, check=args.check)
    return out


def render_files(points, out) -> dict:
    """{path: text} of the two files --write writes: the evidence-fit law set (fitted by the
    package's power-law fitter, advisor.fit.powerlaw, through advisor.fit.evidence) and the
    trust data."""
    import yaml
    lo_n, hi_n = min(p.n for p in points), max(p.n for p in points)
    lo_d, hi_d = min(p.d for p in points), max(p.d for p in points)
    groups = sorted({p.group for p in points})
    laws = {}
    for key, qname, _ in QUANTITIES:
        pts = [p for p in points if getattr(p, key)]
        coef = ev.fit_power_law(pts, key)
        laws[qname] = {
            "form": "power_law", "coefficient": float(f"{math.exp(coef[0]):.5g}"),
            "exponents": {"N": round(coef[1], 4), "D": round(coef[2], 4)},
            "unit": "peak LR" if key == "lr" else "tokens",
            "fitted_range": {"N": [float(f"{lo_n:.3g}"), float(f"{hi_n:.3g}")],
                             "D": [float(f"{lo_d:.3g}"), float(f"{hi_d:.3g}")]},
            "note": (f"least squares on ln {key} over {len(pts)} points of {len(groups)} "
                     "setups, each setup weighted equally; spread by setup in "
                     "recipes/published/trust.yaml")}
    d = {"schema": "hp-advisor/lawset/v1", "name": "evidence-fit",
         "title": "Evidence fit: published runs and tuned optima of 13 setups",
         "source": {"citation": "this repository: bench/trust_evidence.py on "
                                "recipes/published/configs.yaml and the Step Law grid",
                    "url": "docs/trust.md",
                    "checked": "refit by `python -m bench.trust_evidence --write`; "
                               "tests/test_recommend_trust.py checks the constants"},
         "conventions": {"params": "non_embedding", "compute": "6ND", "batch_unit": "tokens",
                         "weight_decay": "coupled",
                         "schedule": "mixed: cosine to 10% (most), WSD/linear to 0 "
                                     "(SmolLM2, Marin), multi-step (DeepSeek)"},
         "laws": laws,
         "provenance": {"setups": groups, "points": len(points),
                        "command": "python -m bench.trust_evidence --write"},
         "notes": "Practice (published runs) and optima (tuned sweeps) both enter: the law "
                  "is where independent setups landed, not an optimum of one setup."}
    files = {REPO / "recipes" / "laws" / "evidence-fit.yaml": lawset_text(d)}
    trust = {"schema": "hp-advisor/trust/v1",
             "command": "python -m bench.trust_evidence --write",
             "inputs": ["recipes/published/configs.yaml",
                        "shared/data/external/steplaw_dense_lr_bs_loss.csv"],
             **out}
    files[REPO / "recipes" / "published" / "trust.yaml"] = (
        "# Generated by bench/trust_evidence.py --write; do not edit by hand.\n"
        + yaml.safe_dump(trust, sort_keys=False, width=100))
    return files


if __name__ == "__main__":
    main()
