"""``advisor check-stability``: flag attention logits that grow with width at a fixed LR.

The sibling of ``check-spectral`` for the instability Wortsman et al. 2023 extrapolate
(``advisor.fit.stability_check``): reads a stability sweep's results store (a plan like
recipes/plans/cpu-stability.yaml, whose runs record the max attention logit per layer) and
prints, per arm and LR, the slope of log2 max attention logit on log2 width with its 95%
interval. Exit codes: 0 no row GROWS, 1 some row GROWS, 3 none grows but some are unresolved,
2 bad input (no store, no probes).
"""
from __future__ import annotations


import click

from advisor.common.yamlio import json_text
from advisor.errors import AdvisorError


@click.command("check-stability")
@click.argument("store_dir", type=click.Path(file_okay=False))
@click.option("--arm", default=None, help="Only this arm (e.g. base, qk_norm).")
@click.option("--tol", type=float, default=None,
              help="Slope (log2 per doubling of width) above which growth is flagged "
                   "(default 0.25).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def check_stability(store_dir, arm, tol, fmt):
    """Does the max attention logit grow with width at a fixed LR? (exit 1 if it does)"""
    from advisor.fit.stability_check import GROWTH_TOL, growth_rows
    from advisor.runs.stability_data import points_from_store
    from advisor.runs.store import ResultsStore

    tol = GROWTH_TOL if tol is None else tol
    with ResultsStore.open(store_dir) as store:
        points = points_from_store(store)
    if not any(p.probes for p in points):
        raise AdvisorError(f"{store_dir}: no run recorded the stability probes (stored before "
                           "they existed, or trained with ADVISOR_STABILITY_PROBES=off)")
    if arm is not None:
        points = [p for p in points if p.arm == arm]
        if not points:
            raise AdvisorError(f"no runs of arm {arm!r} in {store_dir}")
    rows = growth_rows(points, tol)
    if not rows:
        raise AdvisorError("no LR has finished runs at two or more widths: nothing to check")
    if fmt == "json":
        click.echo(json_text({"tol": tol, "rows": rows}, indent=1))
    else:
        click.echo("| arm | LR | widths | runs | slope (95% interval) | verdict |")
        click.echo("|---|---|---|---|---|---|")
        for r in rows:
            iv = ("no interval" if r.half_width_95 == float("inf") else
                  f"[{r.slope - r.half_width_95:+.2f}, {r.slope + r.half_width_95:+.2f}]")
            click.echo(f"| {r.arm} | {r.lr:.4g} | {','.join(map(str, r.widths))} | {r.n} | "
                       f"{r.slope:+.2f} {iv} | {r.verdict} |")
    verdicts = {r.verdict for r in rows}
    raise SystemExit(1 if "GROWS" in verdicts else 3 if "unresolved" in verdicts else 0)
