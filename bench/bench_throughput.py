"""Training throughput of the proxy family per width: tokens/s and model FLOP utilisation.

    python -m bench.bench_throughput                       # GPU if present, else CPU
    python -m bench.bench_throughput --device cpu --widths 64 128 256 --steps 10
    python -m bench.bench_throughput --json bench_throughput.json

Each width trains ``--steps`` timed steps (after ``--warmup`` untimed ones, which also absorb
torch.compile) of the muP proxy from recipes/families/proxy-llama.yaml on the stdlib corpus,
exactly as ``advisor calibrate`` trains (bf16 autocast and torch.compile on CUDA, fp32 on
the CPU). Model FLOPs per token are 6 x (matmul parameters incl. the readout) + 12 x depth x
width x seq_len (PaLM, Chowdhery et al. 2022, appendix B); MFU = FLOPs/s over the device's
peak. The GPU peak is the datasheet dense bf16 figure for the recognised model; the CPU has
no datasheet figure here, so its "peak" is the fp32 matmul rate measured on the spot
(a 2048^3 GEMM), and is labelled as such.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

# Dense bf16 tensor-core peaks, FLOP/s, from NVIDIA datasheets (without sparsity).
GPU_PEAKS = {
    "H200": 989e12, "H100 SXM": 989e12, "H100 80GB HBM3": 989e12, "H100 NVL": 835e12,
    "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12,
    "A10G": 70e12, "RTX 4090": 165e12,
}


def measure_matmul_peak(device: str, n: int | None = None, reps: int = 10) -> tuple[float, str]:
    """Measured matrix-product rate in FLOP/s, and what was measured: an n^3 product of
    random (never zero: zeros run faster, METHOD.md) bf16 matrices on CUDA (n = 8192), fp32
    on the CPU (n = 2048), timed over ``reps`` products after 3 untimed ones."""
    import torch

    cuda = device.startswith("cuda")
    n = n or (8192 if cuda else 2048)
    dtype = torch.bfloat16 if cuda else torch.float32
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    for _ in range(3):
        c = a @ b
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        c = a @ b
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    if not torch.isfinite(c).all():
        raise RuntimeError("matmul peak: the product is not finite")
    what = f"measured {'bf16' if cuda else 'fp32'} {n}^3 matmul rate, random data"
    return reps * 2 * n ** 3 / dt, what


def device_peak(device: str, measured: bool = False) -> tuple[str, float, str]:
    """(device name, peak FLOP/s, where the peak comes from). ``measured``: on a GPU, the
    bf16 matmul rate measured now instead of the datasheet figure."""
    import torch

    if device.startswith("cuda") and measured:
        rate, what = measure_matmul_peak(device)
        return torch.cuda.get_device_name(torch.device(device)), rate, what
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device))
        for key, peak in GPU_PEAKS.items():
            if key in name:
                return name, peak, f"datasheet dense bf16 ({key})"
        return name, float("nan"), "unknown GPU: no datasheet peak in the table"
    rate, what = measure_matmul_peak(device, reps=5)
    name = f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"
    return name, rate, what


def bench_width(width: int, args, data) -> dict:
    import torch

    from advisor.specs.runspec import RunSpec
    from calibration.train.data import BatchSampler
    from calibration.model.proxy import build_model, build_optimizer, compute_loss, flops_per_token

    spec = RunSpec(width=width, depth=args.depth, batch_size=args.batch_size,
                   seq_len=args.seq_len, tokens=args.batch_size * args.seq_len,
                   model=dict(args.model))
    cfg = spec.model_config(vocab_size=data.vocab_size)
    dev = args.device
    model = build_model(cfg, device=dev, seed=0)
    opt = build_optimizer(model, cfg, 2 ** -8, 0.0)
    cuda = dev.startswith("cuda")
    want = (cuda and not args.no_compile) or getattr(args, "force_compile", False)
    fwd = torch.compile(model) if want else model
    sampler = BatchSampler(data, args.batch_size, args.seq_len, seed=0)

    def step():
        x, y = sampler.next(dev)
        if cuda:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = fwd(x)
        else:
            logits = fwd(x)
        loss, _ = compute_loss(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    tw = time.perf_counter()
    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
    warmup_s = time.perf_counter() - tw
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    loss.item()
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    tps = args.steps * args.batch_size * args.seq_len / dt
    fpt = flops_per_token(cfg)
    return {"width": width, "depth": args.depth, "params": sum(p.numel() for p in model.parameters()),
            "tokens_per_s": tps, "flops_per_token": fpt, "model_flops_per_s": tps * fpt,
            "step_ms": 1000 * dt / args.steps, "warmup_s": warmup_s,
            "compiled": bool(want)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--widths", type=int, nargs="+", default=None,
                    help="default: 128 256 512 1024 2048 on GPU, 64 128 256 on CPU")
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=None, help="sequences (default 32 GPU, 8 CPU)")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 50 GPU, 5 CPU)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps (default 10 GPU, 2 CPU)")
    ap.add_argument("--head-dim", type=int, default=None, help="default: the family's (64); 16 on CPU")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--measured-peak", action="store_true",
                    help="MFU against the bf16 matmul rate measured now (GPU), not the datasheet")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)

    import torch

    from calibration.train.data import load_data
    from calibration.train.runtime import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    args.device = resolve_device(args.device)
    cuda = args.device.startswith("cuda")
    args.widths = args.widths or ([128, 256, 512, 1024, 2048] if cuda else [64, 128, 256])
    args.batch_size = args.batch_size or (32 if cuda else 8)
    args.steps = args.steps or (50 if cuda else 5)
    args.warmup = args.warmup if args.warmup is not None else (10 if cuda else 2)
    args.model = {}
    head_dim = args.head_dim or (None if cuda else 16)
    if head_dim:
        args.model["head_dim"] = head_dim
    name, peak, peak_src = device_peak(args.device, measured=args.measured_peak)
    print(f"device: {name}; torch {torch.__version__}")
    print(f"peak: {peak / 1e12:.3g} TFLOP/s ({peak_src})")
    print(f"depth {args.depth}, batch {args.batch_size} x {args.seq_len} tokens, "
          f"{args.steps} timed steps after {args.warmup} warm-up, "
          f"{'bf16 autocast' + ('' if args.no_compile else ' + torch.compile') if cuda else 'fp32'}")
    data = load_data("stdlib")
    rows = []
    print(f"{'width':>6} {'params':>12} {'step ms':>9} {'tokens/s':>12} {'TFLOP/s':>9} {'MFU':>7}")
    for w in args.widths:
        r = bench_width(w, args, data)
        r["mfu"] = r["model_flops_per_s"] / peak
        rows.append(r)
        print(f"{w:>6} {r['params']:>12,} {r['step_ms']:>9.1f} {r['tokens_per_s']:>12,.0f} "
              f"{r['model_flops_per_s'] / 1e12:>9.3g} {100 * r['mfu']:>6.1f}%")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "peak_flops": peak,
                                               "peak_source": peak_src, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
