"""Stage 5: our own calibration (recipes/plans/gpu-calibration.yaml, stacked), as much of
it as the budget allows in plan order (the token-budget arm first), resumed from its store
on the next call; then the law set fitted by ``advisor fit`` (the command of docs/stacking.md,
"Our own law set") with its provenance (device, torch, date, plan, runs,
commands) added, and the plots of ``advisor results --plot`` and ``advisor plot``.

The law set is written to DIR/calibration/proxy-stdlib.yaml (and its plots beside it), ready
to be committed as recipes/laws/proxy-stdlib.yaml with recipes/laws/proxy-stdlib/."""
from __future__ import annotations

import subprocess
import sys
import time

from bench.gpu_suite.budget import Estimate
from bench.gpu_suite.stages import sweeps
from bench.gpu_suite.stages.base import Outcome, Stage
from bench.gpu_suite.state import write_json, write_text

LAW_NAME = "proxy-stdlib"
SCHEDULE = "wsd:warmup=0.05,cooldown=0.2,shape=linear"   # the plan's schedule, recorded


def advisor(args: list[str], log) -> subprocess.CompletedProcess:
    """Run ``python -m advisor.cli ARGS`` (the real CLI); raise with its error line on failure."""
    cmd = [sys.executable, "-m", "advisor.cli", *args]
    log("  $ advisor " + " ".join(args))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"advisor {args[0]} exited {proc.returncode}: {tail}")
    return proc


class CalibrationStage(Stage):
    name = "calibration"

    def _plan(self, ctx):
        sdir = ctx.stage_dir(self.name)
        return (sdir, *sweeps.stage_specs(ctx.sizes["calibration"]["plan"], sdir, ctx))

    def estimate(self, ctx):
        sdir, plan, specs, vocab = self._plan(ctx)
        groups, units = sweeps.pending_units(specs, sdir / "store", ctx, vocab)
        fit_s = 10.0 if ctx.smoke else 60.0
        return Estimate(fit_s, tuple(units), divisible=True,
                        detail=f"{sum(len(g) for g in groups)} of {len(specs)} runs pending in "
                               f"{len(groups)} stacks; fit + plots ~{fit_s:.0f} s")

    def run(self, ctx, est):
        import yaml

        from advisor.common.outputs import atomic_write_text
        from advisor.common.yamlio import read_yaml_file

        sdir, plan, specs, vocab = self._plan(ctx)
        store = sdir / "store"
        groups, units = sweeps.pending_units(specs, store, ctx, vocab)
        trained = sweeps.train_units(groups, units, store, ctx, plan.name)
        ids = {s.run_id for s in specs}
        runs = [r for r in sweeps.store_runs(store) if r.run_id in ids]
        final = sum(r.status in ("finished", "diverged") for r in runs)
        complete = final == len(specs)
        figs = [self.figure("runs", value=f"{final}/{len(specs)}", met=complete)]
        law = sdir / f"{LAW_NAME}.yaml"
        commands = [
            ["results", str(store), "--plot", str(sdir / "lr_sweeps.png")],
            ["fit", str(store), "--out", str(law), "--name", LAW_NAME, "--select",
             "parameterization=mup", "--lr-convention", "mup_base", "--schedule", SCHEDULE,
             "--cv"] + (["--bootstrap", "5"] if ctx.smoke else []),
            ["plot", str(store), "--laws", str(law), "--select", "parameterization=mup",
             "--out", str(sdir / "plots")],
        ]
        logs = []
        try:
            for c in commands:
                logs.append(advisor(c, ctx.log).stdout)
        except RuntimeError as exc:
            if complete:
                raise
            write_json(sdir / "results.json", {"training": trained, "runs_final": final,
                                               "runs_planned": len(specs), "fit": str(exc)})
            return Outcome("partial", figs, note=f"fit waits for more runs ({exc})")
        write_text(sdir / "advisor.log", "\n".join(logs))
        d = read_yaml_file(law, "law set")
        sw = ctx.probe["software"]
        d.setdefault("provenance", {})["measured_on"] = {
            "device": sw.get("gpu", ctx.device), "torch": sw["torch"], "cuda": sw["torch_cuda"],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "plan": plan.path if not ctx.smoke else f"toy plan {plan.name} (smoke: not a result)",
            "runs_planned": len(specs), "runs_final": final, "complete": complete,
            "commands": ["python -m bench.gpu_suite (stage calibration)"] +
                        ["advisor " + " ".join(c) for c in commands],
        }
        atomic_write_text(law, yaml.safe_dump(d, sort_keys=False))
        from advisor.laws.lawset import load_lawset
        ls = load_lawset(str(law))                        # it must still load as a law set
        lr = d["laws"].get("learning_rate", {})
        exps = lr.get("exponents", {})
        shown = f"{lr.get('coefficient')} " + " ".join(f"{k}^{v}" for k, v in exps.items())
        q = d["provenance"].get("fit_quality", {})
        def pct(name):
            v = (q.get(name) or {}).get("mean_gap_pct")
            return None if v is None else v / 100.0

        gin, gcv = pct("in_sample_gap"), pct("cross_validated_gap")
        figs += [self.figure("lr_law", value=shown.strip()),
                 self.figure("gap_in", value=gin),
                 self.figure("gap_cv", value=gcv)]
        write_text(sdir / "results.md", f"# {self.title}\n\nLaw set `{ls.name}` from {final} of "
                   f"{len(specs)} planned runs ({'complete' if complete else 'partial'}).\n\n"
                   f"- learning rate: {shown}\n- in-sample gap (mean): {gin}\n"
                   f"- held-out-cell gap (mean): {gcv}\n")
        write_json(sdir / "results.json", {"training": trained, "law_set": str(law),
                                           "fit_quality": q, "runs_final": final,
                                           "runs_planned": len(specs)})
        pngs = [sdir / "lr_sweeps.png"]
        return Outcome("done" if complete else "partial", figs, pngs=pngs)
