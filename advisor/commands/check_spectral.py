"""``advisor check-spectral``: is every layer's behaviour width-invariant, as muP promises?

Trains a model family for a few steps at three or more widths on real text and fits, per
layer and statistic, the slope of log(statistic) against log(width) (see
``calibration.spectral.invariance``). Exit 0 when every layer passes, 1 when any fails,
2 on bad input.
"""
from __future__ import annotations

import json

import click

from advisor.errors import AdvisorError


def _parse_widths(text: str) -> list[int]:
    try:
        widths = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise AdvisorError(f"--widths must be comma-separated integers, got {text!r}") from None
    if len(widths) < 3 or len(set(widths)) != len(widths) or min(widths) < 1:
        raise AdvisorError(f"--widths needs at least three distinct positive widths, got {text!r}")
    return sorted(widths)


VARIANTS = {
    "mup": {},
    "sp": {"parameterization": "sp"},
    "adamw": {"optimizer": "adamw"},
    "sp-readout": {"readout": "sp"},
    "sqrt-attention": {"attn_scale": "sp"},
}


@click.command("check-spectral")
@click.option("--factory", default=None,
              help="package.module:function taking a width and returning a model or a "
                   "(model, optimizer) pair; the model maps token ids (B, T) to logits (B, T, V).")
@click.option("--family", default=None,
              help="a family in recipes/families/ (default proxy-llama when --factory is not given).")
@click.option("--variant", type=click.Choice(sorted(VARIANTS)), default="mup", show_default=True,
              help="with --family: build it correctly (mup) or with one deliberate mistake.")
@click.option("--heads", type=int, default=2, show_default=True,
              help="with --family: fixed number of heads, so the head size grows with width.")
@click.option("--depth", type=int, default=2, show_default=True, help="with --family: blocks.")
@click.option("--widths", default="64,128,256", show_default=True, help="comma-separated widths.")
@click.option("--steps", type=int, default=20, show_default=True, help="optimizer steps per width.")
@click.option("--seeds", type=int, default=2, show_default=True,
              help="seeds per width (statistics are geometric means over seeds).")
@click.option("--lr", type=float, default=2 ** -10, show_default=True,
              help="Adam LR (base width) when the check builds the optimizer.")
@click.option("--tol", type=float, default=0.3, show_default=True,
              help="largest allowed |slope| of log(statistic) vs log(width).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.option("--all-rows", is_flag=True, help="print passing rows too (table format).")
def check_spectral(factory, family, variant, heads, depth, widths, steps, seeds, lr, tol, fmt,
                   all_rows):
    """Check that activations, updates and top singular values do not change with width.

    Exit status: 0 when every layer passes, 1 when any fails, 2 on bad input or a missing
    dependency (torch; mup for --family).
    """
    from advisor.deps import require

    widths = _parse_widths(widths)
    if steps < 1 or seeds < 1 or depth < 1 or heads < 1:
        raise AdvisorError("--steps, --seeds, --depth and --heads must be positive")
    if tol <= 0 or lr <= 0:
        raise AdvisorError("--tol and --lr must be positive")
    if factory and family:
        raise AdvisorError("give --factory or --family, not both")
    require("check-spectral", "torch", *([] if factory else ["mup"]))
    from calibration.spectral.invariance import family_factory, load_factory, run_check

    if factory:
        fn = load_factory(factory)
        label = factory
    else:
        family = family or "proxy-llama"
        fn = family_factory(family, depth=depth, n_heads=heads, lr=lr, **VARIANTS[variant])
        label = f"{family} ({variant})"
    progress = None if fmt == "json" else (lambda msg: click.echo(f"  {msg}", err=True))
    if fmt != "json":
        click.echo(f"check-spectral: {label}, widths {widths}, {steps} steps x {seeds} seeds",
                   err=True)
    result = run_check(fn, widths, steps=steps, tol=tol, lr=lr, seeds=seeds, progress=progress)
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=1))
    else:
        click.echo(result.table(only_failures=not all_rows and not result.passed))
    if not result.passed:
        raise click.exceptions.Exit(1)
