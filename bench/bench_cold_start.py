"""Cold start of `advisor recommend`: wall time of a fresh process, against a bare Python.

    python bench/bench_cold_start.py [--repeat 20]

Prints the median and 90th percentile of `advisor recommend --params 7e9 --format json` in a
new process each time, beside `python -c pass` and `python -c "import numpy"` measured in the
same run, and whether torch was imported (it must not be).
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
    for name, cmd in rows:
        med, p90 = timed(cmd, args.repeat)
        print(f"{name:<48} {med:>9.3f} {p90:>7.3f}")
    probe = subprocess.run([py, "-c", "import sys; from advisor.recommendation import recommend;"
                            "recommend(7e9); print('torch' in sys.modules)"],
                           capture_output=True, text=True, check=True)
    print(f"torch imported by recommend: {probe.stdout.strip()}")


if __name__ == "__main__":
    main()
