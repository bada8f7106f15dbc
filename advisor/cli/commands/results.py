"""``advisor results DIR``: summarise a results store (runs, best LR per width), export CSV;
``--by depth|optimizer|wd-rule|stability|zloss``: the summaries of ``calibration.analyze.by``
(imported inside the command, as the layer test allows for this dispatcher)."""
from __future__ import annotations

import math
import sys

import click

BY = ("width", "depth", "optimizer", "wd-rule", "stability", "zloss")  # analyze.by's keys, width


def _lr(x: float) -> str:
    if not (x and math.isfinite(x)):
        return "-"
    k = math.log2(x)
    return f"2^{k:.0f}" if abs(k - round(k)) < 1e-9 else f"{x:.3g}"


def _loss(x) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.4f}"


@click.command()
@click.argument("directory", metavar="DIR", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="csv: Step Law's column layout plus ours, to stdout; "
                                      "json with --by stability: the summary advisor "
                                      "recommend --stability-sweep reads (--by zloss: its "
                                      "summary).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the Step Law-layout CSV to this file.")
@click.option("--status", type=click.Choice(["finished", "diverged", "failed"]), default=None,
              help="Only runs with this status.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG of held-out loss against LR (or weight decay) per size.")
@click.option("--by", "by", type=click.Choice(BY), default="width", show_default=True,
              help="width: every run and the best LR per width per arm; depth: transfer in "
                   "depth per depth exponent; optimizer: Muon vs AdamW per width; wd-rule: "
                   "weight decay x width per weight-decay width rule; stability: LR "
                   "sensitivity and the largest stable LR's width law per arm; zloss: the "
                   "log-partition over training per z-loss coefficient.")
@click.option("--heldout-width", "heldout_width", type=int, default=None,
              help="--by stability: the width left out of each arm's largest-stable-LR fit "
                   "and predicted (default: the base arm's largest, where it has 4 widths "
                   "or more).")
def results(directory, fmt, csv_path, status, plot_path, by="width", heldout_width=None):
    """Summarise the results store in DIR."""
    if by != "width" or heldout_width is not None:
        return _transfer_summary(directory, by, fmt, csv_path, status, plot_path,
                                 heldout_width)
    from advisor.common.outputs import check_output_file
    from advisor.common.yamlio import json_text
    from advisor.runs.store import ResultsStore, steplaw_csv_text, write_steplaw_csv
    from advisor.runs.summary import best_by_width, best_lr_table, optimum_shift

    if plot_path:
        from advisor.cli.deps import require_plot
        require_plot("results --plot", plot_path)
    if csv_path:
        check_output_file(csv_path, "CSV file")

    with ResultsStore.open(directory, readonly=True) as store:
        runs = store.runs(status=status)
        all_runs = store.runs()
        steplaw = store.steplaw_rows() if (fmt == "csv" or csv_path) else None
    best = best_lr_table(all_runs)
    shifts = optimum_shift(best)
    if csv_path:
        write_steplaw_csv(steplaw, csv_path)
    if plot_path:
        from advisor.cli import plots
        plots.lr_sweeps(all_runs, plot_path, title=str(directory))
    if fmt == "json":
        click.echo(json_text({"runs": [r.to_dict() for r in runs],
                              "best_lr": best,
                              "optimum_shift": shifts,
                              "best_by_width": best_by_width(all_runs)}))
        return
    if fmt == "csv":
        sys.stdout.write(steplaw_csv_text(steplaw))
        return
    click.echo(f"{len(runs)} runs in {directory}")
    hdr = (f"{'run_id':<16} {'param':<5} {'width':>5} {'depth':>5} {'lr':>8} {'wd':>6} "
           f"{'bs':>4} {'tokens':>10} {'schedule':<22} {'seed':>4} {'status':<8} "
           f"{'train':>7} {'val':>7}")
    click.echo(hdr)
    key = lambda r: (r.settings.get("parameterization", ""), r.settings["width"],
                     r.settings["depth"], r.settings["lr"], r.settings["seed"])
    for r in sorted(runs, key=key):
        s = r.settings
        click.echo(f"{r.run_id:<16} {s.get('parameterization', ''):<5} {s['width']:>5} "
                   f"{s['depth']:>5} {_lr(s['lr']):>8} {s['weight_decay']:>6.3g} "
                   f"{s['batch_size']:>4} {s['tokens']:>10} {s['schedule'][:22]:<22} "
                   f"{s['seed']:>4} {r.status:<8} {_loss(r.final_train_loss):>7} "
                   f"{_loss(r.final_val_loss):>7}")
    failed = [r for r in runs if r.status == "failed"]
    for r in failed:
        click.echo(f"  failed {r.run_id}: {r.error.splitlines()[0] if r.error else ''}")
    if best:
        click.echo("\nbest LR per width (lowest mean held-out loss over seeds; diverged = inf)")
        wide = max(5, *(len(b.arm) for b in best))
        click.echo(f"{'arm':<{wide}} {'depth':>5} {'width':>5} {'best lr':>8} {'val loss':>8} "
                   f"{'LRs':>4}")
        for b in sorted(best, key=lambda b: (b.arm, b.depth, b.width)):
            click.echo(f"{b.arm:<{wide}} {b.depth:>5} {b.width:>5} "
                       f"{_lr(b.best_lr):>8} {_loss(b.best_val_loss):>8} {b.n_lrs:>4}")
    by_width = best_by_width(all_runs)
    if by_width and len({a for v in by_width.values() for a in v}) > 1:
        click.echo("\nbest held-out loss per width, by arm")
        for w, arms in by_width.items():
            click.echo(f"  width {w:>5}: " + "  ".join(f"{a} {_loss(v)}" for a, v in sorted(arms.items())))
    for s in shifts:
        click.echo(f"{s.arm}: best LR moves {s.log2_shift:+.0f} factor(s) of 2 "
                   f"from width {s.smallest_width} to {s.largest_width}")


def _transfer_summary(directory, by, fmt, csv_path, status, plot_path, heldout_width):
    """``--by depth|optimizer|wd-rule|stability|zloss``: the summary's table and notes (or its
    JSON), and its figure."""
    from advisor.errors import AdvisorError
    from advisor.runs.store import ResultsStore
    from calibration.analyze.by import SUMMARIES

    summary = SUMMARIES.get(by)
    options = {} if heldout_width is None else {"heldout_width": heldout_width}
    if summary is None or set(options) - set(summary.options):
        raise AdvisorError(f"--heldout-width goes with --by stability, not --by {by}")
    if heldout_width is not None and heldout_width < 1:
        raise AdvisorError(f"--heldout-width must be a width in channels, got {heldout_width}")
    if (fmt == "json" and summary.json is None) or fmt == "csv" or csv_path or status:
        raise AdvisorError(f"--by {by} prints the summary's table"
                           + (" (or, with --format json, its JSON): --format csv"
                              if summary.json else ": --format json, csv")
                           + ", --csv and --status go with --by width")
    if plot_path:
        from advisor.cli.deps import require_plot
        require_plot("results --plot", plot_path)

    with ResultsStore.open(directory, readonly=True) as store:
        built = summary.build(store, **options)
    if fmt == "json":
        click.echo(summary.json(built))
    else:
        for line in summary.lines(built):
            click.echo(line)
    if plot_path:
        summary.plot(built, plot_path)
        click.echo(f"plot: {plot_path}", err=fmt == "json")
