"""Stage 6: the held-out transfer check (bench/transfer_check.py) at 4x the largest
calibrated width: the measured loss gap to the grid's best of the fitted law's LR, Step
Law's LR and the muP-transfer-only LR. Needs stage 5 finished (its store and law set).

Units: gaps in nats per token (final held-out loss minus the grid's best)."""
from __future__ import annotations

import math
from collections import Counter

from bench.gpu_suite.budget import Estimate, sweep_seconds
from bench.gpu_suite.probe import step_model
from bench.gpu_suite.stages.base import Outcome, Stage
from bench.gpu_suite.stages.calibration import LAW_NAME
from bench.gpu_suite.state import read_json
from bench import transfer_check

CHOICES = 3      # law, Step Law, muP transfer: each trained beside the grid


class TransferStage(Stage):
    name = "transfer"

    def _paths(self, ctx):
        cal = ctx.out / "calibration"
        return cal / "store", cal / f"{LAW_NAME}.yaml", ctx.stage_dir(self.name)

    def estimate(self, ctx):
        import dataclasses

        from calibration.model.proxy import flops_per_token
        from advisor.specs.runspec import RunSpec

        from bench.gpu_suite.stages.sweeps import store_runs

        store, law, sdir = self._paths(ctx)
        mup = [r for r in store_runs(store) if r.settings.get("parameterization") == "mup"]
        if not mup:
            raise RuntimeError(f"{store}: no muP calibration runs")
        tokens = Counter(r.settings["tokens"] for r in mup).most_common(1)[0][0]
        bs = Counter(r.settings["batch_size"] for r in mup).most_common(1)[0][0]
        ref = next(r for r in mup if r.settings["tokens"] == tokens
                   and r.settings["batch_size"] == bs)
        width = ctx.sizes["transfer"]["width"] or 4 * max(r.settings["width"] for r in mup)
        spec = dataclasses.replace(RunSpec.from_settings(ref.settings), width=width)
        lo, hi = ctx.sizes["transfer"]["lr_pow2"]
        members = hi - lo + 1 + CHOICES
        fpt = flops_per_token(spec.model_config(vocab_size=256))
        evals = math.ceil(spec.steps / spec.eval_interval)
        compile_s = (ctx.probe.get("compile", {}).get("compile_s", 0.0)
                     if spec.compile == "always" else 0.0)
        eval_flops = evals * spec.eval_sequences * spec.seq_len * fpt / 3
        s = sweep_seconds(spec.steps, members, fpt * spec.tokens_per_step,
                          step_model(ctx.probe, compiled=spec.compile == "always"), compile_s,
                          eval_flops)
        return Estimate(10.0 + s, detail=f"width {width}: up to {members} runs of {spec.steps} "
                                         f"steps as one stack ({fpt:.3g} FLOPs/token)")

    def run(self, ctx, est):
        from bench.gpu_suite.state import write_text

        store, law, sdir = self._paths(ctx)
        lo, hi = ctx.sizes["transfer"]["lr_pow2"]
        argv = ["--calibration", str(store), "--laws", str(law), "--out", str(sdir / "store"),
                "--lr-pow2", str(lo), str(hi), "--device", ctx.device,
                "--table", str(sdir / "results.md"), "--json", str(sdir / "results.json"),
                "--plot", str(sdir / "transfer.png"), "--no-progress"]
        if ctx.sizes["transfer"]["width"]:
            argv += ["--width", str(ctx.sizes["transfer"]["width"])]
        ctx.log("  $ python -m bench.transfer_check " + " ".join(argv))
        rc = transfer_check.main(argv)
        if rc != 0:
            raise RuntimeError(f"bench/transfer_check.py exited {rc}")
        res = read_json(sdir / "results.json")
        rows = {r["choice"]: r for r in res["rows"]}

        def gap(prefix):
            r = next((v for k, v in rows.items() if k.startswith(prefix)), None)
            return None if r is None else r["gap"]

        g_law, g_step, g_mup = gap("law"), gap("Step Law"), gap("muP transfer")
        figs = [self.figure("law_gap", value=g_law),
                self.figure("steplaw_gap", value=g_step),
                self.figure("mup_gap", value=g_mup),
                self.figure("width", value=res["width"])]
        write_text(sdir / "command.txt", "python -m bench.transfer_check " + " ".join(argv) + "\n")
        return Outcome("done", figs, pngs=[sdir / "transfer.png"])
