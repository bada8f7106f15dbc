"""Stage 8: the transfer sweeps that wait for a GPU, trained in this order through the
suite's sweep machinery (bench/gpu_suite/stages/sweeps.py), each into its own results store:

1. ``muon``: recipes/plans/gpu-muon-sweep.yaml (Muon spectral / match_rms_adamw vs muP AdamW,
   widths 128-1024). Its muP AdamW runs have the run ids of stage 2's muP arm: those already
   finished in stage 2's store are copied into this store, not retrained.
2. ``depth``: recipes/plans/gpu-depth-sweep.yaml (depths 4-32 x depth exponent 0 / 0.5 / 1).
3. ``wd-rules``: recipes/plans/gpu-wd-rules.yaml (muP AdamW at one LR, weight decay x width x
   the three weight-decay width rules).

A sub-sweep whose runs are all finished or diverged is summarised with its summary's own
functions (calibration.analyze.muon_summary / depth_summary / wd_summary) into
``DIR/transfer-sweeps/<sub>/results.md`` and a PNG. The stage is divisible by stack and
resumes from the sub-sweeps' stores. It is lower priority than stages 1-7 (docs/gpu-suite.md).

Units: best-LR shifts and knee shifts in factors of 2 (octaves); LRs base peak LRs; weight
decays the torch coefficient at the base width; losses final held-out nats per byte.
"""
from __future__ import annotations

import math

from advisor.rules.optim_rules import WD_WIDTH_RULES
from bench.gpu_suite.budget import Estimate, Unit
from bench.gpu_suite.report import Figure
from bench.gpu_suite.stages import sweeps
from bench.gpu_suite.stages.base import Outcome, Stage
from bench.gpu_suite.state import write_json, write_text

# (sizes key, folder, title), in training order
SUBS = (("muon", "muon", "Muon vs muP AdamW across widths"),
        ("depth", "depth", "transfer in depth (depth exponents 0 / 0.5 / 1)"),
        ("wd_rules", "wd-rules", "weight decay x width under the three weight-decay rules"))
WD_RULES = tuple(WD_WIDTH_RULES)        # mup, sqrt, none
FINAL = ("finished", "diverged")


def copy_shared_runs(specs, sources, store_dir) -> int:
    """Copy into the store at ``store_dir`` every run of ``specs`` that is finished or diverged
    in one of the ``sources`` stores and missing here (same run id = same settings, so the
    same run), with its curve and diagnostics; return how many were copied."""
    from advisor.runs.store import DB_NAME, ResultsStore

    ids = {s.run_id for s in specs}
    copied = 0
    with ResultsStore.open_or_create(store_dir) as dst:
        have = dst.final_ids()
        for src_dir in sources:
            if not (src_dir / DB_NAME).exists():
                continue
            with ResultsStore.open(src_dir) as src:
                for r in src.runs():
                    if r.run_id not in ids or r.run_id in have or r.status not in FINAL:
                        continue
                    diag = [(d["step"], d["name"], d["value"]) for d in src.diagnostics(r.run_id)]
                    dst.record(r.run_id, r.settings, r.status, curve=src.curve(r.run_id),
                               diagnostics=diag, error=r.error,
                               final_train_loss=r.final_train_loss,
                               final_val_loss=r.final_val_loss, n_params=r.n_params,
                               n_params_non_embedding=r.n_params_non_embedding,
                               tokens_seen=r.tokens_seen, wall_time_s=r.wall_time_s,
                               tokens_per_s=r.tokens_per_s, device=r.device,
                               startup_s=r.startup_s)
                    have.add(r.run_id)
                    copied += 1
    return copied


def shared_final_ids(specs, sources) -> set:
    """Run ids of ``specs`` finished or diverged in the ``sources`` stores (read only)."""
    from advisor.runs.store import DB_NAME, ResultsStore

    ids = {s.run_id for s in specs}
    out = set()
    for src_dir in sources:
        if (src_dir / DB_NAME).exists():
            with ResultsStore.open(src_dir) as src:
                out |= src.final_ids() & ids
    return out


