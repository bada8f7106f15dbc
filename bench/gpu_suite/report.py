"""Figures, their goals, the Markdown tables, and the bundle that the device tool brings back.

A :class:`Figure` is one measured number with its unit and goal; ``met`` is True/False when
the goal is judged, None when the figure has no goal or was not measured. The summary lists
every figure of every stage, also those of stages that did not run ("not run"), so that
what is missing is as visible as what was measured.

The bundle: the device tool returns at most 8 files, 2 folders deep. ``write_bundle`` puts
everything essential into at most 7 files directly in one folder: a tarball of the whole
suite directory (results stores included, caches left out: a later call resumes from it),
the summary as Markdown and JSON, and up to ``MAX_PNGS`` plots a person would look at first.
"""
from __future__ import annotations

import io
import math
import shutil
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from advisor.common.outputs import md_table
from bench.gpu_suite.state import write_json, write_text

MAX_PNGS = 3
BUNDLE_TAR = "gpu-suite.tar.gz"
CACHE_DIR = "cache"              # torch.compile / Triton caches under DIR: never bundled


@dataclass
class Figure:
    """One figure of a stage: ``value`` in ``unit``; ``goal`` in words; ``met`` judged."""

    stage: str
    key: str
    label: str
    unit: str = ""
    goal: str = ""
    value: object = None          # float, int, str or None (not measured)
    met: object = None            # True / False / None (no goal, or not measured)
    fmt: str = "{:.4g}"

    def shown(self) -> str:
        v = self.value
        if v is None:
            return "-"
        if isinstance(v, float):
            if math.isinf(v):
                return "inf"
            if math.isnan(v):
                return "-"
            return self.fmt.format(v) + (f" {self.unit}" if self.unit else "")
        return str(v) + (f" {self.unit}" if self.unit and not isinstance(v, str) else "")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Figure":
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__ if k in d})


def verdict(fig: Figure, stage_status: str, smoke: bool) -> str:
    """The summary's last column for one figure."""
    if stage_status not in ("done", "partial") or fig.value is None:
        return "not run" if stage_status != "partial" else "not yet (partial)"
    if fig.met is None:
        word = "measured" if not fig.goal else "not judged"
    else:
        word = "met" if fig.met else "NOT met"
    if stage_status == "partial":
        word += " (partial)"
    return word + (" (toy, not a result)" if smoke else "")


def figures_table(figs: list[Figure], status: str, smoke: bool) -> str:
    return md_table(["figure", "value", "goal", "verdict"],
                    [[f.label, f.shown(), f.goal or "-", verdict(f, status, smoke)]
                     for f in figs])


def summary_rows(stages: list, state, smoke: bool) -> list[list]:
    """[stage, status, figure, value, goal, verdict] for every figure of every stage."""
    rows = []
    for st in stages:
        entry = state.stage(st.name)
        status = entry.get("status", "not run")
        measured = {f["key"]: Figure.from_dict(f) for f in entry.get("figures", [])}
        for g in st.goals():
            f = measured.get(g.key, g)
            rows.append([f"{st.order}. {st.name}", status, f.label, f.shown(), f.goal or "-",
                         verdict(f, status, smoke)])
    return rows


def summary_markdown(stages: list, state, smoke: bool, header: str) -> str:
    """The header, the timing of each stage, then (last) every figure with its goal."""
    timing = []
    for st in stages:
        e = state.stage(st.name)
        est, act, comp = e.get("estimate_s"), e.get("actual_s"), e.get("compile_s")
        timing.append([f"{st.order}. {st.name}", e.get("status", "not run"),
                       "-" if est is None else f"{est:.0f}",
                       "-" if act is None else f"{act:.0f}",
                       "-" if comp is None else f"{comp:.0f}",
                       e.get("measured", "-"), e.get("note", "")])
    return "\n".join([header, "",
                      md_table(["stage", "status", "estimate (s)", "actual (s)",
                                "torch.compile (s)", "last run", "note"], timing), "",
                      md_table(["stage", "status", "figure", "value", "goal", "verdict"],
                               summary_rows(stages, state, smoke))])


def write_bundle(out_dir: Path, dest: Path, summary_md: str, summary: dict,
                 pngs: list[Path]) -> list[Path]:
    """Write the bundle into ``dest`` (created); return the files written. Atomic per file."""
    out_dir, dest = Path(out_dir), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = [dest / "summary.md", dest / "summary.json"]
    write_text(written[0], summary_md)
    write_json(written[1], summary)
    fd, tmp = tempfile.mkstemp(prefix=".bundle.", suffix=".tar.gz", dir=dest)
    try:
        with open(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for p in sorted(out_dir.rglob("*")):
                rel = p.relative_to(out_dir)
                if rel.parts[0] == CACHE_DIR or not p.is_file() or p.name.startswith(".bundle."):
                    continue
                if dest.resolve() in p.resolve().parents:
                    continue
                tar.add(p, arcname=str(Path("gpu-suite") / rel), recursive=False)
        Path(tmp).replace(dest / BUNDLE_TAR)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    written.append(dest / BUNDLE_TAR)
    for p in [p for p in pngs if Path(p).is_file()][:MAX_PNGS]:
        p = Path(p)
        target = dest / f"{p.parent.name}-{p.name}"
        shutil.copyfile(p, target)
        written.append(target)
    return written


def restore_bundle(tarball: Path, out_dir: Path) -> int:
    """Unpack a bundle's tarball into ``out_dir`` (the suite directory); return the number of
    files. Only regular files under ``gpu-suite/`` are taken (no links, no absolute paths)."""
    out_dir = Path(out_dir)
    n = 0
    with tarfile.open(tarball, "r:gz") as tar:
        for m in tar.getmembers():
            parts = Path(m.name).parts
            if not m.isfile() or not parts or parts[0] != "gpu-suite" or ".." in parts \
                    or Path(m.name).is_absolute():
                continue
            target = out_dir.joinpath(*parts[1:])
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(m)
            with open(target, "wb") as f:
                shutil.copyfileobj(src or io.BytesIO(), f)
            n += 1
    return n
