"""Held-out transfer check: does a fitted law pick a good LR at a width it never saw?

Train one width at least 4x beyond the largest width of the calibration, over an LR grid,
and report how much loss each way of choosing the LR gives up against that grid's best:

* **law**: the fitted law set's ``learning_rate`` at this proxy's N and D (``--laws``);
* **Step Law**: recipes/laws/step-law.yaml at the same N (non-embedding) and D (Li et al.
  2025, arXiv:2503.04715), used as the proxy's LR as a user would;
* **muP transfer only**: the best grid LR of the same cell (token budget, batch size, weight
  decay) at the largest calibrated width, carried over unchanged, which is what muP promises.

Each chosen LR is trained too (beside the grid), so every gap is a measured loss difference,
never an interpolation. Loss is the final held-out loss (nats/byte on the stdlib corpus);
a diverged run counts as infinitely bad.

The whole GPU sequence that produces our own law set and this table (one H100; both
training steps resume where they stopped if a command is cut off, so just run it again):

    advisor calibrate gpu-calibration --out runs/gpu-calibration --device cuda
    mkdir -p recipes/laws/proxy-stdlib
    advisor results runs/gpu-calibration --plot recipes/laws/proxy-stdlib/lr_sweeps.png
    advisor fit runs/gpu-calibration --out recipes/laws/proxy-stdlib.yaml \\
        --name proxy-stdlib --select parameterization=mup --lr-convention mup_base \\
        --schedule "wsd:warmup=0.05,cooldown=0.2,shape=linear" --cv
    advisor plot runs/gpu-calibration --laws recipes/laws/proxy-stdlib.yaml \\
        --select parameterization=mup --out recipes/laws/proxy-stdlib/
    python -m bench.transfer_check --calibration runs/gpu-calibration \\
        --laws recipes/laws/proxy-stdlib.yaml --out runs/gpu-transfer \\
        --table runs/gpu-transfer/transfer.md --json runs/gpu-transfer/transfer.json \\
        --plot runs/gpu-transfer/transfer.png

(``--lr-convention mup_base``: the sweep's lr is the muP base-width LR, which is also what
this script trains with.) Then add the device and date to the law set's provenance, and
this script's table to the README. The same sequence ran end to end here on the CPU at toy
size (widths 16-32, 2 budgets, held-out width 128, 40 steps; not a result).

On the CPU the same script runs at toy size against a CPU sweep, e.g.::

    advisor calibrate cpu-lr-sweep --out /tmp/cpu-sweep --device cpu
    python -m bench.transfer_check --calibration /tmp/cpu-sweep --out /tmp/cpu-transfer \\
        --lr-pow2 -10 -4 --device cpu
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from advisor.errors import AdvisorError

# The settings that define one calibration cell besides width and LR.
CELL_KEYS = ("family", "depth", "parameterization", "batch_size", "seq_len", "tokens",
             "weight_decay", "schedule", "optimizer", "beta1", "beta2", "eps", "grad_clip",
             "data", "model")


def cell_of(settings: dict) -> tuple:
    return tuple(json.dumps(settings.get(k), sort_keys=True) for k in CELL_KEYS)


def best_lr(points: dict[float, float]) -> tuple[float, float]:
    """(LR, loss) of the lowest finite loss in {lr: loss}; AdvisorError when none is finite."""
    finite = {lr: v for lr, v in points.items() if math.isfinite(v)}
    if not finite:
        raise AdvisorError("no finished run in this LR grid")
    lr = min(finite, key=finite.get)
    return lr, finite[lr]


def transfer_table(grid: dict[float, float], choices: dict[str, float],
                   chosen_losses: dict[str, float]) -> list[dict]:
    """One row per way of choosing the LR: its LR, its measured loss, and the gap to the
    best loss of the grid (``grid``: {lr: final held-out loss}, inf/NaN = diverged).
    The grid's best is the first row (gap 0 by definition)."""
    g_lr, g_loss = best_lr(grid)
    rows = [{"choice": "grid best", "lr": g_lr, "loss": g_loss, "gap": 0.0,
             "log2_lr_vs_best": 0.0}]
    for name, lr in choices.items():
        loss = chosen_losses.get(name, math.nan)
        loss = loss if math.isfinite(loss) else math.inf
        rows.append({"choice": name, "lr": lr, "loss": loss, "gap": loss - g_loss,
                     "log2_lr_vs_best": math.log2(lr / g_lr)})
    return rows


