"""Imported first by the fitting commands: one BLAS thread unless the user set otherwise.

The fits are many small dense solves, where BLAS threads only contend for the CPU (under load,
two OpenBLAS threads made one fit 10-40x slower on a 2-core machine). The setting takes
effect because the CLI imports numpy lazily, after this module has run.
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
