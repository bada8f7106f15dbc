"""Benchmark of the spectral diagnostics (calibration/spectral): top singular values of a
Llama-7B-shaped layer stack, and the cost of a Hessian-vector product.

    python -m bench.bench_spectral --device cuda                 # H100: 3 layers of 7B shapes
    python -m bench.bench_spectral --device cpu --hidden 512 --ffn 1376 --layers 2

SVD part: every matrix of ``--layers`` blocks (q, k, v, o: hidden x hidden; gate, up:
ffn x hidden; down: hidden x ffn), random Gaussian (the hard case for power iteration: tiny
gap at the top), float32. Methods, each timed end to end (stacking copies included):
- ``lanczos``: calibration.spectral.svd.top_singular_values, tol 1e-3 (CuPy on CUDA through
  DLPack, NumPy on CPU);
- ``svdvals``: torch.linalg.svdvals per matrix (the reference values);
- ``power-N``: batched torch power iteration on same-shape stacks, N iterations;
- ``bound``: the memory-bandwidth bound of the iterations Lanczos used,
  2 x bytes x iterations / bandwidth (``--bandwidth`` GB/s; 3350 is an H100 SXM's HBM3).
HVP part: seconds per forward-backward and per HVP (three methods) on the example GPT at
``--hvp-width`` on real text, and the top Hessian eigenvalue from each.
Writes JSON to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import time



def _sync(device):
    import torch
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def stack(hidden, ffn, layers, device, seed=0):
    import torch
    g = torch.Generator(device="cpu").manual_seed(seed)
    mats = {}
    for l in range(layers):
        for n in ("q", "k", "v", "o"):
            mats[f"{l}.{n}"] = torch.randn(hidden, hidden, generator=g)
        for n in ("gate", "up"):
            mats[f"{l}.{n}"] = torch.randn(ffn, hidden, generator=g)
        mats[f"{l}.down"] = torch.randn(hidden, ffn, generator=g)
    return {k: v.to(device) for k, v in mats.items()}


def power_iteration(mats, iters, device):
    """Batched power iteration on A^T A per same-shape group (torch)."""
    import torch
    out, groups = {}, {}
    for name, a in mats.items():
        groups.setdefault(tuple(a.shape), []).append(name)
    for shape, names in groups.items():
        A = torch.stack([mats[n] for n in names])
        v = torch.randn(A.shape[0], A.shape[2], 1, device=device)
        for _ in range(iters):
            v = A.transpose(1, 2) @ (A @ v)
            v = v / v.norm(dim=1, keepdim=True)
        s = (A @ v).norm(dim=1).squeeze(-1)
        out.update(zip(names, s.tolist()))
    return out


def bench_svd(args):
    import torch
    from calibration.spectral.svd import top_singular_values

    mats = stack(args.hidden, args.ffn, args.layers, args.device)
    nbytes = sum(a.numel() * 4 for a in mats.values())
    res = {"matrices": len(mats), "parameters": sum(a.numel() for a in mats.values()),
           "bytes": nbytes}
    _sync(args.device)
    t = time.perf_counter()
    ref = {n: torch.linalg.svdvals(a)[0].item() for n, a in mats.items()}
    _sync(args.device)
    res["svdvals_s"] = time.perf_counter() - t

    def worst(vals):
        return max(abs(vals[n] - ref[n]) / ref[n] for n in ref)

    top_singular_values(dict(list(mats.items())[:2]), tol=1e-3)   # warm-up (CuPy kernels)
    _sync(args.device)
    t = time.perf_counter()
    ours = top_singular_values(mats, tol=1e-3)
    _sync(args.device)
    res["lanczos_s"] = time.perf_counter() - t
    res["lanczos_worst_rel_err"] = worst({n: r.top for n, r in ours.items()})
    res["lanczos_max_iterations"] = max(r.iterations for r in ours.values())
    iters = max(r.iterations for r in ours.values())
    res["bound_s_for_lanczos_iterations"] = 2 * nbytes * iters / (args.bandwidth * 1e9)
    res["bound_s_50_power_iterations"] = 2 * nbytes * 50 / (args.bandwidth * 1e9)
    for n_it in (20, 50, 100):
        _sync(args.device)
        t = time.perf_counter()
        pw = power_iteration(mats, n_it, args.device)
        _sync(args.device)
        res[f"power{n_it}_s"] = time.perf_counter() - t
        res[f"power{n_it}_worst_rel_err"] = worst(pw)
    return res


def bench_hvp(args):
    import torch
    from calibration.spectral import example_factory as ef
    from calibration.spectral.invariance import text_batches
    from calibration.spectral.sharpness import METHODS, lm_loss, model_hvp, top_eigenvalue

    model, opt = ef.build(args.hvp_width, seq_len=128)
    model = model.to(args.device)
    x, y = (t.to(args.device) for t in text_batches(1, 16, 128)[0])
    for _ in range(10):
        opt.zero_grad()
        lm_loss(model(x), y).backward()
        opt.step()

    def timed(fn, reps=5):
        fn()
        _sync(args.device)
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        _sync(args.device)
        return (time.perf_counter() - t) / reps

    def fb():
        opt.zero_grad()
        lm_loss(model(x), y).backward()

    res = {"width": args.hvp_width, "parameters": sum(p.numel() for p in model.parameters()),
           "forward_backward_s": timed(fb)}
    v = torch.randn(sum(p.numel() for p in model.parameters()), device=args.device)
    for m in METHODS:
        h = model_hvp(model, lm_loss, (x, y), method=m)
        res[f"hvp_{m}_s"] = timed(lambda: h(v))
        res[f"hvp_{m}_per_fb"] = res[f"hvp_{m}_s"] / res["forward_backward_s"]
        e = top_eigenvalue(model_hvp(model, lm_loss, (x, y), method=m), tol=1e-4)
        res[f"sharpness_{m}"] = e.value
    ref = res["sharpness_double_backward"]
    res["sharpness_max_rel_diff"] = max(abs(res[f"sharpness_{m}"] - ref) / ref for m in METHODS)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--ffn", type=int, default=11008)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--bandwidth", type=float, default=3350.0, help="GB/s")
    ap.add_argument("--hvp-width", type=int, default=128)
    ap.add_argument("--skip-svd", action="store_true")
    ap.add_argument("--out", default="bench_spectral.json")
    args = ap.parse_args()
    import torch
    out = {"device": args.device, "torch": torch.__version__}
    if args.device.startswith("cuda"):
        out["gpu"] = torch.cuda.get_device_name()
    if not args.skip_svd:
        out["svd"] = bench_svd(args)
        print(json.dumps(out["svd"], indent=1), flush=True)
    out["hvp"] = bench_hvp(args)
    print(json.dumps(out["hvp"], indent=1), flush=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
