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
recommended LR x 2^(k/2) (|k| <= 1) and the LRs of muP transfer alone, SP-style transfer and
Step Law, each with 2 seeds, at the calibration's first token budget, and writes a table,
JSON and a plot.

With ``--factory`` the model is instead the user's own module, ``bench/user_gpt.py`` (a
nanoGPT-style GPT made muP with the mup package, head size 8, 4x GELU MLP, untied readout):
``advisor plan --d-model 256 --n-layers 8 --n-heads 32 --vocab 512 --factory
bench.user_gpt:build`` gives the same widths, and recommend takes the same dimensions.

Validation defaults (from the noise and grid diagnosis in docs/calibration.md): every LR
with 2 seeds, the grid at half-octave spacing, |k| <= 1 (law x 2^-0.5 .. 2^0.5); the
choices' LRs widen it to 4x.

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
DIMS = ("--d-model", 256, "--n-layers", 8, "--n-heads", 32)     # CONFIG's, for --factory
FACTORY = "bench.user_gpt:build"
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
    ap.add_argument("--out", type=Path, required=True,
                    help="folder of every step's files (rerun with it to resume)")
    ap.add_argument("--budget-cpu-minutes", default="4.5", help="advisor plan's budget")
    ap.add_argument("--bpe-vocab", type=int, default=512, help="BPE vocabulary to train")
    ap.add_argument("--data-mb", type=float, default=1.0,
                    help="MB of the stdlib corpus the BPE and the token files take")
    ap.add_argument("--grid-steps", type=int, default=1,
                    help="validate --grid-steps: LRs law x 2^(k x spacing), |k| <= this")
    ap.add_argument("--grid-spacing", type=float, default=0.5,
                    help="validate --grid-spacing, in octaves")
    ap.add_argument("--seeds", type=int, default=2, help="validate --seeds: seeds per LR")
    ap.add_argument("--factory", action="store_true",
                    help=f"calibrate the user's own module {FACTORY} instead of the config")
    ap.add_argument("--fit-method", default=None,
                    help="advisor fit --method (default: fit's own, auto)")
    ap.add_argument("--data", type=Path, default=None,
                    help="token files prepare-data wrote (default: OUT/data, made here)")
    args = ap.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    cfg = out / "config.json"
    cfg.write_text(json.dumps(dict(CONFIG, vocab_size=args.bpe_vocab), indent=1))
    t: dict = {}
    data = args.data or out / "data"
    if not (data / "train.bin").exists():
        step("prepare-data", "prepare-data", "stdlib", "--train-bpe", args.bpe_vocab,
             "--max-mb", args.data_mb, "--out", data, timings=t)
    plan = out / "plan.yaml"
    target = (("--hf-config", cfg) if not args.factory
              else (*DIMS, "--vocab", args.bpe_vocab))
    if not plan.exists():
        step("plan", "plan", *target, "--budget-cpu-minutes", args.budget_cpu_minutes,
             "--data", f"tokens:{data}", "--out", plan,
             *(("--factory", FACTORY) if args.factory else ()), timings=t)
    step("calibrate", "calibrate", plan, "--out", out / "calibration", "--device", "cpu",
         "--threads", "1", "--no-progress", timings=t)
    laws = out / "fitted.yaml"
    step("fit", "fit", out / "calibration", "--out", laws,
         *(("--method", args.fit_method) if args.fit_method else ()), timings=t)
    import yaml
    d1 = min(yaml.safe_load(plan.read_text())["grid"]["tokens"])
    step("recommend", "recommend", *target, "--laws", laws, "--tokens", d1,
         "--seq-len", 64, "--format", "json", "-o", out / "recommendation.json", timings=t)
    step("validate", "validate", out / "calibration", "--laws", laws, "--out",
         out / "validation", "--tokens", d1, "--grid-steps", args.grid_steps,
         "--grid-spacing", args.grid_spacing, "--seeds", args.seeds, "--device", "cpu",
         "--threads", "1", "--no-progress", "--table", out / "validation.md", "--json",
         out / "validation.json", "--plot", out / "validation.png", timings=t)
    (out / "timings.json").write_text(json.dumps(t, indent=1))
    print(f"\nwall time per step (s): {t}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
