"""``advisor validate``: train a held-out width over an LR grid around the recommendation.

The torch side of :mod:`advisor.fit.validation`: pick the reference cell of a calibration store
(the largest token budget, the most common batch size, weight decay 0 when swept), build the
held-out run (the same settings at ``width``, default 4x the largest calibrated width),
train the grid ``law LR x 2^k`` and every other choice's LR (stacked: the runs differ only in
LR), and tabulate each choice's loss gap against the best measured (grid and choices). Every gap is a measured
loss difference, never an interpolation; a diverged run counts as infinitely bad.

Units: base LRs (``mup_base``), losses in nats per token of the run's data.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter

from advisor.errors import AdvisorError


@dataclasses.dataclass
class Validation:
    width: int
    ref_width: int
    n_non_embedding: int
    n_total: int
    tokens: int
    held: object                 # RunSpec of the held-out runs (lr is a placeholder)
    grid_lrs: list
    chosen: dict                 # name -> base LR
    notes: dict
    seeds: tuple = (0,)          # every LR is trained once per seed; its loss is their mean


def _calibration_runs(path):
    from advisor.runs.store import ResultsStore

    with ResultsStore.open(path) as st:
        runs = [r for r in st.runs() if r.status in ("finished", "diverged")]
    mup = [r for r in runs if r.settings.get("parameterization") == "mup"
           and r.settings.get("optimizer", "muadamw") == "muadamw"]
    if not mup:
        raise AdvisorError(f"{path}: no finished muP runs (muadamw) to validate against")
    return mup


def _loss(r) -> float:
    return r.final_val_loss if r.status == "finished" else math.inf


def prepare(calibration, laws, width: int | None = None, tokens: int | None = None,
            grid_steps: int | None = None, grid_spacing: float | None = None,
            seeds: int = 1) -> Validation:
    """Everything decided before training (AdvisorError on any bad input). ``seeds``: how
    many seeds each LR is trained with (the calibration's seed, then the next ones)."""
    from advisor.laws.lawset import load_lawset
    from advisor.specs.runspec import RunSpec
    from advisor.fit.validation import (GRID_SPACING, GRID_STEPS, best_lr, choices,
                                        lr_grid)
    from calibration.train.data import load_data
    from calibration.model.proxy import build_model, count_params

    runs = _calibration_runs(calibration)
    law = load_lawset(laws)
    if law.conventions.get("learning_rate") != "mup_base":
        raise AdvisorError(f"law set {law.name}: its LR convention is "
                           f"{law.conventions.get('learning_rate')!r}; validate compares muP "
                           "base LRs (a law set `advisor fit` wrote from a muP store)")
    tokens = tokens or max(r.settings["tokens"] for r in runs)
    cell = [r for r in runs if r.settings["tokens"] == tokens]
    if not cell:
        raise AdvisorError(f"no calibration runs with tokens={tokens}")
    bs = Counter(r.settings["batch_size"] for r in cell).most_common(1)[0][0]
    cell = [r for r in cell if r.settings["batch_size"] == bs
            and r.settings.get("weight_decay", 0.0) == min(x.settings.get("weight_decay", 0.0)
                                                           for x in cell)]
    ref_width = max(r.settings["width"] for r in cell)
    top = [r for r in cell if r.settings["width"] == ref_width]
    ref = RunSpec.from_settings(top[0].settings)
    width = width or 4 * ref_width
    if width < 4 * ref_width:
        raise AdvisorError(f"--width {width} is less than 4x the largest calibrated width "
                           f"{ref_width}: not a held-out transfer test")
    held = dataclasses.replace(ref, width=width, stack=True, lr=1.0)
    base_width = int(dict(held.model).get("base_width", 0) or held.model_config().base_width)
    stated = (law.mup or {}).get("base_width")
    if stated is not None and int(stated) != base_width:
        raise AdvisorError(f"law set {law.name} was fitted at muP base width {stated}, the "
                           f"calibration's runs at {base_width}")
    data = load_data(held.data)
    cfg = held.model_config(vocab_size=data.vocab_size)
    data.check_fits(held.seq_len)
    if held.factory:            # the user's own model: its parameters, counted as calibrate does
        from calibration.model import factory

        model, _ = factory.build(held.factory, width, 1e-3, cfg.vocab_size, held.seq_len)
        n_total, n_nonemb = factory.count_params(model, cfg.vocab_size)
        del model
    else:
        n_total, n_nonemb = count_params(build_model(cfg, device="meta"))
    D = held.steps * held.tokens_per_step
    N = n_total if law.conventions.get("params") == "total" else n_nonemb
    law_lr = law.predict("learning_rate", N=N, D=D)
    notes = {"law (recommended)": law.out_of_range("learning_rate", N=N, D=D)}
    mup_lr, _ = best_lr({r.settings["lr"]: _loss(r) for r in top})
    step = load_lawset("step-law")
    chosen = choices(law_lr, mup_lr, width, ref_width, base_width,
                     step.predict("learning_rate", N=n_nonemb, D=D))
    notes["Step Law (published)"] = step.out_of_range("learning_rate", N=n_nonemb, D=D)
    return Validation(width=width, ref_width=ref_width, n_non_embedding=n_nonemb,
                      n_total=n_total, tokens=D, held=held,
                      grid_lrs=lr_grid(law_lr, GRID_STEPS if grid_steps is None
                                       else grid_steps,
                                       GRID_SPACING if grid_spacing is None else grid_spacing),
                      chosen=chosen, notes=notes,
                      seeds=tuple(held.seed + i for i in range(seeds)))


def _spec(v: Validation, lr: float, seed: int):
    return dataclasses.replace(v.held, lr=float(lr), seed=int(seed))


def specs_of(v: Validation) -> list:
    specs, seen = [], set()
    for seed in v.seeds:
        for lr in list(v.grid_lrs) + list(v.chosen.values()):
            s = _spec(v, lr, seed)
            if s.run_id not in seen:
                seen.add(s.run_id)
                specs.append(s)
    return specs


def train(v: Validation, out, device="auto", progress=True):
    from advisor.specs.plan import Plan
    from calibration.sweep.executors import run_sweep

    plan = Plan("validate", f"held-out width {v.width}", "advisor validate",
                tuple(specs_of(v)))
    return run_sweep(plan, out, device=device, show_progress=progress)


def analyse(v: Validation, out) -> dict:
    """Rows, verdict and provenance from the held-out runs in ``out``."""
    from advisor.runs.store import ResultsStore
    from advisor.fit.validation import seed_mean, seed_noise, transfer_table, verdict

    with ResultsStore.open(out) as st:
        held = {r.run_id: r for r in st.runs()}

    def per_seed(lr):
        rs = [held.get(_spec(v, lr, seed).run_id) for seed in v.seeds]
        return [math.nan if r is None else _loss(r) for r in rs]

    lrs = list(v.grid_lrs) + list(v.chosen.values())
    seeds = {lr: per_seed(lr) for lr in lrs}
    grid = {lr: seed_mean(seeds[lr]) for lr in v.grid_lrs}
    chosen = {name: seed_mean(seeds[lr]) for name, lr in v.chosen.items()}
    missing = [k for k, x in list(grid.items()) + list(chosen.items()) if math.isnan(x)]
    if missing:
        raise AdvisorError(f"{out}: {len(missing)} held-out LRs with runs missing or failed; "
                           "run the same command again")
    rows = transfer_table(grid, v.chosen, chosen)
    noise = seed_noise(seeds)
    device = next((r.device for r in held.values() if r.device), "?")
    return {"rows": rows, "verdict": verdict(rows, noise=noise), "grid": grid,
            "device": device, "noise": noise, "seeds": list(v.seeds),
            "per_seed": {lr: seeds[lr] for lr in sorted(seeds)}}


def report(v: Validation, result: dict, command: str) -> tuple[str, dict]:
    from advisor.fit.validation import markdown

    h = v.held
    header = (f"Held-out transfer at width {v.width} (proxies up to {v.ref_width}): "
              f"N = {v.n_non_embedding:,} non-embedding, D = {v.tokens:,} tokens, "
              f"{h.steps} steps of {h.batch_size} x {h.seq_len}, data {h.data}, device "
              f"{result['device']}; each loss the mean of {len(v.seeds)} seed(s)")
    noise = result.get("noise")
    if noise:
        header += (f" (seed-to-seed sd of one run {noise['run_sd']:.4f} nats, so a gap "
                   f"between two LRs has a standard error of {noise['gap_se']:.4f})")
    header += "."
    table = markdown(result["rows"], header)
    doc = {"rows": result["rows"], "verdict": result["verdict"],
           "grid": {repr(k): x for k, x in result["grid"].items()},
           "seeds": result.get("seeds", [0]), "noise": result.get("noise"),
           "per_seed": {repr(k): x for k, x in result.get("per_seed", {}).items()},
           "width": v.width, "calibrated_max_width": v.ref_width,
           "N_non_embedding": v.n_non_embedding, "N_total": v.n_total, "D": v.tokens,
           "notes": v.notes, "device": result["device"],
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": command}
    return table, doc


def plot(result: dict, width: int, path) -> None:
    """The check's figure (``advisor.cli.plots.transfer_gaps``): every run at this width,
    grid and choices, with each choice's gap in percent."""
    from advisor.cli.plots import transfer_gaps

    points = dict(result["grid"])                 # every run at this width: grid and choices
    points.update({r["lr"]: r["loss"] for r in result["rows"][1:]})
    transfer_gaps(points, result["rows"][1:], path, series_label=f"runs at width {width}",
                  xlabel="muP base LR", ylabel="final held-out loss (nats/token)",
                  gap_label=lambda r: f"{r['gap_pct']:+.2f}%", span=0.6, pad=0.02)


def write_json(doc: dict, path) -> None:
    """``doc`` as JSON (``advisor.common.yamlio.json_text``: a diverged run's infinite loss and
    gap are null there, its row says ``diverged``)."""
    from advisor.common.outputs import atomic_write_text
    from advisor.common.yamlio import json_text

    atomic_write_text(path, json_text(doc), "validation JSON")


__all__ = ["prepare", "specs_of", "train", "analyse", "report", "plot", "write_json",
           "Validation"]