# ------------------------------------------------------------------ the three summaries

def muon_result(runs) -> dict:
    """calibration.analyze.muon_summary of the runs: its lines, a plot function, the figure."""
    from calibration.analyze import muon_summary as ms

    rows = ms.arm_rows(runs)
    verdicts = ms.transfer_verdicts(rows)
    v = verdicts.get("Muon spectral")
    return {"lines": ms.summary_lines(rows), "plot": lambda path: ms.plot(rows, path),
            "command": "advisor results {store} --by optimizer --plot {png}",
            "figures": {"muon_spectral_shift": None if v is None else v.max_shift},
            "verdicts": verdicts}


def depth_result(runs) -> dict:
    """calibration.analyze.depth_summary of the runs: its lines, a plot function, the figure
    (CompleteP is depth exponent alpha = 1)."""
    from calibration.analyze import depth_summary as ds

    rows = ds.depth_rows(runs)
    verdicts = ds.transfer_verdicts(rows)
    v = verdicts.get(1.0)
    return {"lines": ds.summary_lines(rows), "plot": lambda path: ds.plot(rows, path),
            "command": "advisor results {store} --by depth --plot {png}",
            "figures": {"completep_shift": None if v is None else v.max_shift},
            "verdicts": {f"alpha {a:g}": d for a, d in verdicts.items()}}


def knee_text(d) -> str | None:
    """A wd rule's knee shift at its largest width against its prediction, in words (the
    figure of the wd-rules sub-sweep; no goal); None when the rule has only the base width.
    ``d``: a ``calibration.analyze.wd_summary.WdRuleVerdict``."""
    if len(d.widths) < 2:
        return None
    w, pred, k = d.widths[-1], d.predicted_pow2[-1], d.knee_shift_pow2[-1]
    base = d.widths[0]
    if not math.isfinite(k):
        return f"no knee in the grid (width {base} or {w}); predicted {pred:+.1f}"
    return f"{k:+.2f} at width {w} vs {base}; predicted {pred:+.1f}"


def wd_result(runs) -> dict:
    """calibration.analyze.wd_summary of the runs: its lines, a plot function, the figures."""
    from calibration.analyze import wd_summary as ws

    s = ws.summarise(runs)
    v = ws.rule_verdicts(s.rows, s.base_width)
    return {"lines": ws.summary_lines(s), "plot": lambda path: ws.plot(s.rows, path, s.base_width),
            "command": "advisor results {store} --by wd-rule --plot {png}",
            "figures": {f"knee_{r}": knee_text(v[r]) if r in v else None for r in WD_RULES},
            "verdicts": v}


RESULTS = {"muon": muon_result, "depth": depth_result, "wd_rules": wd_result}


