"""``advisor plan``: a calibration plan for your architecture and a compute budget."""
from __future__ import annotations

import click

from advisor.cli.commands._options import shape_options


@click.command("plan")
@click.option("--hf-config", type=click.Path(dir_okay=False), default=None,
              help="The target's Hugging Face config.json (llama, mistral, qwen2, qwen3).")
@shape_options("Target")
@click.option("--budget-cpu-minutes", default=None, help="Budget in minutes of one CPU core.")
@click.option("--budget-gpu-hours", default=None, help="Budget in hours of one GPU.")
@click.option("--gpu", default="h100", show_default=True, help="The GPU of --budget-gpu-hours.")
@click.option("--data", default="stdlib", show_default=True,
              help="Data spec the proxies train on: stdlib, tokens:DIR (nanoGPT train.bin/"
                   "val.bin, your tokenizer's ids), text:PATH,tokenizer=hf:tokenizer.json.")
@click.option("--factory", default=None, metavar="PKG.MOD:BUILD",
              help="Your own model code builds the proxies: build(width, *, lr, vocab=, "
                   "seq_len=) -> (model, optimizer), muP rules in its optimizer; the config "
                   "still sizes the widths, tokens and cost.")
@click.option("--tokens", default=None, metavar="D",
              help="The target's training tokens, where the plan's value is priced (default: "
                   "as `advisor recommend`, compute-optimal under Epoch AI's Chinchilla "
                   "refit).")
@click.option("--name", default="calibration", show_default=True, help="Plan name.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Plan YAML to write (then: advisor calibrate PLAN --out DIR).")
def plan(hf_config, d_model, n_layers, n_heads, n_kv_heads, ffn, vocab, tied_embeddings,
         budget_cpu_minutes, budget_gpu_hours, gpu, data, name, out, factory=None,
         tokens=None):
    """Write a muP calibration plan: proxies of the target's architecture (head size, GQA
    ratio, MLP ratio, QK-norm, biases, tying, RoPE, vocabulary kept; width and depth reduced),
    LR grid, token budgets and batches that identify the LR law, and its estimated cost.
    Also what it buys: the expected excess loss at the target before calibration (as
    `advisor recommend` prices it with the default laws) and after (with the LR interval the
    sweep is expected to give, from its design). A budget that cannot buy an identified plan
    is refused with the reason (exit 2); a plan that buys nothing the default laws can price
    at the target is written with a warning saying so."""
    import yaml

    from advisor.fit.design import Budget, make_plan
    from advisor.recommendation.plan_value import plan_value
    from advisor.errors import AdvisorError
    from advisor.specs.hfarch import architecture_from_hf_config, architecture_from_spec
    from advisor.specs.modelspec import spec_from_hf_config, spec_from_options
    from advisor.common.outputs import atomic_write_text, check_output_file
    from advisor.common.yamlio import plain
    from advisor.specs.plan import load_plan

    check_output_file(out, "plan")
    budget = Budget.parse(budget_cpu_minutes, budget_gpu_hours, gpu)
    spec = spec_from_options(d_model, n_layers, n_heads, n_kv_heads, ffn, vocab,
                             tied_embeddings)
    if hf_config and spec is not None:
        raise AdvisorError("give --hf-config or --d-model/--n-layers/--n-heads, not both")
    if hf_config:
        arch = architecture_from_hf_config(hf_config)
        spec = spec_from_hf_config(hf_config)
    elif spec is not None:
        arch = architecture_from_spec(spec)
    else:
        raise AdvisorError("give the target: --hf-config config.json or --d-model/--n-layers/"
                           "--n-heads")
    d = make_plan(arch, budget, data=data, name=name)
    if factory:
        if ":" not in factory:
            raise AdvisorError(f"--factory must look like package.module:function, got "
                               f"{factory!r}")
        d["settings"]["factory"] = factory
        d["settings"].pop("stack", None)      # a foreign model trains one run at a time
    # what it buys: recommend's expected excess loss at the target, before and after
    d["estimate"]["expected_excess_loss"] = plan_value(d, spec, tokens)
    atomic_write_text(out, "# written by `advisor plan`; run it with "
                           f"`advisor calibrate {out} --out DIR`\n"
                      + yaml.safe_dump(plain(d), sort_keys=False), "plan")
    p = load_plan(out)            # what we wrote must load (and validate) as any plan does
    est = d["estimate"]
    click.echo(f"target: {arch.describe()}")
    for note in arch.notes:
        click.echo(f"note: {note}")
    g = d["grid"]
    click.echo(f"proxies: widths {', '.join(map(str, g['width']))} x depth "
               f"{d['settings']['depth']} (muP base width {d['settings']['base_width']}), "
               f"tokens {', '.join(f'{t:,}' for t in g['tokens'])}, batch {g['batch_size']} x "
               f"{d['settings']['seq_len']}, LR 2^{g['lr']['pow2'][0]}..2^{g['lr']['pow2'][1]}")
    click.echo(f"plan {p.name}: {len(p.specs)} runs, estimated {est['seconds'] / 60:.1f} "
               f"minutes of {est['device']} (budget {budget.text}); {est['identifies']}")
    b = est["expected_excess_loss"]
    click.echo(f"buys: expected excess loss at the target ({b['target_tokens']:.3g} tokens) "
               f"{b['before']['value']:.3g} nats/token before calibration (LR sd "
               f"{b['before']['lr_sd_octaves']:.2f} octaves, default laws), "
               f"{b['after']['value']:.3g} after (LR sd {b['after']['lr_sd_octaves']:.2f}: "
               f"fit {b['after']['lr_sd_components_octaves']['fit']:.2f}, extrapolation in D "
               f"{b['after']['lr_sd_components_octaves']['extrapolation_in_D']:.2f}); batch "
               "term unchanged")
    click.echo(f"note: assumes {b['design']['assumes']}; sigma/k "
               f"{b['design']['noise_over_curvature']:g} octaves^2 "
               f"({b['design']['noise_basis']})")
    if b.get("warning"):
        click.echo(f"warning: {b['warning']}", err=True)
    for note in est["not_calibrated"]:
        click.echo(f"note: not calibrated: {note}")
    click.echo(f"wrote {out}")
