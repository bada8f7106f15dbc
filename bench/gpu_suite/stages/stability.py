"""Stage 10: stability proxies (issue 26). recipes/plans/gpu-stability.yaml (toy plan with
``--smoke``) trained stack by stack into the stage's store, then summarised by
``calibration.analyze.stability_summary``: LR sensitivity per arm and width, the largest stable LR
per width and its law, checked at the held-out width, attention-logit growth, log-partition
and eps ratios. Writes results.md, stability.json (what ``advisor recommend --stability-sweep``
reads) and stability.png. Divisible by stack; resumes from its store.

Units: LRs are peak LRs; losses in nats per byte; the held-out error in octaves (log2).
"""
from __future__ import annotations

from bench.gpu_suite.budget import Estimate
from bench.gpu_suite.stages import sweeps
from bench.gpu_suite.stages.base import Outcome, Stage
from bench.gpu_suite.state import write_json, write_text

FINAL = ("finished", "diverged")


class StabilityStage(Stage):
    name = "stability"

    def _specs(self, ctx):
        return sweeps.stage_specs(ctx.sizes["stability"]["plan"], ctx.stage_dir(self.name), ctx,
                                  stack=True)

    def estimate(self, ctx):
        plan, specs, vocab = self._specs(ctx)
        groups, units = sweeps.pending_units(specs, ctx.out / self.name / "store", ctx, vocab)
        fixed = 5.0 if ctx.smoke else 20.0
        return Estimate(fixed, tuple(units), divisible=True,
                        detail=f"{sum(len(g) for g in groups)} of {len(specs)} runs pending in "
                               f"{len(groups)} stacks; +{fixed:.0f} s summary and plot")

    def run(self, ctx, est):
        from advisor.runs.store import ResultsStore
        from calibration.analyze.stability_summary import build, plot, summary_json, tables

        plan, specs, vocab = self._specs(ctx)
        sdir = ctx.stage_dir(self.name)
        store = sdir / "store"
        groups, units = sweeps.pending_units(specs, store, ctx, vocab)
        trained = sweeps.train_units(groups, units, store, ctx, plan.name)
        ids = {s.run_id for s in specs}
        runs = [r for r in sweeps.store_runs(store) if r.run_id in ids]
        final = sum(r.status in FINAL for r in runs)
        figs = [self.figure("runs", value=f"{final}/{len(specs)}", met=final == len(specs))]
        if final < len(specs) or trained["stopped_for_budget"]:
            write_json(sdir / "results.json", {"training": trained, "final": final})
            return Outcome("partial", figs, note=f"{final}/{len(specs)} runs; summary when "
                                                 "complete")
        with ResultsStore.open(store) as st:
            s = build(st)
        png = sdir / "stability.png"
        plot(s, png)
        write_text(sdir / "stability.json", summary_json(s))
        held = s["arms"].get("base", {}).get("law", {}).get("heldout")
        if held:
            figs.append(self.figure("heldout_error", value=held["error_octaves"],
                                    met=abs(held["error_octaves"]) <= 1.0))
        sens = _sensitivities(s)
        if sens:
            w, b, q = sens
            figs.append(self.figure("qk_sensitivity", value=f"width {w}: base {b:.3f}, "
                                    f"qk_norm {q:.3f}", met=q < b))
        write_text(sdir / "results.md", f"# {self.title}\n\nPlan `{plan.name}`, {final} runs.\n\n"
                   + tables(s) + "\n![stability](stability.png)\n\nRedo: `advisor results "
                   f"{store} --by stability --plot {png} --format json > "
                   f"{sdir / 'stability.json'}`\n")
        write_json(sdir / "results.json", {"training": trained, "final": final})
        return Outcome("done", figs, pngs=[png])


def _sensitivities(s: dict):
    """(width, base sensitivity, qk_norm sensitivity) at the widest width both arms have."""
    arms = s["arms"]
    if "base" not in arms or "qk_norm" not in arms:
        return None
    rows = {a: {r["width"]: r["sensitivity"] for r in arms[a]["rows"]} for a in ("base", "qk_norm")}
    common = sorted(set(rows["base"]) & set(rows["qk_norm"]))
    if not common:
        return None
    w = common[-1]
    return w, rows["base"][w], rows["qk_norm"][w]
