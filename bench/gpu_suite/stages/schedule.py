"""Stage 7: schedule-law accuracy on our own proxy curves (bench/bench_schedule_proxy.py at
its GPU size): five runs at one peak LR, the law fitted on constant + cosine, the final loss
of the three held-out schedules predicted. Runs are kept in the stage's store, so a cut-off
stage resumes at the next run. The Muon and depth sweeps are stage 8 (transfer_sweeps.py).

Units: relative error of the predicted final training loss; pairs of schedules whose final
losses the law orders differently from the measurement ("discordant")."""
from __future__ import annotations

import math
import time

from bench.gpu_suite.budget import Estimate, Unit, sweep_seconds
from bench.gpu_suite.probe import step_model
from advisor.common.outputs import md_table
from bench.gpu_suite.stages.base import Outcome, Stage
from bench.gpu_suite.state import write_json, write_text
from bench import bench_schedule_proxy

FINAL_GOAL = 0.003     # the README's bar: every test curve's final loss within 0.3%


class ScheduleStage(Stage):
    name = "schedule"

    def _args(self, ctx):
        compile_ = "never" if ctx.compile == "auto" and not ctx.cuda else (
            "auto" if ctx.compile == "auto" else ctx.compile)
        return bench_schedule_proxy.parser().parse_args(
            ctx.sizes["schedule"]["args"] + ["--device", ctx.device, "--compile", compile_,
                                              "--out", str(ctx.stage_dir(self.name))])

    def _specs(self, ctx):
        return bench_schedule_proxy.proxy_specs(self._args(ctx))

    def estimate(self, ctx):
        from calibration.model.proxy import flops_per_token
        from advisor.runs.store import DB_NAME, ResultsStore

        specs = self._specs(ctx)
        store = ctx.stage_dir(self.name) / "store"
        done = set()
        if (store / DB_NAME).exists():
            with ResultsStore.open(store) as st:
                done = st.final_ids()
        units = []
        for sched, s in specs.items():
            if s.run_id in done:
                continue
            fpt = flops_per_token(s.model_config(vocab_size=256))
            compiled = s.compile == "always" or (s.compile == "auto" and ctx.cuda)
            c = ctx.probe.get("compile", {}).get("compile_s", 0.0) if compiled else 0.0
            evals = math.ceil(s.steps / s.eval_interval)
            units.append(Unit(sched, sweep_seconds(s.steps, 1, fpt * s.tokens_per_step,
                                                   step_model(ctx.probe, compiled=compiled), c,
                                                   evals * s.eval_sequences * s.seq_len * fpt / 3)))
        return Estimate(15.0, tuple(units), divisible=True,
                        detail=f"{len(units)} of {len(specs)} runs pending, one at a time; "
                               "+15 s law selection and plot")

    def run(self, ctx, est):
        from calibration.train.data import load_data
        from advisor.runs.store import ResultsStore

        args = self._args(ctx)
        specs = bench_schedule_proxy.proxy_specs(args)
        sdir = ctx.stage_dir(self.name)
        est_by = {u.label: u.seconds for u in est.units}

        def keep_going(spec):
            sched = next(k for k, v in specs.items() if v is spec)
            ok = ctx.unit_fits(est_by.get(sched, 0.0))
            if not ok:
                ctx.log(f"  stop before {sched}: needs ~{est_by.get(sched, 0):.0f} s")
            return ok

        t0 = time.perf_counter()
        store = ResultsStore.open_or_create(sdir / "store")
        try:
            missing = bench_schedule_proxy.train_missing(specs, store, load_data("stdlib"),
                                                          ctx.device, keep_going)
        finally:
            store.close()
        ctx.checkpoint()
        if missing:
            return Outcome("partial", [], note=f"{missing} of {len(specs)} runs still to train "
                                              f"({time.perf_counter() - t0:.0f} s this call)")
        res = bench_schedule_proxy.analyse(args, specs, sdir)
        tests = [r for r in res["rows"] if r["role"] == "test"]
        worst = max(abs(r["final_rel"]) for r in tests)
        figs = [self.figure("max_final_err", value=worst, met=worst <= FINAL_GOAL),
                self.figure("discordant", value=f"{res['discordant_pairs']}/{res['pairs']}",
                            met=res["discordant_pairs"] == 0)]
        write_text(sdir / "results.md", f"# {self.title}\n\nlaw {res['law']} "
                   f"[{res['options']}] fitted on {', '.join(bench_schedule_proxy.FIT)}\n\n"
                   + md_table(["schedule", "role", "mean rel err", "final rel err",
                               "final measured", "final predicted"],
                              [[r["schedule"], r["role"], f"{r['mean_rel']:.3%}",
                                f"{r['final_rel']:+.3%}", f"{r['final_true']:.4f}",
                                f"{r['final_pred']:.4f}"] for r in res["rows"]]))
        write_json(sdir / "results.json", res | {"settings": vars(args)})
        return Outcome("done", figs, pngs=[sdir / "overlay.png"])
