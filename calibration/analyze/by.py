"""The summaries ``advisor results DIR --by KEY`` prints (``advisor/cli/commands/results.py``
dispatches here): KEY -> how to build the summary from a results store, its printed lines, its
figure and, where it has one, its JSON. ``width`` (best LR per width per arm) is the advisor's
own (``advisor.runs.summary``).

* ``depth``: transfer in depth, one arm per depth exponent (``depth_summary``);
* ``optimizer``: Muon vs AdamW per width, one arm per optimizer and Muon convention
  (``muon_summary``);
* ``wd-rule``: weight decay x width under each weight-decay width rule (``wd_summary``);
* ``stability``: LR sensitivity, largest stable LR and its width law, attention logits, per
  arm (``stability_summary``); its JSON is what ``advisor recommend --stability-sweep`` reads;
* ``zloss``: the output log-partition over training per z-loss coefficient, LR and width
  (``zloss_trajectory``), with its JSON.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from calibration.analyze import (depth_summary, muon_summary, stability_summary, wd_summary,
                                 zloss_trajectory)


@dataclass(frozen=True)
class Summary:
    """``build(store, **options)`` -> the summary; ``lines(summary)`` -> the printed lines;
    ``plot(summary, path)`` writes its PNG; ``json(summary)`` -> its JSON text (None: the
    summary has none); ``options``: the keyword options ``build`` takes; ``title`` one line
    for help."""

    build: Callable
    lines: Callable
    plot: Callable
    title: str
    json: Callable | None = None
    options: tuple = ()


def _of_runs(build: Callable) -> Callable:
    """A build over the store's runs (every run, any status)."""
    return lambda store: build(store.runs())


SUMMARIES = {
    "depth": Summary(_of_runs(depth_summary.depth_rows), depth_summary.summary_lines,
                     depth_summary.plot,
                     "transfer in depth: best LR and loss per depth, per depth exponent"),
    "optimizer": Summary(_of_runs(muon_summary.arm_rows), muon_summary.summary_lines,
                         muon_summary.plot,
                         "Muon vs AdamW: best LR and loss per width, per optimizer arm"),
    "wd-rule": Summary(_of_runs(wd_summary.summarise), wd_summary.summary_lines,
                       lambda s, path: wd_summary.plot(s.rows, path, s.base_width),
                       "weight decay x width under each weight-decay width rule"),
    "stability": Summary(stability_summary.build, stability_summary.lines,
                         stability_summary.plot,
                         "stability: LR sensitivity and largest stable LR per arm and width",
                         json=stability_summary.summary_json, options=("heldout_width",)),
    "zloss": Summary(zloss_trajectory.build, zloss_trajectory.lines, zloss_trajectory.plot,
                     "log Z over training with and without z-loss, per LR and width",
                     json=zloss_trajectory.summary_json),
}
