"""``advisor check-spectral``: is every layer's behaviour width-invariant, as muP promises?

Trains a model family for a few steps at three or more widths on real text and fits, per
layer and statistic, the slope of log(statistic) against log(width) (see
``calibration.spectral.invariance``), with a confidence interval over seeds. Exit codes:
0 pass (every interval inside the tolerance band), 1 fail (some interval wholly outside it,
or a mup defect such as missing base shapes), 3 inconclusive (some interval straddles an
edge of the band and none fails: the report says how many seeds or which widths would settle
it), 2 bad input. ``--steady-state`` instead trains longer with weight decay and compares
the hidden matrices' top singular values across widths with the prediction of the weight-decay
width rule in use (``calibration.spectral.steady``); same exit codes.
"""
from __future__ import annotations

import contextlib
import inspect
import math
import sys

import click

from advisor.cli.commands._spectral_contract import CONTRACT_HELP, contract_options
from advisor.common.yamlio import json_text
from advisor.errors import AdvisorError
from advisor.rules.optim_rules import WD_WIDTH_RULES


def _parse_widths(text: str) -> list[int]:
    try:
        widths = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise AdvisorError(f"--widths must be comma-separated integers, got {text!r}") from None
    if len(widths) < 3 or len(set(widths)) != len(widths) or min(widths) < 1:
        raise AdvisorError(f"--widths needs at least three distinct positive widths, got {text!r}")
    return sorted(widths)


DEFAULT_WIDTHS = "64,128,256"


def _check_widths_fit(widths: list[int], depth: int) -> None:
    """Refuse, before any training, widths whose model cannot fit in memory: a block holds
    about 12 w^2 parameters (attention 4 w^2, a 4w MLP 8 w^2), each kept with its gradient
    and two Adam moments (16 bytes)."""
    from advisor.common.membudget import check_memory

    w = max(widths)
    check_memory(f"check-spectral at width {w} ({depth} blocks)", 16.0 * 12 * depth * w * w,
                 "lower the largest of --widths")


def family_default_widths(family: str) -> str:
    """The check's default widths for a proxy family: its base width x 1, 2 and 4.

    Measured on proxy-llama (base width 128, 2 heads, 4 seeds; docs/spectral-check.md): at
    64/128/256 the second block's key update falls from width 64 to 128 (slope -0.19,
    interval [-0.38, +0.00]: inconclusive; with 1 head, d_head 64-256, the same: -0.23), while
    at 128/256/512 with 4 heads (the same head sizes 32-128) it is flat (+0.01): the dip is the
    width-64 model's, below the base width, not the head size's. Starting at the base width
    keeps the check off that finite-width effect; a width below it can still be asked for.
    """
    from advisor.specs.proxyspec import ProxyConfig, load_family

    spec = load_family(family)
    base = (spec.get("base") or {}).get("width", ProxyConfig.base_width)
    if isinstance(base, bool) or not isinstance(base, int) or base < 1:
        raise AdvisorError(f"family {family}: base width must be a positive integer, got {base!r}")
    return f"{base},{2 * base},{4 * base}"


VARIANTS = {
    "mup": {},
    "sp": {"parameterization": "sp"},
    "adamw": {"optimizer": "adamw"},
    "sp-readout": {"readout": "sp"},
    "sqrt-attention": {"attn_scale": "sp"},
}


def _contract(opts: dict):
    """The check's Contract from the contract options (AdvisorError on bad input)."""
    from calibration.spectral.contract import Contract, load_callable

    if opts["max_seeds"] is not None and opts["max_seeds"] < 1:
        raise AdvisorError(f"--max-seeds must be at least 1, got {opts['max_seeds']}")
    hook = {k: load_callable(opts[o], f"--{o.replace('_hook', '').replace('_', '-')}")
            for k, o in (("batch_fn", "batch_hook"), ("loss_fn", "loss_hook")) if opts[o]}
    return Contract(vocab=opts["vocab"], seq_len=opts["seq_len"], batch=opts["batch_size"],
                    layout=opts["layout"], data=opts["data"],
                    lr_scale_key=opts["lr_scale_key"], **hook)


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
@click.option("--widths", default=None,
              help="comma-separated widths [default: 64,128,256; with --family (or no "
                   "--factory) and no --steady-state: the family's base width x 1, 2, 4, e.g. "
                   "128,256,512 for proxy-llama].")
@click.option("--steps", type=int, default=None,
              help="optimizer steps per width [default: 20; 300 with --steady-state].")
@click.option("--seeds", type=int, default=None,
              help="independent replicates per width; slopes get t intervals from them "
                   "[default: 4; 2 with --steady-state].")
@click.option("--confidence", type=float, default=0.95, show_default=True,
              help="confidence level of each slope's interval.")
