"""The loss noise over the bowl curvature (sigma / k, octaves^2) of a sweep's cells, as the
fitter sees them: the constants behind `advisor plan`'s expected LR precision
(advisor.fit.design's STEPLAW_NOISE_RATIO and CPU_NOISE_RATIO; docs/calibration.md).

    python -m bench.plan_noise SWEEP [SWEEP ...]

SWEEP: a results store directory or a run CSV (`advisor fit`'s inputs), e.g. the Step Law
grid (/work/shared/data/external/steplaw_dense_lr_bs_loss.csv) or the CI-sized CPU sweep
(tests/data/user_model_cpu_sweep.csv). Per cell (advisor.fit.plan_precision.cell_noise):
the runs at the best run's batch inside the fitter's window, a parabola in log2 LR, its
residual sd sigma (n - 3 dof) and x^2 coefficient k; then the median ratio over cells.
"""
from __future__ import annotations

import argparse

import numpy as np

from advisor.fit.plan_precision import cell_noise
from advisor.runs.table import load_runs


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweeps", nargs="+")
    args = ap.parse_args(argv)
    for path in args.sweeps:
        cells = cell_noise(load_runs(path))
        print(f"## {path}: {len(cells)} cells with a bowl")
        print(f"{'N':>10} {'D':>10} {'runs':>4} {'sigma':>8} {'k':>8} {'sigma/k':>8}")
        for c in cells:
            print(f"{c.N:10.3g} {c.D:10.3g} {c.runs:4d} {c.sigma:8.4f} {c.curvature:8.4f} "
                  f"{c.ratio:8.3f}")
        if cells:
            r = [c.ratio for c in cells]
            print(f"median sigma/k {np.median(r):.3f} octaves^2 (range {min(r):.3g}-"
                  f"{max(r):.3g})\n")


if __name__ == "__main__":
    main()
