"""Command line of the GPU suite: ``python -m bench.gpu_suite --budget-s 480 --out DIR``.

Bad input is one ``error: ...`` line and exit code 2; a stage that fails makes the exit
code 1 (the other stages still run); budget skips are not failures.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

COMPILE = ("auto", "always", "never")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench.gpu_suite",
                                 description="Every GPU figure from one budgeted, resumable call "
                                             "(issue 18; plan in docs/gpu-suite.md).")
    ap.add_argument("--budget-s", type=float, default=480.0,
                    help="wall-clock seconds for this call, probe and summary included (480)")
    ap.add_argument("--out", default=None, help="suite directory; rerun with the same one to resume")
    ap.add_argument("--smoke", action="store_true",
                    help="toy sizes on the CPU: every code path, no result")
    ap.add_argument("--stages", nargs="+", default=None, metavar="NAME",
                    help="only these stages (names or numbers), still in priority order")
    ap.add_argument("--redo", nargs="+", default=[], metavar="NAME",
                    help="forget these stages' done state and run them again (their results "
                         "stores are kept: delete DIR/<stage> to retrain)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda (auto: CUDA if present)")
    ap.add_argument("--compile", choices=COMPILE, default="auto",
                    help="torch.compile of the training: auto = compile a stack on CUDA only "
                         "when its measured compile time pays within its steps; always; never "
                         "(eager)")
    ap.add_argument("--cuda-graphs", action="store_true",
                    help="compiled stacks use CUDA graphs (torch.compile mode reduce-overhead, "
                         "via ADVISOR_STACK_COMPILE_MODE)")
    ap.add_argument("--bundle", default=None, metavar="DEST",
                    help="after each stage, write <= 7 files into DEST: tarball of DIR, "
                         "summary.md/json, 3 key plots (for the device tool's $OUT)")
    ap.add_argument("--resume-from", default=None, metavar="TARBALL",
                    help="a bundle's gpu-suite.tar.gz: unpacked into DIR first when DIR has no "
                         "state yet")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--list", action="store_true", help="list the stages and exit")
    return ap


def _error(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    import os

    ap = parser()
    opts = ap.parse_args(argv)
    opts.command = "python -m bench.gpu_suite " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    from bench.gpu_suite.stages import all_stages

    stages = all_stages()
    if opts.list:
        for s in stages:
            needs = f" (needs {', '.join(s.needs)})" if s.needs else ""
            print(f"{s.order}. {s.name}: {s.title}{needs}")
        return 0
    if not opts.out:
        return _error("--out DIR is required (the suite directory)")
    if not (opts.budget_s > 0) or opts.budget_s != opts.budget_s or opts.budget_s == float("inf"):
        return _error(f"--budget-s must be a positive number of seconds, got {opts.budget_s}")
    if opts.threads is not None and opts.threads < 1:
        return _error(f"--threads must be >= 1, got {opts.threads}")
    names = {s.name: s for s in stages} | {str(s.order): s for s in stages}
    for n in (opts.stages or []) + opts.redo:
        if n not in names:
            return _error(f"unknown stage {n!r}; stages: "
                          + ", ".join(f"{s.order} {s.name}" for s in stages))
    if opts.stages:
        chosen = {names[n].name for n in opts.stages}
        stages = [s for s in stages if s.name in chosen]
    opts.redo = [names[n].name for n in opts.redo]
    out = Path(opts.out)
    if out.exists() and not out.is_dir():
        return _error(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    from bench.gpu_suite.probe import set_compile_caches
    from bench.gpu_suite.report import restore_bundle
    from bench.gpu_suite.state import STATE_FILE, SuiteState

    if opts.resume_from:
        tar = Path(opts.resume_from)
        if not tar.is_file():
            return _error(f"--resume-from {tar}: no such file")
        if (out / STATE_FILE).exists():
            print(f"note: {out} already has a state; {tar} not unpacked", flush=True)
        else:
            try:
                n = restore_bundle(tar, out)
            except Exception as exc:
                return _error(f"--resume-from {tar}: not a suite bundle ({exc})")
            print(f"resumed {n} files from {tar}", flush=True)
    try:
        SuiteState(out)
    except ValueError as exc:
        return _error(str(exc))
    set_compile_caches(out)            # before torch is imported
    if opts.cuda_graphs:
        os.environ["ADVISOR_STACK_COMPILE_MODE"] = "reduce-overhead"
    import torch

    if opts.threads:
        torch.set_num_threads(opts.threads)
    if opts.device == "auto":
        opts.device = "cuda" if torch.cuda.is_available() else "cpu"
    if opts.device.startswith("cuda") and not torch.cuda.is_available():
        return _error(f"--device {opts.device}: CUDA is not available here")
    if not opts.device.startswith(("cuda", "cpu")):
        return _error(f"--device must be auto, cpu or cuda[:N], got {opts.device!r}")
    if not opts.smoke and not opts.device.startswith("cuda"):
        return _error("full size needs a CUDA GPU; on the CPU use --smoke (toy sizes)")
    from bench.gpu_suite.runner import run_suite

    return run_suite(opts, stages)