def markdown(rows: list[dict], header: str) -> str:
    out = [header, "", "| LR choice | LR | held-out loss | gap to grid best | LR / best (log2) |",
           "|---|---|---|---|---|"]
    for r in rows:
        loss = "diverged" if math.isinf(r["loss"]) else f"{r['loss']:.4f}"
        gap = "inf" if math.isinf(r["gap"]) else f"{r['gap']:+.4f}"
        out.append(f"| {r['choice']} | {r['lr']:.3g} | {loss} | {gap} | "
                   f"{r['log2_lr_vs_best']:+.2f} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calibration", type=Path, required=True,
                    help="results store of the calibration sweep (advisor calibrate --out)")
    ap.add_argument("--laws", help="the fitted law set (name or YAML path); omit to report "
                                   "only Step Law and muP transfer")
    ap.add_argument("--out", type=Path, required=True, help="results store for the held-out runs")
    ap.add_argument("--width", type=int, help="held-out width (default: 4 x the largest "
                                              "calibrated width)")
    ap.add_argument("--lr-pow2", type=int, nargs=2, default=[-12, -5], metavar=("LO", "HI"),
                    help="LR grid 2^LO .. 2^HI")
    ap.add_argument("--tokens", type=int, help="cell: training tokens (default: the "
                                               "calibration's most common budget)")
    ap.add_argument("--batch-size", type=int, help="cell: sequences per step (default: the "
                                                   "calibration's most common)")
    ap.add_argument("--weight-decay", type=float, default=None, help="cell: weight decay "
                                                                       "(default: 0 if present)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-train", action="store_true", help="only analyse what --out holds")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar while training")
    ap.add_argument("--table", type=Path, help="write the Markdown table here")
    ap.add_argument("--json", type=Path, help="write the rows and provenance here")
    ap.add_argument("--plot", type=Path, help="write a PNG of loss against LR here")
    args = ap.parse_args(argv)
    try:
        return run(args)
    except AdvisorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _most_common(values):
    from collections import Counter
    return Counter(values).most_common(1)[0][0]


