"""Cold start of `advisor recommend`: wall time of a fresh process, against a bare Python.

    python -m bench.bench_cold_start [--repeat 20]

Prints the median and 90th percentile of `advisor recommend --params 7e9 --format json` in a
new process each time, beside `python -c pass` and `python -c "import numpy"` measured in the
same run, the difference from the numpy import (target: at most 0.2 s), and whether torch
and numpy were imported (torch must not be; numpy is not needed by `recommend`).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def timed(cmd, repeat):
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        out.append(time.perf_counter() - t)
    out.sort()
    return statistics.median(out), out[int(0.9 * (len(out) - 1))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    py = sys.executable
    rows = [
        ("python -c pass", [py, "-c", "pass"]),
        ("python -c 'import numpy'", [py, "-c", "import numpy"]),
        ("advisor recommend --params 7e9 --format json",
         [py, "-m", "advisor.cli", "recommend", "--params", "7e9", "--format", "json"]),
    ]
    print(f"{'command':<48} {'median s':>9} {'p90 s':>7}")
    medians = {}
    for name, cmd in rows:
        med, p90 = timed(cmd, args.repeat)
        medians[name] = med
        print(f"{name:<48} {med:>9.3f} {p90:>7.3f}")
    extra = medians[rows[2][0]] - medians[rows[1][0]]
    print(f"recommend minus 'import numpy': {extra:+.3f} s (target: at most +0.200 s)")
    probe = subprocess.run([py, "-c", "import sys; from advisor.recommendation.core import recommend;"
                            "recommend(7e9); print('torch' in sys.modules, "
                            "'numpy' in sys.modules)"],
                           capture_output=True, text=True, check=True)
    torch_in, numpy_in = probe.stdout.split()
    print(f"torch imported by recommend: {torch_in}; numpy imported: {numpy_in}")


if __name__ == "__main__":
    main()
