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
              "would run; train nothing.")
def calibrate(plan, out_dir, executor, address, device, workers, threads, progress, dry_run):
    """Train the proxy models of a sweep PLAN (a recipes/plans name or a YAML path).

    Finished runs are never re-run or overwritten: kill it at any time and run the same
    command again to resume.

    Exit status: 0 when every run finished or diverged (a diverged run is a result); 1 when
    any run failed (`advisor results DIR` shows why; the same command retries them); 2 on
    bad input or environment (plan, data, output folder, torch or mup not installed), found
    before anything is trained; 130 when interrupted.
    """
    from advisor.cli.deps import require
    from advisor.common.outputs import check_output_dir

    if workers is not None and workers < 1:
        raise AdvisorError(f"--workers must be >= 1, got {workers}")
    if threads is not None and threads < 1:
        raise AdvisorError(f"--threads must be >= 1, got {threads}")
    require("calibrate", "torch", "mup", *(["ray"] if executor == "ray" else []))
    check_output_dir(out_dir, "sweep folder")

    from advisor.specs.plan import load_plan
    from calibration.sweep.executors import check_inputs, run_sweep

    if threads is not None:
        import torch
        torch.set_num_threads(threads)
    p = load_plan(plan)
    if dry_run:
        from advisor.runs.store import ResultsStore, DB_NAME
        from pathlib import Path

        datas = check_inputs(p, device)
        done = set()
        if (Path(out_dir) / DB_NAME).exists():
            with ResultsStore.open(out_dir) as st:
                done = st.final_ids()
        pending = [s for s in p.specs if s.run_id not in done]
        for d in datas.values():
            click.echo(f"data {d.describe()}")
        click.echo(f"plan {p.name}: {len(p.specs)} runs, {len(p.specs) - len(pending)} already "
                   f"stored, {len(pending)} to run")
        return
    summary = run_sweep(p, out_dir, executor=executor, device=device, address=address,
                        workers=workers, show_progress=progress)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.by_status.items()))
    click.echo(f"plan {p.name}: {summary.total} runs ({counts}); {summary.already_done} were "
               f"already stored, {summary.ran} ran in {summary.wall_time_s:.0f} s; "
               f"results in {out_dir}")
    failed = summary.by_status.get("failed", 0)
    if failed:
        click.echo(f"warning: {failed} run(s) failed; `advisor results {out_dir}` shows the "
                   "errors, and running the same command again retries them", err=True)
        raise click.exceptions.Exit(1)
