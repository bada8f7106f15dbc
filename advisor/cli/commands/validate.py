"""``advisor validate``: does the fitted LR transfer to a width 4x beyond the proxies?"""
from __future__ import annotations

import shlex
import sys

import click


@click.command("validate")
@click.argument("calibration", metavar="CALIBRATION_DIR")
@click.option("--laws", "laws", required=True, help="The law set `advisor fit` wrote from it.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the held-out runs (resumable, like calibrate's).")
@click.option("--width", type=int, default=None,
              help="Held-out width (default and minimum: 4x the largest calibrated width).")
@click.option("--tokens", type=int, default=None,
              help="Token budget of the held-out runs (default: the calibration's largest).")
@click.option("--grid-steps", type=int, default=2, show_default=True,
              help="The LR grid: the recommended base LR x 2^(k x spacing), |k| <= this.")
@click.option("--grid-spacing", type=float, default=1.0, show_default=True,
              help="Octaves between neighbouring grid LRs (0.5: half-octave steps).")
@click.option("--seeds", type=int, default=1, show_default=True,
              help="Train every LR with this many seeds (1-4); its loss is their mean, and "
                   "the seed-to-seed spread is reported beside the gaps.")
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=int, default=None, help="CPU threads for torch.")
@click.option("--table", type=click.Path(dir_okay=False), default=None,
              help="Write the Markdown table here.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write rows, verdict and provenance here.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG of loss against LR here.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def validate(calibration, laws, out_dir, width, tokens, grid_steps, grid_spacing, seeds,
             device, threads, table, json_path, plot_path, progress):
    """Train one width >= 4x the largest calibrated width over an LR grid around the fitted
    law's LR, and report the recommended LR's loss gap against the best LR measured there
    (grid and choices), beside muP
    transfer alone, SP-style transfer and Step Law (a published law).

    Exit status: 0 when the table was written (whether or not the goal was met: the verdict
    line says), 1 when held-out runs failed, 2 on bad input, before any training."""
    from advisor.cli.deps import require
    from advisor.errors import AdvisorError
    from advisor.common.outputs import atomic_write_text, check_output_dir, check_output_file

    if grid_steps < 1 or grid_steps > 6:
        raise AdvisorError(f"--grid-steps must be 1 to 6, got {grid_steps}")
    if not 0 < grid_spacing <= 2:
        raise AdvisorError(f"--grid-spacing must be in (0, 2] octaves, got {grid_spacing}")
    if not 1 <= seeds <= 4:
        raise AdvisorError(f"--seeds must be 1 to 4, got {seeds}")
    if threads is not None and threads < 1:
        raise AdvisorError(f"--threads must be >= 1, got {threads}")
    require("validate", "torch", "mup")
    check_output_dir(out_dir, "validation folder")
    for path, what in ((table, "table"), (json_path, "JSON"), (plot_path, "plot")):
        if path:
            check_output_file(path, what)
    from calibration.analyze import validate as v

    if threads is not None:
        import torch
        torch.set_num_threads(threads)
    plan = v.prepare(calibration, laws, width=width, tokens=tokens, grid_steps=grid_steps,
                     grid_spacing=grid_spacing, seeds=seeds)
    click.echo(f"held-out width {plan.width} (proxies up to {plan.ref_width}), N = "
               f"{plan.n_non_embedding:,} non-embedding, D = {plan.tokens:,} tokens; "
               f"{len(v.specs_of(plan))} runs ({len(plan.seeds)} seed(s) per LR)")
    for name, lr in plan.chosen.items():
        extra = "; ".join(plan.notes.get(name) or [])
        click.echo(f"  {name}: base LR {lr:.4g}" + (f"  [{extra}]" if extra else ""))
    summary = v.train(plan, out_dir, device=device, progress=progress)
    if summary.by_status.get("failed"):
        click.echo(f"error: {summary.by_status['failed']} held-out run(s) failed; `advisor "
                   f"results {out_dir}` shows why; the same command retries them", err=True)
        raise click.exceptions.Exit(1)
    result = v.analyse(plan, out_dir)
    command = "advisor validate " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    text, doc = v.report(plan, result, command)
    click.echo("")
    click.echo(text)
    ver = result["verdict"]
    se = (f", {ver['gap_in_se']:.1f} standard errors of seed noise" if "gap_in_se" in ver
          else "")
    click.echo(f"verdict: recommended LR {'within' if ver['lr_within_2x'] else 'NOT within'} "
               f"2x of the best measured LR; loss gap {ver['gap_pct']:+.2f}%{se} (goal <= "
               f"{ver['goal_gap_pct']:.1f}%): goal {'met' if ver['met'] else 'NOT met'}")
    if table:
        atomic_write_text(table, text, "table")
    if json_path:
        v.write_json(doc, json_path)
    if plot_path:
        v.plot(result, plan.width, plot_path)
