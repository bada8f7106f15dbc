"""Every size the suite uses, at full size (the GPU) and at toy size (``--smoke``, the CPU).

Full sizes are those of the existing plans and benchmarks (recipes/plans/gpu-*.yaml, the
GPU presets of bench/*.py); the toy sizes keep every code path but are small enough for
the whole suite to run in about a minute on a 2-core CPU.
"""
from __future__ import annotations

FULL = {
    "probe": dict(matmul_n=8192, copy_bytes=1 << 30, widths=(128, 1024), depth=4, batch=32,
                  seq_len=256, steps=5, warmup=2, head_dim=None),
    "tests": dict(compiles=8),        # files: every tests/*.py with a gpu mark
    "lr_sweep": dict(plan="gpu-lr-sweep"),
    "throughput": dict(args=["--widths", "128", "256", "512", "1024"]),
    "spectral": dict(hidden=4096, ffn=11008, layers=3),
    "calibration": dict(plan="gpu-calibration"),
    "transfer": dict(grid_steps=3, width=None),    # advisor validate: law LR x 2^k, |k| <= 3
    "schedule": dict(args=["--width", "256", "--depth", "4", "--steps", "4000"]),
    # stage 8, in this order; "share": finished runs of these stages' stores with the same
    # run ids are copied in instead of retrained (gpu-muon-sweep's muP AdamW arm and
    # gpu-wd-rules' weight-decay-0 runs are runs of gpu-lr-sweep's muP arm)
    "transfer_sweeps": dict(muon=dict(plan="gpu-muon-sweep", share=("lr-sweep",)),
                            depth=dict(plan="gpu-depth-sweep"),
                            wd_rules=dict(plan="gpu-wd-rules", share=("lr-sweep",))),
    "stability": dict(plan="gpu-stability"),
    # stage 9 (issue 24): a Llama-style GQA target, untied (its proxies stack), head size 32,
    # 4 query heads per key/value head: proxies 128/256/512 (the H100 profile of `advisor
    # plan`), held out at 2048; a BPE of 4096 tokens on 8 MB of the stdlib corpus
    "user_model": dict(
        config={"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                "hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 64,
                "num_key_value_heads": 16, "head_dim": 32, "intermediate_size": 5632,
                "tie_word_embeddings": False, "rope_theta": 500000.0, "rms_norm_eps": 1e-5,
                "hidden_act": "silu", "max_position_embeddings": 4096},
        vocab=4096, data_mb=8, budget=["--budget-gpu-hours", "0.15", "--gpu", "h100"],
        grid_steps=2, grid_spacing=0.5, seeds=1, shrink=None, recommend_tokens=None),
}

# Toy plans, written into the suite directory at run time (same keys as recipes/plans).
_TOY_SETTINGS = {"family": "proxy-llama", "data": "stdlib", "depth": 1, "head_dim": 8,
                 "base_width": 16, "seq_len": 16, "batch_size": 4, "tokens": 640,
                 "schedule": "wsd:warmup=0.1,cooldown=0.2,shape=linear", "weight_decay": 0.0,
                 "eval_interval": 10, "eval_sequences": 8, "seed": 0, "stack": True}

