"""Every GPU figure from one prepared, budgeted, resumable call (issue 18).

    python -m bench.gpu_suite --budget-s 480 --out DIR [--smoke] [--stages NAME ...]

Stages run in the priority order of bench/gpu_suite/catalog.yaml, which also holds each
stage's title, needs and promised figures (code: bench.gpu_suite.stages); each is estimated before it starts
(FLOPs and the probe's measured warm-up, bench.gpu_suite.budget), skipped when the remaining
budget cannot fit it, and writes DIR/<stage>/results.{json,md} (+ PNGs) as soon as it ends.
DIR/state.json keeps what is done; a rerun with the same DIR resumes. docs/gpu-suite.md is
the plan and the device command.
"""
