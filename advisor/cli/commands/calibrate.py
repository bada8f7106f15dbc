"""``advisor calibrate PLAN --out DIR``: run a sweep plan into a results store, resumably."""
from __future__ import annotations

import click

from advisor.errors import AdvisorError


@click.command()
@click.argument("plan", metavar="PLAN")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Sweep directory; its results.sqlite is created or resumed.")
@click.option("--executor", type=click.Choice(["inproc", "gpus", "ray"]), default="inproc",
              show_default=True, help="inproc: this process; gpus: one process per local GPU "
              "(or --workers CPU processes); ray: tasks on a Ray cluster.")
@click.option("--address", default=None, help="Ray cluster address (executor ray); "
              "default: start a local Ray instance.")
@click.option("--device", default="auto", show_default=True,
              help="auto (CUDA when available), cpu, cuda or cuda:N.")
@click.option("--workers", type=int, default=None,
              help="Worker processes for --executor gpus (default: one per GPU; 2 on CPU).")
@click.option("--threads", type=int, default=None,
              help="CPU threads for torch in this process (default: torch's choice).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--dry-run", is_flag=True, help="Check the plan, data and store; list what "
              "would run and how long it takes at the least; train nothing.")
@click.option("--force", is_flag=True, help="Start a plan whose best-case time on this "
              "device exceeds a day (refused otherwise).")
def calibrate(plan, out_dir, executor, address, device, workers, threads, progress, dry_run,
              force):
    """Train the proxy models of a sweep PLAN (a recipes/plans name or a YAML path).

    Finished runs are never re-run or overwritten: kill it at any time and run the same
    command again to resume.

    Exit status: 0 when every run finished or diverged (a diverged run is a result) and at
    least one finished; 1 when any run failed (`advisor results DIR` shows why; the same
    command retries them) or every run of the plan diverged (nothing to fit: lower the LRs);
    2 on bad input or environment (plan, device, data, output folder, a plan of more than a
    day at the device's best case without --force, torch or mup not installed), found before
    anything is trained; 130 when interrupted.
    """
    from advisor.cli.deps import require
    from advisor.common.outputs import check_output_dir

    if workers is not None and workers < 1:
        raise AdvisorError(f"--workers must be >= 1, got {workers}")
    if threads is not None and threads < 1:
        raise AdvisorError(f"--threads must be >= 1, got {threads}")
    require("calibrate", "torch", "mup", *(["ray"] if executor == "ray" else []))
    check_output_dir(out_dir, "sweep folder")

    from advisor.specs.plan import MAX_PLAN_S, describe_seconds, load_plan
    from calibration.train.runtime import check_device_name
    from calibration.sweep.executors import check_inputs, run_sweep, stored_final_ids

    where = check_device_name(device)
    if executor != "ray":
        from calibration.train.runtime import resolve_device
        where = resolve_device(device)    # CUDA asked for where there is none: now
    if threads is not None:
        import torch
        torch.set_num_threads(threads)
    p = load_plan(plan)
    if dry_run:
        done = stored_final_ids(out_dir)
        datas, seconds = check_inputs(p, device, force=True, done=done)
        pending = [s for s in p.specs if s.run_id not in done]
        for d in datas.values():
            click.echo(f"data {d.describe()}")
        click.echo(f"plan {p.name}: {len(p.specs)} runs, {len(p.specs) - len(pending)} already "
                   f"stored, {len(pending)} to run, taking at least "
                   f"{describe_seconds(seconds)} on {where} (a lower bound at the device's best "
                   "case; real runs take far longer, on a CPU tens of ms per step or more)")
        if seconds > MAX_PLAN_S and not force:
            click.echo(f"warning: more than {describe_seconds(MAX_PLAN_S)} at the least: "
                       "without --dry-run it is refused unless you pass --force", err=True)
        return
    summary = run_sweep(p, out_dir, executor=executor, device=device, address=address,
                        workers=workers, show_progress=progress, force=force)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.by_status.items()))
    click.echo(f"plan {p.name}: {summary.total} runs ({counts}); {summary.already_done} were "
               f"already stored, {summary.ran} ran in {summary.wall_time_s:.0f} s; "
               f"results in {out_dir}")
    failed = summary.by_status.get("failed", 0)
    if failed:
        click.echo(f"warning: {failed} run(s) failed; `advisor results {out_dir}` shows the "
                   "errors, and running the same command again retries them", err=True)
        raise click.exceptions.Exit(1)
    if summary.total and summary.by_status.get("diverged", 0) == summary.total:
        click.echo(f"error: every run of plan {p.name} diverged: there is no loss to compare "
                   "or fit; lower the plan's LRs (or raise diverge_factor) and run it again",
                   err=True)
        raise click.exceptions.Exit(1)
