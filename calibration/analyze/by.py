"""The transfer summaries ``advisor results DIR --by KEY`` prints (``advisor/cli/commands/results.py``
dispatches here): KEY -> how to build the summary from a store's runs, its printed lines and
its figure. ``width`` (best LR per width per arm) is the advisor's own (``advisor.runs.summary``).

* ``depth``: transfer in depth, one arm per depth exponent (``depth_summary``);
* ``optimizer``: Muon vs AdamW per width, one arm per optimizer and Muon convention
  (``muon_summary``);
* ``wd-rule``: weight decay x width under each weight-decay width rule (``wd_summary``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from calibration.analyze import depth_summary, muon_summary, wd_summary


@dataclass(frozen=True)
class Summary:
    """``build(runs)`` -> the summary; ``lines(summary)`` -> the printed lines;
    ``plot(summary, path)`` writes its PNG; ``title`` one line for help."""

    build: Callable
    lines: Callable
    plot: Callable
    title: str


SUMMARIES = {
    "depth": Summary(depth_summary.depth_rows, depth_summary.summary_lines, depth_summary.plot,
                     "transfer in depth: best LR and loss per depth, per depth exponent"),
    "optimizer": Summary(muon_summary.arm_rows, muon_summary.summary_lines, muon_summary.plot,
                         "Muon vs AdamW: best LR and loss per width, per optimizer arm"),
    "wd-rule": Summary(wd_summary.summarise, wd_summary.summary_lines,
                       lambda s, path: wd_summary.plot(s.rows, path, s.base_width),
                       "weight decay x width under each weight-decay width rule"),
}
