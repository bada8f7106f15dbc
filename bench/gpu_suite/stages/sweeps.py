"""Training sweeps inside the suite: a plan (recipes/plans name, or a toy plan written into
the stage's folder), its per-stack time estimates, and training it stack by stack into a
results store (calibration.sweep.executors.run_sweep), stopping between stacks when the budget runs
out. The store is what makes a cut-off stage resume: finished runs are never retrained.

Units: seconds, FLOPs.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

from bench.gpu_suite.budget import Unit, compile_pays, sweep_seconds
from bench.gpu_suite.probe import step_model

def load_suite_plan(plan, stage_dir: Path):
    """A Plan from a recipes/plans name, or from a dict (written to stage_dir/plan.yaml
    first, so the plan that ran is kept with its results)."""
    from advisor.specs.plan import load_plan

    if isinstance(plan, dict):
        import yaml

        from bench.gpu_suite.state import write_text

        path = stage_dir / "plan.yaml"
        write_text(path, yaml.safe_dump(plan, sort_keys=False))
        return load_plan(path)
    return load_plan(plan)


def stage_specs(plan, stage_dir: Path, ctx, stack: bool = False) -> tuple:
    """``(plan, specs, vocab_size)``: the suite plan ``plan`` (as load_suite_plan reads it)
    with its specs ready to train: each made a stack member when ``stack``, compile chosen
    per stack (choose_compile) for the stdlib corpus, whose vocabulary size comes with them."""
    from calibration.train.data import load_data

    vocab = load_data("stdlib").vocab_size
    plan = load_suite_plan(plan, stage_dir)
    specs = [dataclasses.replace(s, stack=True) if stack else s for s in plan.specs]
    return plan, choose_compile(specs, ctx, vocab), vocab


def choose_compile(specs, ctx, vocab_size: int) -> list:
    """The specs with ``compile`` set per stack: ``ctx.compile`` always/never as given;
    ``auto``: never on the CPU; on CUDA compile a stack when the compile time the probe
    measured is repaid by the per-step time compilation saved there, over the stack's steps
    (budget.compile_pays)."""
    from calibration.sweep.executors import group_specs

    if ctx.compile in ("always", "never"):
        return [dataclasses.replace(s, compile=ctx.compile) for s in specs]
    if not ctx.cuda or "compile" not in ctx.probe:
        return [dataclasses.replace(s, compile="never") for s in specs]
    eager, compiled = step_model(ctx.probe), step_model(ctx.probe, compiled=True)
    compile_s = ctx.probe["compile"]["compile_s"]
    out = []
    for group in group_specs(specs):
        f = sum(_member_step_flops(s, vocab_size) for s in group)
        pays = compile_pays(compile_s, eager.step_s(f), compiled.step_s(f),
                            max(s.steps for s in group))
        out += [dataclasses.replace(s, compile="always" if pays else "never") for s in group]
    return out


def newton_schulz_flops(width: int, ffn_hidden: int, depth: int, ns_steps: int) -> float:
    """FLOPs of one optimizer step's Newton-Schulz orthogonalisation of every hidden matrix
    of a proxy (per block: 4 of width x width, 3 of width x ffn_hidden). One iteration on an
    a x b matrix (a <= b) forms X X^T (2 a^2 b), its square (2 a^3) and the product with X
    (2 a^2 b): 4 a^2 b + 2 a^3, as counted in recipes/plans/gpu-muon-sweep.yaml. Pure."""
    def one(a, b):
        a, b = min(a, b), max(a, b)
        return 4.0 * a * a * b + 2.0 * a ** 3

    return ns_steps * depth * (4 * one(width, width) + 3 * one(width, ffn_hidden))


def _member_step_flops(spec, vocab_size: int) -> float:
    """Training FLOPs of one step of one run (forward + backward; Muon's Newton-Schulz added)."""
    from calibration.model.proxy import flops_per_token

    cfg = spec.model_config(vocab_size=vocab_size)
    f = flops_per_token(cfg) * spec.tokens_per_step
    if spec.optimizer == "muon":
        f += newton_schulz_flops(cfg.width, cfg.ffn_hidden, cfg.depth, spec.muon_ns_steps)
    return f


def stack_seconds(group, probe: dict, vocab_size: int) -> float:
    """Estimated wall time of one stack of same-shape runs (see budget.sweep_seconds)."""
    from calibration.model.proxy import flops_per_token

    s0 = group[0]
    steps = max(s.steps for s in group)      # a stack's members may differ in token budget
    fpt = flops_per_token(s0.model_config(vocab_size=vocab_size))
    evals = math.ceil(steps / s0.eval_interval)
    eval_flops = evals * s0.eval_sequences * s0.seq_len * fpt / 3.0   # forward only
    compiled = s0.compile == "always"
    compile_s = probe.get("compile", {}).get("compile_s", 0.0) if compiled else 0.0
    per_member = sum(_member_step_flops(s, vocab_size) for s in group) / len(group)
    return sweep_seconds(steps, len(group), per_member,
                         step_model(probe, compiled=compiled), compile_s, eval_flops)


def pending_units(specs, store_dir: Path, ctx, vocab_size: int) -> tuple[list, list[Unit]]:
    """The stacks with runs not yet in the store, and their estimates, in plan order."""
    from advisor.runs.store import DB_NAME, ResultsStore
    from calibration.sweep.executors import group_specs

    done = set()
    if (Path(store_dir) / DB_NAME).exists():
        with ResultsStore.open(store_dir) as st:
            done = st.final_ids()
    groups, units = [], []
    for group in group_specs([s for s in specs if s.run_id not in done]):
        s0 = group[0]
        alpha = dict(s0.model).get("depth_alpha")
        label = (f"{s0.parameterization} w{s0.width} d{s0.depth}"
                 + ("" if alpha is None else f" alpha {alpha:g}")
                 + f" {max(s.steps for s in group)} steps x "
                 f"{s0.batch_size}x"
                 f"{s0.seq_len} ({len(group)} runs, "
                 f"{'compiled' if s0.compile == 'always' else 'eager'})")
        groups.append(group)
        units.append(Unit(label, stack_seconds(group, ctx.probe, vocab_size)))
    return groups, units


def train_units(groups, units, store_dir: Path, ctx, name: str) -> dict:
    """Train stack after stack while the budget allows; returns what happened per stack."""
    from advisor.specs.plan import Plan
    from calibration.sweep.executors import run_sweep

    log, stopped = [], False
    for group, unit in zip(groups, units):
        if not ctx.unit_fits(unit.seconds):
            ctx.log(f"  stop before {unit.label}: needs ~{unit.seconds * ctx.time_scale:.0f} s, "
                    f"{ctx.deadline.remaining():.0f} s left")
            stopped = True
            break
        t0 = time.perf_counter()
        summary = run_sweep(Plan(name, unit.label, "bench/gpu_suite", tuple(group)), store_dir,
                            device=ctx.device, show_progress=False)
        actual = time.perf_counter() - t0
        ctx.log(f"  {unit.label}: estimate {unit.seconds:.1f} s, actual {actual:.1f} s, "
                f"{summary.by_status}")
        log.append({"stack": unit.label, "estimate_s": unit.seconds, "actual_s": actual,
                    "by_status": summary.by_status})
        ctx.checkpoint()
    return {"stacks": log, "stopped_for_budget": stopped}


def store_runs(store_dir: Path) -> list:
    from advisor.runs.store import ResultsStore

    with ResultsStore.open(store_dir) as st:
        return st.runs()
