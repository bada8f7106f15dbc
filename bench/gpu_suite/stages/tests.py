"""Stage 1, GPU correctness: the ``gpu``-marked tests (CuPy against NumPy against a full
SVD; bf16 + torch.compile training; stacked members against single runs in bf16), run by
pytest in a child process, read back from its JUnit XML."""
from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from bench.gpu_suite.budget import Estimate
from advisor.common.outputs import md_table
from bench.gpu_suite.stages.base import Outcome, Stage
from bench.gpu_suite.state import write_json, write_text

REPO = Path(__file__).resolve().parents[3]
PYTEST_START_S = 15.0       # collecting three test files imports torch, scipy, mup


def parse_junit(path) -> list[dict]:
    """[{name, outcome (passed|failed|error|skipped), message, seconds}] from JUnit XML."""
    root = ET.parse(path).getroot()
    out = []
    for case in root.iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = (el.get("message") or el.text or "")[:300]
                break
        out.append({"name": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                    "message": message, "seconds": float(case.get("time") or 0.0)})
    return out


def gpu_test_files(tests_dir: Path) -> list[str]:
    """The test files that carry a ``gpu`` mark (collecting only these keeps pytest's start
    short; a new gpu-marked file is picked up by itself)."""
    return sorted(str(p.relative_to(tests_dir.parent)) for p in tests_dir.glob("test_*.py")
                  if "mark.gpu" in p.read_text())


class TestsStage(Stage):
    name = "gpu-tests"

    def estimate(self, ctx):
        compile_s = ctx.probe.get("compile", {}).get("compile_s", 0.0)
        n = ctx.sizes["tests"]["compiles"]
        return Estimate(PYTEST_START_S + n * compile_s + 20.0,
                        detail=f"pytest start {PYTEST_START_S:.0f} s + {n} compiles x "
                               f"{compile_s:.1f} s (probe) + 20 s of tiny training")

    def run(self, ctx, est):
        sdir = ctx.stage_dir(self.name)
        xml = (sdir / "junit.xml").resolve()
        cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider",
               f"--junitxml={xml}", *gpu_test_files(REPO / "tests")]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                              timeout=max(30.0, ctx.deadline.remaining()))
        wall = time.perf_counter() - t0
        write_text(sdir / "pytest.log", proc.stdout + proc.stderr)
        if not xml.exists():
            raise RuntimeError(f"pytest wrote no report (exit {proc.returncode}): "
                               f"{(proc.stdout + proc.stderr)[-500:]}")
        cases = parse_junit(xml)
        if not cases:
            raise RuntimeError("pytest selected no gpu-marked test")
        count = {k: sum(c["outcome"] == k for c in cases) for k in ("passed", "failed", "error",
                                                                    "skipped")}
        bad = count["failed"] + count["error"]
        figs = [self.figure("passed", value=count["passed"],
                            met=bool(count["passed"] == len(cases)) if ctx.cuda else None),
                self.figure("failed", value=bad, met=bad == 0),
                self.figure("skipped", value=count["skipped"],
                            met=(count["skipped"] == 0) if ctx.cuda else None)]
        write_json(sdir / "results.json", {"command": " ".join(cmd), "exit_code": proc.returncode,
                                           "wall_s": wall, "tests": cases, "counts": count})
        write_text(sdir / "results.md",
                   f"# gpu-marked tests\n\n`{' '.join(cmd)}` (exit {proc.returncode}, "
                   f"{wall:.0f} s)\n\n" + md_table(["test", "outcome", "s", "message"],
                                                     [[c["name"], c["outcome"],
                                                       f"{c['seconds']:.1f}", c["message"]]
                                                      for c in cases]))
        note = "" if ctx.cuda else "no CUDA here: the tests skip (collection checked)"
        return Outcome("done", figs, note)
