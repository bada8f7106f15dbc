"""What a stage is, and what it is given.

A stage has a name (its folder under DIR); its place in the priority order, title, the
stages it needs and the figures it promises (``goals``: each with its goal, unmeasured) are
its row of bench/gpu_suite/catalog.yaml. Its code is an
``estimate`` (seconds, made before it starts from FLOPs and the probe's measured warm-up)
and ``run``, which writes its results under its folder and returns its measured figures.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

from bench.gpu_suite.budget import Deadline, Estimate
from bench.gpu_suite.report import Figure


CATALOG_FILE = Path(__file__).resolve().parents[1] / "catalog.yaml"


@lru_cache(maxsize=None)
def catalog() -> dict:
    """bench/gpu_suite/catalog.yaml by stage name, in priority order; each row with its
    ``order`` (1-based place in the file)."""
    from advisor.common.yamlio import read_yaml_file

    rows = read_yaml_file(CATALOG_FILE, "the GPU suite's stage catalog")
    return {r["name"]: dict(r, order=i) for i, r in enumerate(rows, 1)}


class StageSkipped(Exception):
    """The stage cannot run here (for instance: needs CUDA); the message says why."""


@dataclass
class Ctx:
    """What every stage gets."""

    out: Path                      # the suite directory
    smoke: bool
    device: str                    # cpu | cuda
    sizes: dict                    # bench.gpu_suite.sizes for this mode
    probe: dict                    # bench.gpu_suite.probe.measure's result
    deadline: Deadline
    compile: str = "auto"          # auto | always | never (RunSpec.compile of the training)
    checkpoint: Callable[[], None] = lambda: None   # re-bundle after each finished unit
    log: Callable[[str], None] = print
    started: float = field(default_factory=time.monotonic)
    time_scale: float = 1.0        # budget.correction: how far off estimates were here

    def unit_fits(self, seconds: float) -> bool:
        """Does a unit estimated at ``seconds`` (before correction) fit what is left?"""
        from bench.gpu_suite.budget import SAFETY

        return seconds * self.time_scale * SAFETY <= self.deadline.remaining()

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def stage_dir(self, name: str) -> Path:
        d = self.out / name
        d.mkdir(parents=True, exist_ok=True)
        return d


@dataclass
class Outcome:
    """``status``: done (all of it) or partial (stopped for the budget; resumes)."""

    status: str
    figures: list[Figure]
    note: str = ""
    pngs: list[Path] = field(default_factory=list)


class Stage:
    """A stage's code; what it is and promises is its ``name``'s row of the catalog."""

    name = ""

    @property
    def order(self) -> int:
        return catalog()[self.name]["order"]

    @property
    def title(self) -> str:
        return catalog()[self.name]["title"]

    @property
    def needs(self) -> tuple:
        return tuple(catalog()[self.name].get("needs", ()))

    def goals(self) -> list[Figure]:
        """The promised figures, unmeasured."""
        return [Figure(self.name, f["key"], f["what"], f.get("unit", ""), f.get("goal", ""),
                       fmt=f.get("fmt", "{:.4g}")) for f in catalog()[self.name]["figures"]]

    def estimate(self, ctx: Ctx) -> Estimate:
        raise NotImplementedError

    def run(self, ctx: Ctx, est: Estimate) -> Outcome:
        raise NotImplementedError

    def figure(self, key: str, **kw) -> Figure:
        """This stage's promised figure ``key`` with the measured fields filled in."""
        for g in self.goals():
            if g.key == key:
                for k, v in kw.items():
                    setattr(g, k, v)
                return g
        raise KeyError(key)
