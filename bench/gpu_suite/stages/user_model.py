"""Stage 9: the user-model loop (issue 24) at GPU size, each step the CLI a user runs:
``advisor prepare-data`` (a byte-level BPE trained on the stdlib corpus, nanoGPT token files)
-> ``advisor plan --hf-config --budget-gpu-hours`` -> calibrate (the plan's runs, stacked,
trained stack by stack into the stage's store, so the stage divides and resumes) ->
``advisor fit`` -> ``advisor recommend --hf-config`` -> ``advisor validate`` at 4x the largest
proxy. Figures: the validation's verdict (recommended LR within 2x of the best measured, loss
gap <= 0.5%), muP's and SP's gaps beside it, and the transfer check's N exponent.

The target (sizes.FULL["user_model"]) is a Llama-style GQA config with untied embeddings, so
the proxies stack; head size 32 and 4 query heads per key/value head give proxies of widths
128, 256, 512 (the H100 profile of ``advisor plan``) and a held-out width of 2048.
``--smoke``: a toy config and the CPU profile, the written plan shrunk to a few steps (every
step of the loop runs; the figures are "toy, not a result").

Units: LRs are muP base LRs; losses in nats per BPE token; gaps in percent of the best loss.
"""
from __future__ import annotations

import dataclasses
import json
import math

from bench.gpu_suite.budget import Estimate, Unit
from bench.gpu_suite.stages import sweeps
from bench.gpu_suite.stages.base import Outcome, Stage, StageSkipped
from bench.gpu_suite.stages.calibration import advisor
from bench.gpu_suite.state import read_json, write_json, write_text

CHOICES = 3          # muP transfer alone, SP-style, Step Law: trained beside the grid


