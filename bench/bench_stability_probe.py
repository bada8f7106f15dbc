"""What the stability probes cost: the same runs with probes on and off, side by side.

One single run (calibration.train.train_run) and one stack of 4 members
(calibration.group.train_stack) at width 64, depth 2, 8 x 64 tokens per step, 200 steps,
evaluated every 50 steps on 64 held-out sequences (cpu-stability's settings), each trained
with ``$ADVISOR_STABILITY_PROBES`` on and off, alternating, ``--repeats`` times. Reports the
median wall time (seconds, whole call: build, steps, evaluations, probes) per arm and the
overhead ratio on / off - 1, and, since on a shared machine two calls minutes apart differ by
more than the probes cost, also the time spent inside the probe functions themselves as a share
of the same call's wall time (timed in place: the robust figure). The probe runs at evaluations
only (2 of 100 steps by default), so its cost scales with 1 / eval_interval; training steps
are untouched.

    nice -n 10 python -m bench.bench_stability_probe --repeats 3
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time


def main(argv=None) -> int:
    import torch

    from advisor.specs.runspec import RunSpec
    from calibration.train.data import load_data
    from calibration.train.group import train_stack
    from calibration.train.single import train_run

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--steps", type=int, default=200)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = load_data("stdlib")
    spec = RunSpec(width=a.width, depth=2, seq_len=64, batch_size=8, tokens=8 * 64 * a.steps,
                   eval_interval=50, eval_sequences=64, parameterization="sp", lr=2 ** -6,
                   weight_decay=0.125, stack=True, compile="never",
                   schedule="wsd:warmup=10,cooldown=0.2,shape=linear",
                   model={"head_dim": 16, "base_width": 32, "init_std_hidden": 0.113})
    stack = [dataclasses.replace(spec, lr=2 ** -k) for k in (4, 5, 6, 7)]
    import calibration.train.single as single
    import calibration.train.stacked as stacked

    inside = [0.0]

    def timed(fn):
        def wrapper(*args, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                inside[0] += time.perf_counter() - t0
        return wrapper

    single.single_run_probe = timed(single.single_run_probe)
    stacked.stacked_probe = timed(stacked.stacked_probe)
    jobs = {"single": lambda: train_run(spec, data), "stack of 4": lambda: train_stack(stack, data)}
    times = {(j, p): [] for j in jobs for p in ("on", "off")}
    shares = {j: [] for j in jobs}
    for _ in range(a.repeats):
        for job, fn in jobs.items():
            for probes in ("on", "off"):
                os.environ["ADVISOR_STABILITY_PROBES"] = probes
                inside[0] = 0.0
                t0 = time.perf_counter()
                fn()
                dt = time.perf_counter() - t0
                times[(job, probes)].append(dt)
                if probes == "on":
                    shares[job].append(inside[0] / dt)
    print(f"| run (width {a.width}, {a.steps} steps, eval every 50) | probes off (s) | "
          f"probes on (s) | on / off - 1 | time inside the probes / wall time (same call) |")
    print("|---|---|---|---|---|")
    for job in jobs:
        off = statistics.median(times[(job, "off")])
        on = statistics.median(times[(job, "on")])
        print(f"| {job} | {off:.2f} | {on:.2f} | {on / off - 1:+.1%} | "
              f"{statistics.median(shares[job]):.2%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
