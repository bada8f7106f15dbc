"""Stage 2, the product's core claim: the muP-vs-SP LR sweep at four widths
(recipes/plans/gpu-lr-sweep.yaml, trained as stacks), its plot, and three judgements:
muP's optimum within one factor of 2 across widths, SP's optimum moving more, and muP's
best held-out loss no worse than either SP arm's at every width.

LRs are base-width peak LRs; losses final held-out nats per token (advisor.runs.summary)."""
from __future__ import annotations

import math

from bench.gpu_suite.budget import Estimate
from advisor.common.outputs import md_table
from bench.gpu_suite.stages.base import Outcome, Stage
from bench.gpu_suite.stages import sweeps
from bench.gpu_suite.state import write_json, write_text


def judge(curves: dict, labels: dict) -> dict:
    """From advisor.runs.summary.lr_curves and arm_labels: per arm, the best LR per width
    and its spread (log2 of max over min best LR); per width, whether muP's best loss is
    no worse than every SP arm's. Pure."""
    arms = {}
    for key, widths in curves.items():
        best = {}
        for w, pts in widths.items():
            finite = [p for p in pts if math.isfinite(p[1])]
            if finite:
                lr, loss = min(finite, key=lambda p: p[1])[:2]
                best[w] = (lr, loss)
        lrs = [v[0] for v in best.values()]
        spread = math.log2(max(lrs) / min(lrs)) if len(lrs) >= 2 else math.nan
        sweep = dict(key)          # advisor.specs.grouping.group_key: (setting, value) pairs
        arms[labels[key]] = {"param": sweep["parameterization"], "model": sweep["model"],
                             "best": best,
                             "log2_spread": spread}
    mup = [a for a in arms.values() if a["param"] == "mup"]
    sps = {n: a for n, a in arms.items() if a["param"] == "sp"}
    widths = sorted({w for a in arms.values() for w in a["best"]})
    wins = []
    for w in widths:
        m = [a["best"][w][1] for a in mup if w in a["best"]]
        s = [a["best"][w][1] for a in sps.values() if w in a["best"]]
        if m and s:
            wins.append({"width": w, "mup": min(m), "best_sp": min(s), "mup_no_worse": min(m) <= min(s)})
    return {"arms": arms, "widths": widths, "wins": wins}


class LRSweepStage(Stage):
    name = "lr-sweep"

    def _plan(self, ctx):
        sdir = ctx.stage_dir(self.name)
        _, specs, vocab = sweeps.stage_specs(ctx.sizes["lr_sweep"]["plan"], sdir, ctx, stack=True)
        return sdir, specs, vocab

    def estimate(self, ctx):
        sdir, specs, vocab = self._plan(ctx)
        groups, units = sweeps.pending_units(specs, sdir / "store", ctx, vocab)
        return Estimate(10.0, tuple(units), divisible=True,
                        detail=f"{sum(len(g) for g in groups)} runs pending in {len(groups)} stacks; "
                               f"+10 s analysis and plot")

    def run(self, ctx, est):
        from advisor.cli.plots import lr_sweeps
        from advisor.runs.summary import arm_labels, lr_curves

        sdir, specs, vocab = self._plan(ctx)
        groups, units = sweeps.pending_units(specs, sdir / "store", ctx, vocab)
        trained = sweeps.train_units(groups, units, sdir / "store", ctx, "gpu-suite-lr-sweep")
        ids = {s.run_id for s in specs}
        runs = [r for r in sweeps.store_runs(sdir / "store") if r.run_id in ids]
        status = "partial" if trained["stopped_for_budget"] or len(
            [r for r in runs if r.status in ("finished", "diverged")]) < len(specs) else "done"
        curves = lr_curves(runs)
        labels = arm_labels(curves)
        j = judge(curves, labels)
        mup = [a for a in j["arms"].values() if a["param"] == "mup"]
        # SP with muP's base constants: the SP arm whose model overrides are muP's
        sp_same = [a for a in j["arms"].values() if a["param"] == "sp"
                   and mup and a["model"] == mup[0]["model"]]
        mup_spread = mup[0]["log2_spread"] if mup else math.nan
        sp_spread = sp_same[0]["log2_spread"] if sp_same else math.nan
        n_w = len(j["wins"])
        n_win = sum(w["mup_no_worse"] for w in j["wins"])
        counts = {k: sum(r.status == k for r in runs) for k in ("finished", "diverged", "failed")}
        figs = [self.figure("mup_spread", value=mup_spread,
                            met=None if math.isnan(mup_spread) else mup_spread <= 1),
                self.figure("sp_spread", value=sp_spread,
                            met=None if math.isnan(sp_spread) or math.isnan(mup_spread)
                            else sp_spread > mup_spread),
                self.figure("mup_wins", value=f"{n_win}/{n_w}" if n_w else None,
                            met=(n_win == n_w) if n_w else None),
                self.figure("runs", value=f"{counts['finished']}/{counts['diverged']}/"
                                          f"{counts['failed']} of {len(specs)}")]
        pngs = []
        if curves:
            png = sdir / "lr_sweep.png"
            lr_sweeps(runs, png, title=f"muP vs SP, {ctx.probe['software'].get('gpu', ctx.device)}")
            pngs.append(png)
        rows = []
        for name, a in sorted(j["arms"].items()):
            for w, (lr, loss) in sorted(a["best"].items()):
                rows.append([name, w, f"2^{math.log2(lr):.0f}", f"{loss:.4f}"])
        write_text(sdir / "results.md", f"# {self.title}\n\n" +
                   md_table(["arm", "width", "best LR", "best held-out loss"], rows) + "\n" +
                   md_table(["width", "muP best", "best SP arm", "muP no worse"],
                            [[w["width"], f"{w['mup']:.4f}", f"{w['best_sp']:.4f}", w["mup_no_worse"]]
                             for w in j["wins"]]))
        write_json(sdir / "results.json", {"judgement": {
            "arms": {n: {"best": {str(w): v for w, v in a["best"].items()},
                         "log2_spread": a["log2_spread"]} for n, a in j["arms"].items()},
            "wins": j["wins"]}, "training": trained, "counts": counts})
        return Outcome(status, figs, pngs=pngs)