class TransferSweepsStage(Stage):
    name = "transfer-sweeps"

    def _subs(self, ctx):
        """[(key, folder, title, plan, specs, shared source stores)] in training order."""
        sdir = ctx.stage_dir(self.name)
        out, vocab = [], None
        for key, folder, title in SUBS:
            cfg = ctx.sizes["transfer_sweeps"][key]
            sub = sdir / folder
            sub.mkdir(parents=True, exist_ok=True)
            plan, specs, vocab = sweeps.stage_specs(cfg["plan"], sub, ctx, stack=True)
            sources = [ctx.out / name / "store" for name in cfg.get("share", ())]
            out.append((key, folder, title, plan, specs, sources))
        return out, vocab

    def estimate(self, ctx):
        subs, vocab = self._subs(ctx)
        units, parts = [], []
        for key, folder, _, _, specs, sources in subs:
            shared = shared_final_ids(specs, sources)
            left = [s for s in specs if s.run_id not in shared]
            groups, us = sweeps.pending_units(left, ctx.out / self.name / folder / "store",
                                              ctx, vocab)
            units += [Unit(f"{folder}: {u.label}", u.seconds) for u in us]
            parts.append(f"{folder} {sum(len(g) for g in groups)} of {len(specs)} pending"
                         + (f" ({len(shared)} from {', '.join(p.parent.name for p in sources)})"
                            if shared else ""))
        fixed = 5.0 if ctx.smoke else 30.0
        return Estimate(fixed, tuple(units), divisible=True,
                        detail=f"{'; '.join(parts)}; +{fixed:.0f} s summaries and plots")

    def run(self, ctx, est):
        from advisor.runs.store import DB_NAME

        subs, vocab = self._subs(ctx)
        sdir = ctx.stage_dir(self.name)
        stopped, training, counts, figs, pngs, notes, sections = False, {}, {}, {}, [], [], []
        for key, folder, title, plan, specs, sources in subs:
            store = sdir / folder / "store"
            copied = copy_shared_runs(specs, sources, store) if sources else 0
            if copied:
                ctx.log(f"  {folder}: {copied} runs copied from "
                        f"{', '.join(p.parent.name for p in sources)} (same run ids)")
            if not stopped:
                groups, units = sweeps.pending_units(specs, store, ctx, vocab)
                trained = sweeps.train_units(groups, units, store, ctx, plan.name)
                stopped = trained["stopped_for_budget"]
                training[folder] = trained | {"copied": copied}
            ids = {s.run_id for s in specs}
            runs = [r for r in sweeps.store_runs(store) if r.run_id in ids] \
                if (store / DB_NAME).exists() else []
            final = sum(r.status in FINAL for r in runs)
            counts[folder] = {"final": final, "planned": len(specs),
                              **{k: sum(r.status == k for r in runs) for k in
                                 ("finished", "diverged", "failed")}}
            if final < len(specs):
                notes.append(f"{folder}: {final}/{len(specs)} runs, summary when complete")
                continue
            res = RESULTS[key](runs)
            png = sdir / folder / f"{folder}.png"
            res["plot"](png)
            pngs.append(png)
            figs.update(res["figures"])
            cmd = res["command"].format(store=store, png=png)
            body = "\n".join(res["lines"])
            text = (f"# {title}\n\nPlan `{plan.name}` ({plan.path}), {final} runs "
                    f"({counts[folder]['diverged']} diverged), store `{folder}/store`"
                    + (f", {copied} runs copied from stage 2's store" if copied else "")
                    + f".\n\n{body}\n\n![{title}]({folder}.png)\n\nRedo: `{cmd}`\n")
            write_text(sdir / folder / "results.md", text)
            sections.append(text.replace("# ", "## ", 1).replace(f"({folder}.png)",
                                                                 f"({folder}/{folder}.png)"))
        out = self._figures(figs, counts)
        complete = all(c["final"] == c["planned"] for c in counts.values())
        write_text(sdir / "results.md", f"# {self.title}\n\n"
                   + ("\n".join(sections) if sections else "No sub-sweep complete yet.\n")
                   + "".join(f"\n- {n}" for n in notes) + "\n")
        write_json(sdir / "results.json", {"training": training, "counts": counts,
                                           "figures": figs})
        return Outcome("done" if complete and not stopped else "partial", out,
                       note="; ".join(notes), pngs=pngs)

    def _figures(self, figs: dict, counts: dict) -> list[Figure]:
        out = []
        for key in ("muon_spectral_shift", "completep_shift"):
            v = figs.get(key)
            if v is None:
                continue
            if math.isfinite(v):
                out.append(self.figure(key, value=float(v), met=bool(v <= 1.0)))
            else:                      # a size without any finite loss: no best LR there
                out.append(self.figure(key, value="no best LR at some size (all diverged)",
                                       met=False))
        for r in WD_RULES:
            if figs.get(f"knee_{r}") is not None:
                out.append(self.figure(f"knee_{r}", value=figs[f"knee_{r}"]))
        done = all(c["final"] == c["planned"] for c in counts.values())
        out.append(self.figure("runs", met=done, value="; ".join(
            f"{c['final']}/{c['planned']}" for c in counts.values())))
        return out
