"""Stage 6: the held-out transfer check, ``advisor validate`` (the product command) at 4x
the largest calibrated width, on stage 5's store and law set: the measured loss gap to the
best LR measured there of the fitted law's LR, Step Law's LR and the muP-transfer-only LR
(and SP-style transfer, in its table). The held-out cell is the calibration's most common
token budget (4.9M tokens for gpu-calibration, where its three arms meet).

Units: gaps in nats per token (final held-out loss minus the best measured)."""
from __future__ import annotations

import math
from collections import Counter

from bench.gpu_suite.budget import Estimate, sweep_seconds
from bench.gpu_suite.probe import step_model
from bench.gpu_suite.stages.base import Outcome, Stage
from bench.gpu_suite.stages.calibration import LAW_NAME, advisor
from bench.gpu_suite.state import read_json

CHOICES = 4      # law, muP transfer, SP-style transfer, Step Law: each trained beside the grid


class TransferStage(Stage):
    name = "transfer"

    def _paths(self, ctx):
        cal = ctx.out / "calibration"
        return cal / "store", cal / f"{LAW_NAME}.yaml", ctx.stage_dir(self.name)

    def _cell(self, ctx):
        """(the muP runs, their most common token budget and batch size)."""
        from bench.gpu_suite.stages.sweeps import store_runs

        store, _, _ = self._paths(ctx)
        mup = [r for r in store_runs(store) if r.settings.get("parameterization") == "mup"]
        if not mup:
            raise RuntimeError(f"{store}: no muP calibration runs")
        tokens = Counter(r.settings["tokens"] for r in mup).most_common(1)[0][0]
        bs = Counter(r.settings["batch_size"] for r in mup
                     if r.settings["tokens"] == tokens).most_common(1)[0][0]
        return mup, tokens, bs

    def estimate(self, ctx):
        import dataclasses

        from calibration.model.proxy import flops_per_token
        from advisor.specs.runspec import RunSpec

        mup, tokens, bs = self._cell(ctx)
        ref = next(r for r in mup if r.settings["tokens"] == tokens
                   and r.settings["batch_size"] == bs)
        width = ctx.sizes["transfer"]["width"] or 4 * max(r.settings["width"] for r in mup)
        spec = dataclasses.replace(RunSpec.from_settings(ref.settings), width=width)
        members = 2 * ctx.sizes["transfer"]["grid_steps"] + 1 + CHOICES
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
        import torch

        from bench.gpu_suite.state import write_text

        store, law, sdir = self._paths(ctx)
        _, tokens, _ = self._cell(ctx)
        args = ["validate", str(store), "--laws", str(law), "--out", str(sdir / "store"),
                "--tokens", str(tokens), "--grid-steps", str(ctx.sizes["transfer"]["grid_steps"]),
                "--device", ctx.device, "--threads", str(torch.get_num_threads()),
                "--table", str(sdir / "results.md"), "--json", str(sdir / "results.json"),
                "--plot", str(sdir / "transfer.png"), "--no-progress"]
        if ctx.sizes["transfer"]["width"]:
            args += ["--width", str(ctx.sizes["transfer"]["width"])]
        proc = advisor(args, ctx.log)
        write_text(sdir / "validate.log", proc.stdout)
        res = read_json(sdir / "results.json")
        rows = {r["choice"]: r for r in res["rows"]}

        def gap(prefix):           # nats; a diverged choice's is infinite (null in the JSON)
            r = next((v for k, v in rows.items() if k.startswith(prefix)), None)
            return None if r is None else math.inf if r.get("diverged") else r["gap"]

        figs = [self.figure("law_gap", value=gap("law")),
                self.figure("steplaw_gap", value=gap("Step Law")),
                self.figure("mup_gap", value=gap("muP transfer")),
                self.figure("width", value=res["width"])]
        write_text(sdir / "command.txt", res["command"] + "\n")
        return Outcome("done", figs, pngs=[sdir / "transfer.png"])
