"""``advisor laws``: the shipped law sets, what they predict, and where they come from."""
from __future__ import annotations

import click

from advisor.common.yamlio import json_text
from advisor.laws.lawset import load_lawset, load_shipped


@click.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.option("--show", metavar="NAME|FILE", default=None,
              help="Print one law set in full (validated).")
def laws(fmt, show):
    """List the shipped law sets with their sources and units."""
    if show:
        ls = load_lawset(show)
        d = ls.to_dict()
        if fmt == "json":
            click.echo(json_text(d))
        else:
            import yaml
            click.echo(yaml.safe_dump(d, sort_keys=False, width=100), nl=False)
        return
    sets = load_shipped()
    rows = [{"name": s.name, "title": s.title, "predicts": sorted(s.laws),
             "params": s.conventions["params"], "batch_unit": s.batch_unit,
             "citation": s.source.get("citation"), "url": s.source.get("url")} for s in sets]
    if fmt == "json":
        click.echo(json_text(rows))
        return
    w = max(len(r["name"]) for r in rows)
    click.echo(f"{'name':<{w}}  {'predicts':<45}  {'N counts':<18}  source")
    for r in rows:
        click.echo(f"{r['name']:<{w}}  {', '.join(r['predicts']):<45}  {r['params']:<18}  "
                   f"{r['url'] or ''}")
