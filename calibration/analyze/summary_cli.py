"""The command line the sweep summaries share (``python -m calibration.<x>_summary STORE
[--plot PNG]``): open the store, build the summary's rows from its runs, print the summary's
lines, plot when asked, and turn an AdvisorError into one ``error:`` line and exit 2."""
from __future__ import annotations

import sys
from typing import Callable

from advisor.errors import AdvisorError


def edge_note(label: str, where: str, edge) -> list[str]:
    """The line saying that the best point of ``label`` sits at an end of the grid at
    ``where`` values ``edge`` (none when ``edge`` is empty)."""
    if not edge:
        return []
    return [f"{label}: best at an end of the grid at {where} {', '.join(map(str, edge))}: "
            f"the optimum may lie outside it"]


def summary_main(argv, description: str, rows_of: Callable, lines_of: Callable,
                 plot: Callable, plot_help: str) -> int:
    """Run one summary's CLI: ``rows_of(runs)`` -> rows, ``lines_of(rows)`` -> the lines to
    print, ``plot(rows, path)`` with ``--plot``. ``runs`` are the store's
    :class:`advisor.runs.store.RunRecord` objects."""
    import argparse

    from advisor.runs.store import ResultsStore

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("store", help="sweep directory holding results.sqlite")
    ap.add_argument("--plot", default=None, help=plot_help)
    args = ap.parse_args(argv)
    try:
        with ResultsStore.open(args.store, readonly=True) as st:
            rows = rows_of(st.runs())
        for line in lines_of(rows):
            print(line)
        if args.plot:
            plot(rows, args.plot)
            print(f"plot: {args.plot}")
    except AdvisorError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
