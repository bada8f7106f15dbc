"""Full-size estimates without a GPU: the suite's own ``estimate`` of the sweep stages, fed
with an ASSUMED probe instead of a measured one. The result is FLOP arithmetic under the
assumptions of docs/gpu-suite.md ("Estimated device time at full size"), not a measurement.

    python -m bench.gpu_suite.assumed                      # stages lr-sweep, calibration, transfer-sweeps
    python -m bench.gpu_suite.assumed transfer-sweeps --units

Assumptions (none measured here): training at 240 TFLOP/s (30% of the 790 TFLOP/s bf16 peak
read on this workplace's H200), a floor of 10 ms per eager step and 3 ms compiled, 40 s per
cold torch.compile. With them, ``--compile auto`` keeps every stack eager (40 s of compile
is not repaid by 7 ms per step over a few thousand steps).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

RATE_FLOPS = 240e12            # FLOP/s of training, assumed
EAGER_FLOOR_S = 0.010          # seconds per eager step, assumed
COMPILED_FLOOR_S = 0.003       # seconds per compiled step, assumed
COMPILE_S = 40.0               # seconds per cold compile, assumed

ASSUMED_PROBE = {
    "software": {"torch": "assumed", "torch_cuda": "assumed", "gpu": "assumed H200"},
    "peak_flops": 790e12, "peak_source": "assumed", "copy_bytes_per_s": 4.3e12,
    "eager": {"floor_s": EAGER_FLOOR_S, "rate_flops": RATE_FLOPS},
    "compile": {"compile_s": COMPILE_S, "eager_step_s": EAGER_FLOOR_S,
                "compiled_step_s": COMPILED_FLOOR_S},
}
# stages whose estimate is FLOP arithmetic over plans (no benchmark or earlier stage needed)
SWEEP_STAGES = ("lr-sweep", "calibration", "transfer-sweeps", "stability", "user-model")


def mark_lr_sweep_done(out: Path) -> int:
    """In the scratch suite dir ``out``, record every run of stage 2's full-size plan as
    finished (settings only, no losses), so that the estimates of later stages leave out
    what they would copy from stage 2's store; return the number of runs."""
    from advisor.runs.store import ResultsStore
    from bench.gpu_suite.sizes import sizes
    from bench.gpu_suite.stages.sweeps import load_suite_plan

    plan = load_suite_plan(sizes(False)["lr_sweep"]["plan"], out)
    with ResultsStore.open_or_create(out / "lr-sweep" / "store") as st:
        for s in plan.specs:
            st.record(s.run_id, s.settings(), "finished")
    return len(plan.specs)


def assumed_estimates(names, out: Path) -> list:
    """[(stage, Estimate)] at full size under ASSUMED_PROBE; ``out`` a scratch suite dir."""
    from bench.gpu_suite.budget import Deadline
    from bench.gpu_suite.sizes import sizes
    from bench.gpu_suite.stages import all_stages
    from bench.gpu_suite.stages.base import Ctx

    ctx = Ctx(out=out, smoke=False, device="cuda", sizes=sizes(False), probe=ASSUMED_PROBE,
              deadline=Deadline(1e9), compile="auto", log=lambda m: None)
    by_name = {s.name: s for s in all_stages()}
    return [(by_name[n], by_name[n].estimate(ctx)) for n in names]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gpu_suite.assumed",
                                 description="full-size stage estimates from ASSUMED device "
                                             "figures (not a measurement)")
    ap.add_argument("stages", nargs="*", default=list(SWEEP_STAGES),
                    help=f"any of {', '.join(SWEEP_STAGES)}")
    ap.add_argument("--units", action="store_true", help="also print every unit's estimate")
    ap.add_argument("--after-lr-sweep", action="store_true",
                    help="as after stage 2: its runs count as done, so the runs later stages "
                         "copy from its store are not estimated")
    a = ap.parse_args(argv)
    bad = [n for n in a.stages if n not in SWEEP_STAGES]
    if bad:
        print(f"error: no assumed estimate for stage {bad[0]!r}; choose from "
              f"{', '.join(SWEEP_STAGES)}", file=sys.stderr)
        return 2
    print(f"ASSUMED device (not measured): {RATE_FLOPS / 1e12:.0f} TFLOP/s training, "
          f"{EAGER_FLOOR_S * 1e3:.0f} ms eager / {COMPILED_FLOOR_S * 1e3:.0f} ms compiled "
          f"floor per step, {COMPILE_S:.0f} s per compile")
    with tempfile.TemporaryDirectory() as tmp:
        if a.after_lr_sweep:
            print(f"as after stage 2: its {mark_lr_sweep_done(Path(tmp))} runs count as done")
        for st, est in assumed_estimates(a.stages, Path(tmp)):
            print(f"{st.order}. {st.name}: {est.seconds:.0f} s = {est.seconds / 60:.1f} min "
                  f"({len(est.units)} units; {est.detail})")
            if a.units:
                for u in est.units:
                    print(f"     {u.seconds:7.1f} s  {u.label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