@click.option("--lr", type=float, default=2 ** -10, show_default=True,
              help="Adam LR (base width) when the check builds the optimizer.")
@click.option("--tol", type=float, default=None,
              help="largest allowed |slope| of log(statistic) vs log(width) [default: 0.3; "
                   "0.15 with --steady-state].")
@click.option("--steady-state", "steady", is_flag=True,
              help="train longer with weight decay and compare hidden matrices' top singular "
                   "values across widths with the weight-decay rule in use (Fan et al. 2025).")
@click.option("--weight-decay", type=float, default=1.0, show_default=True,
              help="with --family and --steady-state: AdamW coefficient of hidden matrices at "
                   "the base width.")
@click.option("--wd-rule", type=click.Choice(tuple(WD_WIDTH_RULES)), default="mup",
              show_default=True,
              help="with --family and --steady-state: how that coefficient scales with the "
                   "width multiplier m: constant, sqrt(m) (Fan et al.), or m (mup.MuAdamW).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.option("--all-rows", is_flag=True, help="print passing rows too (table format).")
@contract_options
def check_spectral(factory, family, variant, heads, depth, widths, steps, seeds, confidence, lr,
                   tol, steady, weight_decay, wd_rule, fmt, all_rows, contract_opts):
    """Check that activations, updates and top singular values do not change with width.

    Exit status: 0 when every layer passes, 1 when any fails, 3 when a verdict is
    inconclusive (the interval over seeds straddles the tolerance, after adding replicates up
    to --max-seeds where that was measured to settle it; the report says what would), 2 on
    bad input or a missing dependency (torch; mup for --family).
    """
    from advisor.cli.deps import require

    steps = steps if steps is not None else (300 if steady else 20)
    seeds = seeds if seeds is not None else (2 if steady else 4)
    tol = tol if tol is not None else (0.15 if steady else 0.3)
    if steps < 1 or seeds < 1 or depth < 1 or heads < 1:
        raise AdvisorError("--steps, --seeds, --depth and --heads must be positive")
    if not (tol > 0 and math.isfinite(tol)) or not (0 < lr <= 1):
        raise AdvisorError(f"--tol must be a positive number and --lr one in (0, 1], got "
                           f"--tol {tol} --lr {lr}")
    if not 0 < confidence < 1:
        raise AdvisorError(f"--confidence must lie in (0, 1), got {confidence}")
    if factory and family:
        raise AdvisorError("give --factory or --family, not both")
    if widths is None:
        widths = (DEFAULT_WIDTHS if factory or steady
                  else family_default_widths(family or "proxy-llama"))
    widths = _parse_widths(widths)
    _check_widths_fit(widths, depth)
    require("check-spectral", "torch", *([] if factory else ["mup"]))
    from calibration.spectral.invariance import family_factory, load_factory, run_check

    if factory:
        fn = load_factory(factory)
        label = factory
    else:
        family = family or "proxy-llama"
        extra = dict(weight_decay=weight_decay, wd_rule=wd_rule) if steady else {}
        if steady and weight_decay <= 0:
            raise AdvisorError("--steady-state needs --weight-decay > 0")
        fn = family_factory(family, depth=depth, n_heads=heads, lr=lr, **VARIANTS[variant],
                            **extra)
        label = f"{family} ({variant})"
    contract = _contract(contract_opts)         # bad contract input: refused before any work
    progress = None if fmt == "json" else (lambda msg: click.echo(f"  {msg}", err=True))
    if fmt != "json":
        click.echo(f"check-spectral{' --steady-state' if steady else ''}: {label}, widths "
                   f"{widths}, {steps} steps x {seeds} seeds", err=True)
    if steady:
        from calibration.spectral.steady import run_steady

        result = run_steady(fn, widths, steps=steps, seeds=seeds, tol=tol,
                            confidence=confidence, progress=progress)
        click.echo(json_text(result, indent=1) if fmt == "json" else
                   result.report() + f"\n({result.seconds:.0f} s)")
        if result.exit_code:
            raise click.exceptions.Exit(result.exit_code)
        return
    with contextlib.redirect_stdout(sys.stderr):          # the model's prints: not on stdout
        result = run_check(fn, widths, steps=steps, tol=tol, lr=lr, seeds=seeds,
                           confidence=confidence, progress=progress, contract=contract,
                           max_seeds=contract_opts["max_seeds"])
    if fmt == "json":
        click.echo(json_text(result, indent=1))
    else:
        click.echo(result.report(only_failures=not all_rows))
    if result.exit_code:
        raise click.exceptions.Exit(result.exit_code)


check_spectral.help = inspect.cleandoc(check_spectral.help or "") + "\n\n" + CONTRACT_HELP
