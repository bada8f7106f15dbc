"""What the machine is and how fast it is, measured at the start of every call (the device
machine is a different one each time): software versions, the bf16 matrix-product peak, the
copy bandwidth, and a short training warm-up that gives every stage its step-time model
(bench.gpu_suite.budget.StepModel) and the measured torch.compile time.

Units: FLOP/s, bytes/s, seconds.
"""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from types import SimpleNamespace

from bench.gpu_suite.budget import fit_step_model

# torch.compile's caches: under the suite directory, so every stage (and the gpu-marked
# tests, which inherit the environment) reuses what an earlier stage compiled in this call.
CACHE_ENV = {"TORCHINDUCTOR_CACHE_DIR": "inductor", "TRITON_CACHE_DIR": "triton"}


def set_compile_caches(out_dir: Path) -> dict:
    """Point torch.compile's caches under ``out_dir/cache`` unless already set; call before
    torch is imported. Returns the variables set."""
    from bench.gpu_suite.report import CACHE_DIR

    env = {}
    for var, sub in CACHE_ENV.items():
        if not os.environ.get(var):
            path = Path(out_dir).resolve() / CACHE_DIR / sub
            path.mkdir(parents=True, exist_ok=True)
            os.environ[var] = str(path)
            env[var] = str(path)
    return env


def software() -> dict:
    """Versions of what the suite runs on; CuPy is imported as ``cupy`` whatever its wheel."""
    import numpy
    import torch

    info = {"python": platform.python_version(), "torch": str(torch.__version__),
            "torch_cuda": torch.version.cuda, "numpy": numpy.__version__,
            "cuda_available": torch.cuda.is_available(), "platform": platform.platform()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        free, total = torch.cuda.mem_get_info()
        info["gpu_memory_bytes"] = total
    try:
        import cupy
        info["cupy"] = cupy.__version__
        info["cupy_devices"] = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:   # absent, or present without a usable device
        info["cupy"] = None
        info["cupy_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    try:
        import mup
        info["mup"] = getattr(mup, "__version__", "installed")
    except ImportError:
        info["mup"] = None
    return info


def copy_bandwidth(device: str, nbytes: int, reps: int = 5) -> float:
    """Device-to-device copy rate in bytes/s, counting bytes read plus bytes written."""
    import torch

    n = nbytes // 4
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    cuda = device.startswith("cuda")
    dst.copy_(src)
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        dst.copy_(src)
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    if not bool((dst == src).all()):
        raise RuntimeError("copy bandwidth: the copy is wrong")
    return 2 * n * 4 * reps / dt


def _throughput_args(device: str, sizes: dict, compile_: bool) -> SimpleNamespace:
    model = {"head_dim": sizes["head_dim"]} if sizes.get("head_dim") else {}
    if sizes.get("base_width"):
        model["base_width"] = sizes["base_width"]
    return SimpleNamespace(device=device, depth=sizes["depth"], batch_size=sizes["batch"],
                           seq_len=sizes["seq_len"], steps=sizes["steps"],
                           warmup=sizes["warmup"], model=model, no_compile=not compile_,
                           force_compile=compile_)


def measure(device: str, sizes: dict, measure_compile: bool) -> dict:
    """The probe: peak, bandwidth, eager step model from two widths, and (when asked) the
    compile time and compiled step time at the small width. Returns a JSON-able dict."""
    from bench.bench_throughput import bench_width, measure_matmul_peak
    from calibration.train.data import load_data

    t0 = time.perf_counter()
    out = {"device": device, "software": software()}
    out["peak_flops"], out["peak_source"] = measure_matmul_peak(device, n=sizes["matmul_n"])
    out["copy_bytes_per_s"] = copy_bandwidth(device, sizes["copy_bytes"])
    data = load_data("stdlib")
    small = bench_width(sizes["widths"][0], _throughput_args(device, sizes, False), data)
    large = bench_width(sizes["widths"][1], _throughput_args(device, sizes, False), data)
    tokens = sizes["batch"] * sizes["seq_len"]
    f_small, f_large = small["flops_per_token"] * tokens, large["flops_per_token"] * tokens
    model = fit_step_model(f_small, small["step_ms"] / 1e3, f_large, large["step_ms"] / 1e3)
    out["eager"] = {"floor_s": model.floor_s, "rate_flops": model.rate_flops,
                    "points": [{"width": r["width"], "flops_per_step": f, "step_s": r["step_ms"] / 1e3}
                               for r, f in ((small, f_small), (large, f_large))]}
    if measure_compile:
        # twice: a fresh model of the same shape the second time, which the compile caches
        # under DIR/cache serve (the cost of every further run of a shape already compiled)
        cold = bench_width(sizes["widths"][0], _throughput_args(device, sizes, True), data)
        warm = bench_width(sizes["widths"][0], _throughput_args(device, sizes, True), data)
        step_s = cold["step_ms"] / 1e3

        def compile_s(r):
            return max(0.0, r["warmup_s"] - sizes["warmup"] * r["step_ms"] / 1e3)

        out["compile"] = {"width": cold["width"], "compile_s": compile_s(cold),
                          "warm_compile_s": compile_s(warm), "compiled_step_s": step_s,
                          "eager_step_s": small["step_ms"] / 1e3}
    out["probe_s"] = time.perf_counter() - t0
    return out


def step_model(probe: dict, compiled: bool = False):
    """The probe's step model; ``compiled``: with the per-step floor that compilation
    removed at the probe's small width (compile fuses kernels and cuts launches; it is taken
    not to change the arithmetic rate)."""
    from bench.gpu_suite.budget import StepModel

    floor, rate = probe["eager"]["floor_s"], probe["eager"]["rate_flops"]
    c = probe.get("compile")
    if compiled and c:
        floor = max(0.0, floor - max(0.0, c["eager_step_s"] - c["compiled_step_s"]))
    return StepModel(floor, rate)


def compile_seconds() -> float | None:
    """Seconds torch.compile has spent in this process so far (dynamo's own timer of its
    compile entry point, inductor included); None where this torch does not report it."""
    try:
        from torch._dynamo.utils import compile_times

        names, values = compile_times(repr="csv", aggregate=True)
        return float(dict(zip(names, values)).get("_compile.compile_inner", 0.0))
    except Exception:       # a private API: absent or changed in another torch version
        return None
