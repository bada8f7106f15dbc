"""The user-model loop end to end on the CPU: plan -> calibrate -> fit -> recommend -> validate.

    nice -n 10 python -m bench.bench_user_model --out runs/user-model [--budget-cpu-minutes 4.5]

A Qwen2-style GQA target from an HF config.json (written by this script to OUT/config.json:
hidden 256, 32 heads of 8 with 16 key/value heads, q/k/v biases, tied
embeddings, RoPE base 1e6, MLP 2.75x) with a small real vocabulary: a byte-level BPE of 512
tokens trained on the stdlib corpus's training files (`advisor prepare-data --train-bpe`),
the data as nanoGPT token files. `advisor plan` sizes the proxies (widths 16, 32, 64; base 16)
for the budget; `advisor calibrate` trains them; `advisor fit` fits the muP base-LR law in D
and reports the N exponent (the transfer check); `advisor recommend --hf-config` gives the
target's per-group LRs; `advisor validate` trains width 256 (4x the largest proxy) over the
recommended LR x 2^k (|k| <= 1, a 4x range: CPU time) and the LRs of muP transfer alone, SP-style transfer and Step
Law, at the calibration's first token budget, and writes a table, JSON and a plot.

Each step is the CLI a user runs, in a subprocess, with one torch thread. Every step resumes
(run it again after an interruption). Prints each step's wall time and the validation table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CONFIG = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 256,
          "num_hidden_layers": 8, "num_attention_heads": 32, "num_key_value_heads": 16,
          "head_dim": 8, "intermediate_size": 704, "vocab_size": 512,
          "tie_word_embeddings": True, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
          "hidden_act": "silu", "max_position_embeddings": 2048}
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")


def step(name, *args, timings):
    t = time.perf_counter()
    print(f"\n$ advisor {' '.join(map(str, args))}", flush=True)
    r = subprocess.run([sys.executable, "-m", "advisor.cli", *map(str, args)], env=ENV,
                       text=True, capture_output=True)
    print(r.stdout[-4000:], r.stderr[-2000:], sep="\n", flush=True)
    timings[name] = round(time.perf_counter() - t, 1)
    if r.returncode != 0:
        sys.exit(f"step {name} failed (exit {r.returncode})")
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget-cpu-minutes", default="4.5")
    ap.add_argument("--bpe-vocab", type=int, default=512)
    ap.add_argument("--data-mb", type=float, default=1.0)
    ap.add_argument("--grid-steps", type=int, default=1)
    args = ap.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    cfg = out / "config.json"
    cfg.write_text(json.dumps(dict(CONFIG, vocab_size=args.bpe_vocab), indent=1))
    t: dict = {}
    data = out / "data"
    if not (data / "train.bin").exists():
        step("prepare-data", "prepare-data", "stdlib", "--train-bpe", args.bpe_vocab,
             "--max-mb", args.data_mb, "--out", data, timings=t)
    plan = out / "plan.yaml"
    if not plan.exists():
        step("plan", "plan", "--hf-config", cfg, "--budget-cpu-minutes",
             args.budget_cpu_minutes, "--data", f"tokens:{data}", "--out", plan, timings=t)
    step("calibrate", "calibrate", plan, "--out", out / "calibration", "--device", "cpu",
         "--threads", "1", "--no-progress", timings=t)
    laws = out / "fitted.yaml"
    step("fit", "fit", out / "calibration", "--out", laws, timings=t)
    import yaml
    d1 = min(yaml.safe_load(plan.read_text())["grid"]["tokens"])
    step("recommend", "recommend", "--hf-config", cfg, "--laws", laws, "--tokens", d1,
         "--seq-len", 64, "--format", "json", "-o", out / "recommendation.json", timings=t)
    step("validate", "validate", out / "calibration", "--laws", laws, "--out",
         out / "validation", "--tokens", d1, "--grid-steps", args.grid_steps, "--device", "cpu",
         "--threads", "1", "--no-progress", "--table", out / "validation.md", "--json",
         out / "validation.json", "--plot", out / "validation.png", timings=t)
    (out / "timings.json").write_text(json.dumps(t, indent=1))
    print(f"\nwall time per step (s): {t}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