def run(args) -> int:
    from advisor.laws.lawset import load_lawset
    from advisor.specs.plan import Plan
    from advisor.runs.store import ResultsStore
    from advisor.specs.runspec import RunSpec

    cal = ResultsStore.open(args.calibration)
    try:
        runs = [r for r in cal.runs() if r.status in ("finished", "diverged")]
    finally:
        cal.close()
    if not runs:
        raise AdvisorError(f"{args.calibration}: no finished runs")
    mup = [r for r in runs if r.settings.get("parameterization") == "mup"]
    if not mup:
        raise AdvisorError(f"{args.calibration}: no muP runs to transfer from")
    tokens = args.tokens or _most_common(r.settings["tokens"] for r in mup)
    bs = args.batch_size or _most_common(r.settings["batch_size"] for r in mup)
    wds = sorted({r.settings.get("weight_decay", 0.0) for r in mup})
    wd = args.weight_decay if args.weight_decay is not None else (0.0 if 0.0 in wds else wds[0])
    cell_runs = [r for r in mup if r.settings["tokens"] == tokens
                 and r.settings["batch_size"] == bs and r.settings.get("weight_decay") == wd]
    if not cell_runs:
        raise AdvisorError(f"no muP calibration runs with tokens={tokens}, batch={bs}, wd={wd}")
    # the cell's other settings: those of its largest-width runs
    w_max = max(r.settings["width"] for r in mup)
    top = [r for r in cell_runs if r.settings["width"] == max(x.settings["width"]
                                                              for x in cell_runs)]
    cells = {cell_of(r.settings) for r in top}
    if len(cells) > 1:
        raise AdvisorError("the reference cell is ambiguous (runs differ in more than width "
                           "and LR); pick it with --tokens/--batch-size/--weight-decay")
    ref = RunSpec.from_settings(top[0].settings)
    width = args.width or 4 * w_max
    if width < 4 * w_max:
        print(f"note: width {width} is less than 4x the largest calibrated width {w_max}")
    # muP transfer: the best LR of this cell at the largest calibrated width
    top_width = ref.width
    mup_lr, mup_loss = best_lr({r.settings["lr"]: (r.final_val_loss if r.status == "finished"
                                                    else math.inf) for r in top})
    held = dataclasses.replace(ref, width=width, stack=True, lr=1.0)
    from calibration.train.data import load_data
    cfg = held.model_config(vocab_size=load_data(held.data).vocab_size)
    n_total, n_nonemb = _param_counts(cfg)
    D = held.tokens_per_step * held.steps
    choices = {}
    notes = {}
    if args.laws:
        law = load_lawset(args.laws)
        N = n_total if law.conventions.get("params") == "total" else n_nonemb
        choices[f"law ({law.name})"] = law.predict("learning_rate", N=N, D=D)
        notes[f"law ({law.name})"] = law.out_of_range("learning_rate", N=N, D=D)
    step = load_lawset("step-law")
    choices["Step Law"] = step.predict("learning_rate", N=n_nonemb, D=D)
    notes["Step Law"] = step.out_of_range("learning_rate", N=n_nonemb, D=D)
    choices[f"muP transfer (best at width {top_width})"] = mup_lr

    lo, hi = args.lr_pow2
    grid_lrs = [2.0 ** k for k in range(lo, hi + 1)]
    specs, seen = [], set()
    for lr in grid_lrs + list(choices.values()):
        s = dataclasses.replace(held, lr=float(lr))
        if s.run_id not in seen:
            seen.add(s.run_id)
            specs.append(s)
    print(f"held-out width {width} (calibration up to {w_max}); N = {n_nonemb:,} non-embedding "
          f"({n_total:,} total), D = {D:,} tokens, batch {held.batch_size} x {held.seq_len}, "
          f"wd {held.weight_decay}; {len(specs)} runs ({len(grid_lrs)} grid LRs + choices)")
    for name, lr in choices.items():
        print(f"  {name}: lr {lr:.4g}" + (f"  [{'; '.join(notes[name])}]"
                                           if notes.get(name) else ""))
    if not args.no_train:
        from calibration.sweep.executors import run_sweep

        plan = Plan("transfer-check", f"held-out width {width}", "bench/transfer_check.py",
                    tuple(specs))
        run_sweep(plan, args.out, device=args.device,
                  show_progress=not getattr(args, "no_progress", False))
    out = ResultsStore.open(args.out)
    try:
        held_runs = {r.run_id: r for r in out.runs()}
    finally:
        out.close()

    def loss_of(spec):
        r = held_runs.get(spec.run_id)
        if r is None:
            return math.nan
        return r.final_val_loss if r.status == "finished" else math.inf

    grid = {lr: loss_of(dataclasses.replace(held, lr=lr)) for lr in grid_lrs}
    missing = [lr for lr, v in grid.items() if math.isnan(v)]
    if missing:
        raise AdvisorError(f"{args.out}: {len(missing)} grid runs missing; run without --no-train")
    chosen = {name: loss_of(dataclasses.replace(held, lr=float(lr))) for name, lr in choices.items()}
    missing = [name for name, v in chosen.items() if math.isnan(v)]
    if missing:
        raise AdvisorError(f"{args.out}: no run at the LR of {', '.join(missing)}; "
                           f"run without --no-train")
    rows = transfer_table(grid, choices, chosen)
    device = next((r.device for r in held_runs.values() if r.device), "?")
    header = (f"Held-out transfer at width {width} (law fitted on widths up to {w_max}): "
              f"N = {n_nonemb / 1e6:.1f}M non-embedding, D = {D / 1e6:.2f}M tokens, "
              f"{held.steps} steps of {held.batch_size} x {held.seq_len}, device {device}.")
    table = markdown(rows, header)
    print()
    print(table)
    if args.table:
        args.table.write_text(table)
    if args.json:
        args.json.write_text(json.dumps({
            "rows": rows, "grid": {str(k): v for k, v in grid.items()},
            "width": width, "calibrated_max_width": w_max, "N_non_embedding": n_nonemb,
            "N_total": n_total, "D": D, "notes": notes, "device": device,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": "python -m bench.transfer_check " + " ".join(sys.argv[1:]),
        }, indent=2, default=str))
    if args.plot:
        plot(grid, rows, width, args.plot)
    return 0


def _param_counts(cfg) -> tuple[int, int]:
    """(total, non-embedding) parameters of the proxy, counted on the meta device."""
    from calibration.model.proxy import build_model, count_params

    return count_params(build_model(cfg, device="meta"))


def plot(grid: dict[float, float], rows: list[dict], width: int, path: Path) -> None:
    from advisor.cli.plots import transfer_gaps
    transfer_gaps(grid, rows[1:], path, series_label=f"LR grid, width {width}", legend_size=8,
                  xlabel="peak LR (base-width units)", ylabel="final held-out loss",
                  gap_label=lambda r: f"{r['gap']:+.3f}", span=1.0, pad=0.05)


if __name__ == "__main__":
    sys.exit(main())
