"""Stacked versus one-at-a-time training of a full LR sweep, measured side by side in one run.

    python -m bench.bench_stacked                        # GPU if present, else CPU (small)
    python -m bench.bench_stacked --device cuda --widths 128 256 512 1024 --json out.json
    python -m bench.bench_stacked --device cpu --threads 1              # the CPU figures in README

For every width, the same sweep (``--lrs`` learning rates a factor of 2 apart, times
``--seeds`` seeds) of the muP proxy (recipes/families/proxy-llama.yaml) on the embedded stdlib
corpus is trained twice: one run at a time through ``calibration.train.single.train_run`` (what a
sweep does without stacking) and as stacks through ``calibration.train.group.train_stack``
(members per stack chosen from free GPU memory, or ``--stack-max``). Both paths use what
``advisor calibrate`` uses on that device (bf16 autocast and torch.compile on CUDA, fp32
eager on the CPU).

Reported per width and path: model-tokens/s (tokens trained per second summed over all
members) in steady state, i.e. between the end of step ``--warmup`` and the last timed step,
which leaves out model building, torch.compile and the final evaluation; the end-to-end
wall time of the whole sweep as well; the stacked/one-at-a-time ratio; and model FLOP
utilisation (FLOPs per token from ``calibration.model.proxy.flops_per_token``: 6 x matmul
parameters + attention, PaLM appendix B) against the device's peak (datasheet dense bf16 on a
known GPU; on the CPU a measured fp32 GEMM rate, see bench/bench_throughput.py).

Writes a JSON file and a PNG bar chart (``--json``, ``--plot``) and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GPU_DEFAULTS = dict(widths=[128, 256, 512, 1024], depth=4, batch=64, seq_len=256, steps=60,
                    warmup=20)
CPU_DEFAULTS = dict(widths=[32, 64, 128], depth=2, batch=8, seq_len=64, steps=24, warmup=4)


def sweep_specs(width: int, args) -> list:
    """The sweep at one width: LRs 2^lo .. 2^(lo+lrs-1) x seeds, one evaluation at the end."""
    from advisor.specs.runspec import RunSpec

    model = {"head_dim": args.head_dim} if args.head_dim else {}
    base = RunSpec(width=width, depth=args.depth, batch_size=args.batch, seq_len=args.seq_len,
                   tokens=args.steps * args.batch * args.seq_len, schedule="constant",
                   eval_interval=args.steps, eval_sequences=args.eval_sequences,
                   compile=args.compile, stack=True, model=model)
    return [dataclasses.replace(base, lr=2.0 ** (args.lr_lo + i), seed=s)
            for s in range(args.seeds) for i in range(args.lrs)]


class StepClock:
    """Records (step, time) after synchronised steps; steady-state rate between two steps."""

    def __init__(self, device: str):
        self.device = device
        self.marks: list[tuple[int, float]] = []

    def mark(self, step: int) -> None:
        if self.device.startswith("cuda"):
            import torch
            torch.cuda.synchronize()
        self.marks.append((step, time.perf_counter()))

    def steady(self, warmup: int, last: int) -> tuple[int, float]:
        """(steps, seconds) from the first mark at or after ``warmup`` to the last mark at or
        before ``last``."""
        inside = [(s, t) for s, t in self.marks if warmup <= s <= last]
        if len(inside) < 2:
            return 0, 0.0
        return inside[-1][0] - inside[0][0], inside[-1][1] - inside[0][1]


def one_at_a_time(specs, data, device, args) -> dict:
    from calibration.train.single import train_run

    class Clock:
        def __init__(self):
            self.clock = StepClock(device)

        def on_step(self, step, model, optimizer, batch):
            self.clock.mark(step)

    steps = seconds = 0.0
    t0 = time.perf_counter()
    statuses = []
    for spec in specs:
        cb = Clock()
        r = train_run(spec, data, device, callbacks=(cb,))
        statuses.append(r.status)
        if r.status != "finished":
            print(f"  warning: one-at-a-time run lr={spec.lr:g} ended {r.status} {r.error[:200]}")
        # a diverged run stops early; time what it trained
        n, s = cb.clock.steady(args.warmup, spec.steps - 1)
        steps += n
        seconds += s
    wall = time.perf_counter() - t0
    tps = specs[0].tokens_per_step
    return {"model_tokens_per_s": steps * tps / seconds if seconds else float("nan"),
            "steady_steps": steps, "steady_seconds": seconds, "wall_s": wall,
            "statuses": statuses}


def stacked(specs, data, device, args) -> dict:
    from calibration.train.group import train_stack
    from calibration.train.stacked import split_evenly

    clock = StepClock(device)
    t0 = time.perf_counter()
    results = train_stack(specs, data, device, max_members=args.stack_max,
                          progress=lambda step, total, loss: clock.mark(step))
    wall = time.perf_counter() - t0
    for r in results:
        if r.status != "finished":
            print(f"  warning: stacked member lr={r.spec.lr:g} ended {r.status} {r.error[:200]}")
    k = max(int(d[2]) for r in results for d in r.diagnostics if d[1] == "stack_size")
    sizes = [len(c) for c in split_evenly(specs, k)]   # the stacks train_stack made, in order
    # the marks come from each stack in turn, and a stack's steps restart at 1
    segments, cur = [], []
    for s, t in clock.marks:
        if cur and s <= cur[-1][0]:
            segments.append(cur)
            cur = []
        cur.append((s, t))
    segments.append(cur)
    if len(segments) != len(sizes):
        raise RuntimeError(f"expected {len(sizes)} stacks, saw {len(segments)}")
    tokens = seconds = 0.0
    for marks, size in zip(segments, sizes):
        c = StepClock(device)
        c.marks = marks
        n, s = c.steady(args.warmup, specs[0].steps - 1)
        tokens += n * size * specs[0].tokens_per_step
        seconds += s
    return {"model_tokens_per_s": tokens / seconds if seconds else float("nan"),
            "steady_seconds": seconds, "wall_s": wall, "stack_sizes": sizes,
            "statuses": [r.status for r in results]}


def parser() -> argparse.ArgumentParser:
    """The command line (also how bench.gpu_suite builds this benchmark's settings)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    ap.add_argument("--widths", type=int, nargs="+")
    ap.add_argument("--depth", type=int)
    ap.add_argument("--batch", type=int, help="sequences per step")
    ap.add_argument("--seq-len", type=int, help="tokens per sequence")
    ap.add_argument("--steps", type=int, help="training steps per run (incl. warmup)")
    ap.add_argument("--warmup", type=int, help="untimed steps at the start (compile, caches)")
    ap.add_argument("--head-dim", type=int, default=None,
                    help="channels per head (default: the family's, 64; CPU preset 16)")
    ap.add_argument("--lrs", type=int, default=8, help="LRs in the sweep (factors of 2)")
    ap.add_argument("--lr-lo", type=int, default=-12, help="smallest LR is 2^LR_LO")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per LR (members = lrs x seeds)")
    ap.add_argument("--eval-sequences", type=int, default=16)
    ap.add_argument("--stack-max", type=int, default=None,
                    help="members per stack (default: from free GPU memory; 8 on the CPU)")
    ap.add_argument("--compile", default="auto", choices=("auto", "always", "never"))
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (torch)")
    ap.add_argument("--measured-peak", action="store_true",
                    help="MFU against the bf16 matmul rate measured now (GPU), not the datasheet")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--plot", type=Path, help="write a PNG bar chart here")
    return ap


def apply_presets(args, device: str) -> None:
    """Fill the settings left unset from the GPU or CPU preset (in place)."""
    preset = GPU_DEFAULTS if device.startswith("cuda") else CPU_DEFAULTS
    for k, v in preset.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.head_dim is None and not device.startswith("cuda"):
        args.head_dim = 16


def bench_width(width: int, args, data, device: str, peak: float) -> dict:
    """One width: the sweep one run at a time, then stacked; model-tokens/s, speedups and
    MFU against ``peak`` (FLOP/s)."""
    from calibration.model.proxy import flops_per_token

    specs = sweep_specs(width, args)
    cfg = specs[0].model_config(vocab_size=data.vocab_size)
    fpt = flops_per_token(cfg)
    print(f"width {width}: one at a time ...", flush=True)
    single = one_at_a_time(specs, data, device, args)
    print(f"width {width}: stacked ...", flush=True)
    stack = stacked(specs, data, device, args)
    row = {"width": width, "members": len(specs), "flops_per_token": fpt,
           "single": single, "stacked": stack,
           "speedup": stack["model_tokens_per_s"] / single["model_tokens_per_s"],
           "speedup_wall": single["wall_s"] / stack["wall_s"],
           "mfu_single": single["model_tokens_per_s"] * fpt / peak,
           "mfu_stacked": stack["model_tokens_per_s"] * fpt / peak}
    print(f"  single {single['model_tokens_per_s']:,.0f} tok/s, stacked "
          f"{stack['model_tokens_per_s']:,.0f} tok/s (stacks of {stack['stack_sizes']}): "
          f"x{row['speedup']:.2f} steady, x{row['speedup_wall']:.2f} end to end; MFU "
          f"{row['mfu_single']:.1%} -> {row['mfu_stacked']:.1%}", flush=True)
    return row


def warm_up(args, data, device: str) -> None:
    """One untimed short run, so that neither path pays the process's first-call costs."""
    from calibration.train.single import train_run

    warm = dataclasses.replace(sweep_specs(args.widths[0], args)[0],
                               tokens=2 * args.batch * args.seq_len, eval_interval=2)
    train_run(warm, data, device)


def markdown_table(rows) -> str:
    out = ["| width | members | one at a time (model-tokens/s) | stacked (model-tokens/s) | "
           "K | speedup (steady) | speedup (end to end) | MFU one / stacked |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['width']} | {r['members']} | {r['single']['model_tokens_per_s']:,.0f} | "
                   f"{r['stacked']['model_tokens_per_s']:,.0f} | "
                   f"{'+'.join(map(str, r['stacked']['stack_sizes']))} | x{r['speedup']:.2f} | "
                   f"x{r['speedup_wall']:.2f} | {r['mfu_single']:.1%} / {r['mfu_stacked']:.1%} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = parser()
    args = ap.parse_args(argv)

    import torch

    from bench.bench_throughput import device_peak
    from calibration.train.data import load_data
    from calibration.train.runtime import resolve_device

    device = resolve_device(args.device)
    apply_presets(args, device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.warmup >= args.steps - 2:
        ap.error("--warmup must leave at least two timed steps before the last")
    data = load_data("stdlib")
    name, peak, peak_src = device_peak(device, measured=args.measured_peak)
    print(f"device: {name}; peak {peak / 1e12:.3g} TFLOP/s ({peak_src}); torch "
          f"{torch.__version__}; {args.lrs} LRs x {args.seeds} seeds; {args.steps} steps of "
          f"{args.batch} x {args.seq_len} tokens, depth {args.depth}, timed after step "
          f"{args.warmup}")
    warm_up(args, data, device)
    rows = [bench_width(width, args, data, device, peak) for width in args.widths]
    print()
    print(markdown_table(rows), end="")
    out = {"device": name, "peak_flops": peak, "peak_source": peak_src,
           "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "command": "python -m bench.bench_stacked " + " ".join(sys.argv[1:] if argv is None
                                                                  else argv),
           "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
           "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")
    if args.plot:
        from advisor.cli.plots import stacked_throughput
        stacked_throughput(rows, name, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
