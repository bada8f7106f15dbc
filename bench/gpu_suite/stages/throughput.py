"""Stage 3: stacked vs one-at-a-time throughput of an 8-LR sweep at widths 128-1024
(bench/bench_stacked.py, one width at a time), with MFU against the bf16 matmul peak the
probe measured on this device. Goals: x8 at the first width (128), x4 at the second (256),
stacked MFU >= 40% at the last (1024). Each finished width is kept (rows.json), so a
cut-off stage resumes at the next width.

Units: model-tokens/s (tokens trained per second summed over all members); MFU is a
fraction of the measured peak FLOP/s."""
from __future__ import annotations

import math

from bench.gpu_suite.budget import Estimate, Unit
from bench.gpu_suite.probe import step_model
from bench.gpu_suite.stages.base import Outcome, Stage
from bench.gpu_suite.state import read_json, write_json, write_text
from bench import bench_stacked

GOALS = {0: 8.0, 1: 4.0}       # speedup goals by width position
MFU_GOAL = 0.40                # at the last width


class ThroughputStage(Stage):
    name = "throughput"

    def _args(self, ctx):
        compile_ = {"auto": "auto", "always": "always", "never": "never"}[ctx.compile]
        args = bench_stacked.parser().parse_args(ctx.sizes["throughput"]["args"] +
                                                 ["--device", ctx.device, "--compile", compile_])
        bench_stacked.apply_presets(args, ctx.device)
        return args

    def estimate(self, ctx):
        from calibration.train.data import load_data
        from calibration.model.proxy import flops_per_token

        args = self._args(ctx)
        done = {r["width"] for r in read_json(ctx.stage_dir(self.name) / "rows.json", [])}
        compiling = args.compile == "always" or (args.compile == "auto" and ctx.cuda)
        model = step_model(ctx.probe, compiled=compiling)
        probe_c = ctx.probe.get("compile", {}) if compiling else {}
        c = probe_c.get("compile_s", 0.0)                   # a shape's first compile
        c_warm = probe_c.get("warm_compile_s", c)           # its further runs (cache hits)
        vocab = load_data("stdlib").vocab_size
        units = []
        for w in args.widths:
            if w in done:
                continue
            spec = bench_stacked.sweep_specs(w, args)[0]
            f = flops_per_token(spec.model_config(vocab_size=vocab)) * spec.tokens_per_step
            k = args.lrs * args.seeds
            one = c + (k - 1) * c_warm + k * args.steps * model.step_s(f)
            stacked = c + args.steps * model.step_s(k * f)
            units.append(Unit(f"width {w}", one + stacked))
        return Estimate(5.0 + c, tuple(units), divisible=True,
                        detail=f"{len(units)} widths pending; compile {c:.1f} s per new shape, "
                               f"{c_warm:.1f} s per further run of it")

    def run(self, ctx, est):
        from calibration.train.data import load_data

        sdir = ctx.stage_dir(self.name)
        args = self._args(ctx)
        rows = read_json(sdir / "rows.json", [])
        done = {r["width"] for r in rows}
        data = load_data("stdlib")
        peak = ctx.probe["peak_flops"]
        bench_stacked.warm_up(args, data, ctx.device)
        stopped = False
        for w, unit in zip([w for w in args.widths if w not in done], est.units):
            if not ctx.unit_fits(unit.seconds):
                ctx.log(f"  stop before {unit.label}: needs ~{unit.seconds:.0f} s")
                stopped = True
                break
            import time
            t0 = time.perf_counter()
            row = bench_stacked.bench_width(w, args, data, ctx.device, peak)
            row["estimate_s"], row["actual_s"] = unit.seconds, time.perf_counter() - t0
            rows.append(row)
            write_json(sdir / "rows.json", rows)
            ctx.checkpoint()
        rows.sort(key=lambda r: r["width"])
        by_pos = {args.widths.index(r["width"]): r for r in rows if r["width"] in args.widths}
        figs = []
        for pos, goal in GOALS.items():
            r = by_pos.get(pos)
            v = r["speedup"] if r else None
            figs.append(self.figure(f"speedup_{pos}", value=v,
                                    label=f"stacked / one-at-a-time at width {args.widths[pos]}",
                                    met=None if v is None or not math.isfinite(v) else v >= goal))
        last = by_pos.get(len(args.widths) - 1)
        v = last["mfu_stacked"] if last else None
        figs.append(self.figure("mfu_last", value=v, label=f"stacked MFU at width {args.widths[-1]}",
                                met=None if v is None or not math.isfinite(v) else v >= MFU_GOAL))
        figs.append(self.figure("peak", value=peak / 1e12, goal=ctx.probe["peak_source"]))
        write_text(sdir / "results.md", f"# {self.title}\n\nPeak {peak / 1e12:.1f} TFLOP/s "
                   f"({ctx.probe['peak_source']}).\n\n" + bench_stacked.markdown_table(rows))
        pngs = []
        if rows:
            png = sdir / "stacked.png"
            from advisor.cli.plots import stacked_throughput
            stacked_throughput(rows, ctx.probe["software"].get("gpu", ctx.device), png)
            pngs.append(png)
        write_json(sdir / "results.json", {"peak_flops": peak, "peak_source": ctx.probe["peak_source"],
                                           "settings": {k: str(v) for k, v in vars(args).items()},
                                           "rows": rows})
        status = "partial" if stopped or len(rows) < len(args.widths) else "done"
        return Outcome(status, figs, pngs=pngs)
