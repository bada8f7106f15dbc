"""The command line the sweep summaries share (``python -m calibration.<x>_summary STORE
[--plot PNG]``): open the store, hand its runs to the summary's report, print it, and turn an
AdvisorError into one ``error:`` line and exit 2."""
from __future__ import annotations

import sys
from typing import Callable

from advisor.errors import AdvisorError


def summary_main(argv, description: str, report: Callable, plot_help: str) -> int:
    """Run one summary's CLI.

    ``report(runs, plot_path)`` returns the lines to print (``plot_path`` None: no plot);
    ``runs`` are the store's :class:`advisor.store.RunRecord` objects.
    """
    import argparse

    from advisor.store import ResultsStore

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("store", help="sweep directory holding results.sqlite")
    ap.add_argument("--plot", default=None, help=plot_help)
    args = ap.parse_args(argv)
    try:
        with ResultsStore.open(args.store) as st:
            runs = st.runs()
        for line in report(runs, args.plot):
            print(line)
    except AdvisorError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
