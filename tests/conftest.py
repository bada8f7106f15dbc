"""Shared test fixtures: where the repository and the shared external data live, a
recorder of synthetic muP sweeps, and the CLI run in-process."""
from pathlib import Path

import numpy as np

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"          # CI clones the repo with shared/ beside it
EXTERNAL = SHARED / "data" / "external"
# A small Llama-style GQA target (HF config.json fields) of the user-model and plan tests
LLAMA_GQA = {"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 8,
             "num_attention_heads": 16, "num_key_value_heads": 4, "intermediate_size": 688,
             "vocab_size": 512, "tie_word_embeddings": False, "rope_theta": 500000.0,
             "rms_norm_eps": 1e-5, "hidden_act": "silu"}


@pytest.fixture(scope="session")
def external_data() -> Path:
    if not EXTERNAL.is_dir():
        pytest.skip(f"shared external data not found at {EXTERNAL}")
    return EXTERNAL


@pytest.fixture
def cli(capsys):
    """``cli(argv)`` runs ``advisor ARGV`` in-process: (exit code, stdout, stderr)."""
    def run(argv):
        from advisor.cli import main
        with pytest.raises(SystemExit) as exc:
            main(list(argv))
        out = capsys.readouterr()
        return exc.value.code, out.out, out.err
    return run


@pytest.fixture
def one_torch_thread():
    """Run a test with one torch thread: tiny CPU models run several times faster that way
    on a loaded 2-core machine than with two threads contending."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _record_mup_sweep(store, rng, *, widths=(32, 64, 128), lr_span=8.0, n_lrs=7, seed=0,
                      base_width=32, lr_n_exponent=-0.5, **spec_fields) -> int:
    """Record into ``store`` a muP sweep (base width ``base_width``, 32 unless told; widths x
    token budgets 2^21, 2^23 x
    ``n_lrs`` LRs over lr0/span..lr0*span x batches 8/16/32 sequences of 64 tokens) whose
    final train loss is a bowl in (ln lr, ln batch) around a planted optimum, with 3e-4
    relative noise: what ``advisor calibrate`` writes, without the training. Returns the
    number of runs; ``lr_n_exponent``: the planted optimum's N exponent (0: a base LR that
    transfers across widths); ``spec_fields`` go to every RunSpec (e.g. weight_decay, wd_rule)."""
    from advisor.specs.runspec import RunSpec

    n = 0
    for width in widths:
        N = 2 * (4 * width ** 2 + 3 * width * round(2.75 * width))
        for tokens in (2 ** 21, 2 ** 23):
            lr0, b0 = 0.05 * (N / 1e5) ** lr_n_exponent, 0.5 * tokens ** 0.5
            for lr in lr0 * np.geomspace(1 / lr_span, lr_span, n_lrs):
                for batch in (8, 16, 32):
                    spec = RunSpec(width=width, depth=2, lr=float(lr), batch_size=batch,
                                   seq_len=64, tokens=tokens, seed=seed,
                                   model={"head_dim": 16, "base_width": base_width},
                                   **spec_fields)
                    u, v = np.log(lr / lr0), np.log(batch * 64 / b0)
                    L = (2 + 30 / N ** 0.15) * (1 + 0.01 * u ** 2 + 0.004 * v ** 2) \
                        * (1 + 3e-4 * rng.standard_normal())
                    store.record(spec.run_id, spec.settings(), "finished",
                                 final_train_loss=float(L), n_params_non_embedding=N,
                                 curve={"step": [spec.steps], "tokens": [tokens], "lr": [lr],
                                        "train_loss": [float(L)], "val_loss": [float("nan")]})
                    n += 1
    return n


@pytest.fixture(scope="session")
def record_mup_sweep():
    """:func:`_record_mup_sweep`, for tests that fit stored runs without training them."""
    return _record_mup_sweep