class UserModelStage(Stage):
    name = "user-model"

    # ---- the plan -----------------------------------------------------------------------
    def _paths(self, ctx):
        sdir = ctx.stage_dir(self.name)
        return sdir, sdir / "data", sdir / "config.json", sdir / "plan.yaml"

    def _prepare(self, ctx):
        """Token files and the plan (written once; a resumed call reuses them)."""
        import yaml

        size = ctx.sizes["user_model"]
        sdir, data, cfg, plan = self._paths(ctx)
        try:
            import tokenizers  # noqa: F401
        except ImportError:
            raise StageSkipped("the tokenizers package is not importable here: carry its "
                               "wheel in .whl (docs/gpu-suite.md, the device call)") from None
        if not (data / "train.bin").exists():
            advisor(["prepare-data", "stdlib", "--train-bpe", str(size["vocab"]), "--max-mb",
                     str(size["data_mb"]), "--out", str(data)], ctx.log)
        if not plan.exists():
            write_text(cfg, json.dumps(dict(size["config"], vocab_size=size["vocab"]),
                                       indent=1))
            advisor(["plan", "--hf-config", str(cfg), *size["budget"], "--data",
                     f"tokens:{data}", "--out", str(plan)], ctx.log)
            if size.get("shrink"):               # smoke: the written plan, made tiny
                d = yaml.safe_load(plan.read_text())
                d["settings"].update(size["shrink"]["settings"])
                d["grid"].update(size["shrink"]["grid"])
                d["name"] = "smoke-" + d["name"]
                write_text(plan, yaml.safe_dump(d, sort_keys=False))
        return sdir, data, cfg, plan

    def _specs(self, ctx, plan, data):
        from advisor.specs.plan import load_plan
        from calibration.train.data import load_data

        p = load_plan(plan)
        vocab = load_data(f"tokens:{data}").vocab_size
        return p, sweeps.choose_compile(list(p.specs), ctx, vocab), vocab

    def _validation_unit(self, ctx, specs, vocab) -> Unit:
        """The held-out runs: width 4x the largest proxy at the first token budget, grid and
        choices x seeds, one stack (estimated before the law exists: only their count and
        shape matter)."""
        size = ctx.sizes["user_model"]
        d1 = min(s.tokens for s in specs)
        ref = max((s for s in specs if s.tokens == d1), key=lambda s: s.width)
        held = dataclasses.replace(ref, width=4 * ref.width, stack=True)
        n = (2 * size["grid_steps"] + 1 + CHOICES) * size["seeds"]
        s = sweeps.stack_seconds([held] * n, ctx.probe, vocab)
        return Unit(f"validate width {held.width}: {n} runs of {held.steps} steps", s)

    def estimate(self, ctx):
        sdir, data, cfg, plan = self._prepare(ctx)
        p, specs, vocab = self._specs(ctx, plan, data)
        groups, units = sweeps.pending_units(specs, sdir / "store", ctx, vocab)
        units = list(units)
        if not (sdir / "validation.json").exists():
            units.append(self._validation_unit(ctx, specs, vocab))
        fixed = 5.0 if ctx.smoke else 30.0
        return Estimate(fixed, tuple(units), divisible=True,
                        detail=f"{sum(len(g) for g in groups)} of {len(specs)} calibration "
                               f"runs pending in {len(groups)} stacks, then validation; "
                               f"+{fixed:.0f} s data, fit, recommend")

    # ---- the loop -----------------------------------------------------------------------
    def run(self, ctx, est):
        sdir, data, cfg, plan = self._prepare(ctx)
        size = ctx.sizes["user_model"]
        p, specs, vocab = self._specs(ctx, plan, data)
        store = sdir / "store"
        groups, units = sweeps.pending_units(specs, store, ctx, vocab)
        trained = sweeps.train_units(groups, units, store, ctx, p.name)
        ids = {s.run_id for s in specs}
        final = sum(r.status in ("finished", "diverged")
                    for r in sweeps.store_runs(store) if r.run_id in ids)
        figs = [self.figure("runs", value=f"{final}/{len(specs)}", met=final == len(specs))]
        if final < len(specs) or trained["stopped_for_budget"]:
            write_json(sdir / "results.json", {"training": trained, "final": final})
            return Outcome("partial", figs, note=f"{final}/{len(specs)} calibration runs")
        laws, d1 = sdir / "fitted.yaml", min(s.tokens for s in specs)
        fit = advisor(["fit", str(store), "--out", str(laws)], ctx.log).stdout
        rec = advisor(["recommend", "--hf-config", str(cfg), "--laws", str(laws), "--tokens",
                       str(size["recommend_tokens"] or d1), "--seq-len", str(specs[0].seq_len), "--format", "json", "-o",
                       str(sdir / "recommendation.json")], ctx.log).stdout
        unit = self._validation_unit(ctx, specs, vocab)
        if not ctx.unit_fits(unit.seconds):
            write_json(sdir / "results.json", {"training": trained, "final": final})
            return Outcome("partial", figs, note=f"validation needs ~{unit.seconds:.0f} s")
        val = advisor(["validate", str(store), "--laws", str(laws), "--out",
                       str(sdir / "validation"), "--tokens", str(d1), "--grid-steps",
                       str(size["grid_steps"]), "--grid-spacing", str(size["grid_spacing"]),
                       "--seeds", str(size["seeds"]), "--device", ctx.device, "--no-progress",
                       "--table", str(sdir / "validation.md"), "--json",
                       str(sdir / "validation.json"), "--plot", str(sdir / "validation.png")],
                      ctx.log).stdout
        write_text(sdir / "advisor.log", "\n".join([fit, rec, val]))
        figs += self._figures(read_json(sdir / "validation.json"), laws)
        write_text(sdir / "results.md", f"# {self.title}\n\nPlan `{p.name}` ({len(specs)} "
                   f"runs), target `{cfg.name}`.\n\n"
                   + (sdir / "validation.md").read_text()
                   + "\n![validation](validation.png)\n\n```\n" + fit + "\n```\n")
        write_json(sdir / "results.json", {"training": trained, "final": final})
        return Outcome("done", figs, pngs=[sdir / "validation.png"])

    def _figures(self, doc: dict, laws) -> list:
        from advisor.common.yamlio import read_yaml_file

        rows = {r["choice"]: r for r in doc["rows"]}

        def gap(prefix):
            r = next((v for k, v in rows.items() if k.startswith(prefix)), None)
            g = None if r is None else r["gap_pct"]
            return g if isinstance(g, (int, float)) and math.isfinite(g) else None

        law = next(v for k, v in rows.items() if k.startswith("law"))
        ver = doc["verdict"]
        tc = (read_yaml_file(laws, "law set").get("provenance") or {}).get("transfer_check")
        tc = tc or {}
        shown = (f"{tc['exponent']:+.3f} (95% {tc['interval_95'][0]:+.3f} .. "
                 f"{tc['interval_95'][1]:+.3f})" if "exponent" in tc
                 else tc.get("refused", "not measured"))
        return [self.figure("lr_ratio", value=law["log2_lr_vs_best"],
                            met=ver["lr_within_2x"]),
                self.figure("gap", value=gap("law"), met=ver["gap_within_goal"]),
                self.figure("mup_gap", value=gap("muP transfer")),
                self.figure("sp_gap", value=gap("SP-style")),
                self.figure("n_exponent", value=shown, met=tc.get("holds"))]