SMOKE = {
    "probe": dict(matmul_n=256, copy_bytes=1 << 22, widths=(16, 64), depth=1, batch=4,
                  seq_len=16, steps=2, warmup=1, head_dim=8, base_width=16),
    "tests": dict(compiles=0),
    "lr_sweep": dict(plan={
        "name": "smoke-lr-sweep", "description": "toy muP-vs-SP sweep (suite smoke run)",
        "settings": dict(_TOY_SETTINGS, init_std_hidden=0.113),
        "grid": [{"parameterization": ["mup", "sp"], "width": [16, 32], "lr": {"pow2": [-8, -5]}},
                 {"parameterization": ["sp"], "init_std_hidden": [0.02],
                  "init_std_readout": [0.02], "width": [16, 32], "lr": {"pow2": [-8, -5]}}]}),
    "throughput": dict(args=["--widths", "16", "32", "--depth", "1", "--batch", "4",
                             "--seq-len", "16", "--steps", "5", "--warmup", "1",
                             "--head-dim", "8", "--lrs", "2", "--eval-sequences", "4"]),
    "spectral": dict(hidden=48, ffn=128, layers=1),
    "calibration": dict(plan={
        "name": "smoke-calibration", "description": "toy muP calibration (suite smoke run)",
        "settings": dict(_TOY_SETTINGS, parameterization="mup"),
        "grid": [{"width": [16, 32], "lr": {"pow2": [-9, -3]}, "tokens": [640, 1280, 1920]}]}),
    "transfer": dict(grid_steps=1, width=None),
    "schedule": dict(args=["--width", "16", "--depth", "1", "--steps", "60", "--batch", "4",
                           "--seq", "16", "--warmup", "6", "--eval-interval", "6",
                           "--law", "tissue", "--model", "head_dim=8,base_width=16"]),
    "transfer_sweeps": dict(
        # the muP AdamW arm is the toy lr-sweep's muP arm (same run ids: copied, not retrained)
        muon=dict(share=("lr-sweep",), plan={
            "name": "smoke-muon-sweep", "description": "toy Muon vs muP AdamW (suite smoke run)",
            "settings": dict(_TOY_SETTINGS, init_std_hidden=0.113, parameterization="mup"),
            "grid": [{"optimizer": ["muadamw"], "width": [16, 32], "lr": {"pow2": [-8, -5]}},
                     {"optimizer": ["muon"], "muon_convention": ["spectral"], "width": [16, 32],
                      "lr": {"pow2": [-6, -4]}}]}),
        depth=dict(plan={
            "name": "smoke-depth-sweep", "description": "toy transfer in depth (suite smoke run)",
            "settings": dict(_TOY_SETTINGS, width=16, base_depth=1, parameterization="mup"),
            "grid": [{"depth_alpha": [0.0, 1.0], "depth": [1, 2], "lr": {"pow2": [-7, -5]}}]}),
        # its weight-decay-0 runs are toy lr-sweep muP runs (LR 2^-6), copied as at full size
        wd_rules=dict(share=("lr-sweep",), plan={
            "name": "smoke-wd-rules", "description": "toy weight decay x width x wd rule "
                                                     "(suite smoke run)",
            "settings": dict(_TOY_SETTINGS, init_std_hidden=0.113, parameterization="mup",
                             optimizer="muadamw", lr=2 ** -6),
            "grid": [{"width": [16], "wd_rule": ["mup"], "weight_decay": {"pow2": [1, 4]}},
                     {"width": [32], "wd_rule": ["mup", "sqrt", "none"],
                      "weight_decay": {"pow2": [1, 4]}},
                     {"width": [16, 32], "wd_rule": ["mup"], "weight_decay": [0.0]}]}),
    ),
    # toy stability sweep: base at 3 widths (the widest held out) and qk_norm at 2, 2 seeds
    "stability": dict(plan={
        "name": "smoke-stability", "description": "toy stability sweep (suite smoke run)",
        "settings": dict(_TOY_SETTINGS, init_std_hidden=0.113, parameterization="sp",
                         weight_decay=0.125),
        "grid": [{"width": [16, 24, 32, 48], "seed": [0, 1], "lr": {"pow2": [-6, 0]}},
                 {"qk_norm": [True], "width": [16, 32], "seed": [0, 1],
                  "lr": {"pow2": [-6, 0]}}]}),
    # toy user-model loop: bench/bench_user_model.py's Qwen2-style target, untied as at full
    # size, so `advisor plan` sizes the CPU plan's smallest proxies (widths
    # 16-64, held out at 256) and can price the target; a BPE of 300 on 0.2 MB; the written
    # plan is shrunk to a few steps
    "user_model": dict(
        config={"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
                "hidden_size": 256, "num_hidden_layers": 8, "num_attention_heads": 32,
                "num_key_value_heads": 16, "head_dim": 8, "intermediate_size": 704,
                "tie_word_embeddings": False, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
                "hidden_act": "silu"},
        vocab=300, data_mb=0.2, budget=["--budget-cpu-minutes", "4.5"],
        grid_steps=1, grid_spacing=1.0, seeds=1,
        recommend_tokens=1_000_000,     # the target's: recommend refuses a toy budget for it
        shrink=dict(settings=dict(depth=1, seq_len=16, eval_interval=10, eval_sequences=8),
                    grid=dict(tokens=[2560, 5120], batch_size=4, lr={"pow2": [-8, -3]}))),
}


def sizes(smoke: bool) -> dict:
    return SMOKE if smoke else FULL
