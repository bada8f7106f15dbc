"""Stacked training through the calibration engine's own types (RunSpec -> RunResult).

Specification: ``train_stack(specs, data, device, on_result)`` returns, for every spec, the
result ``train_run(spec, data, device)`` returns: the same loss curve (to float rounding),
the same held-out losses, the same status, and one ``on_result`` call per member, even when
members differ in LR, weight decay, seed, schedule and token budget, and when one of them
diverges. Real data (the embedded stdlib corpus), real training steps, float64 on the CPU.
"""
from __future__ import annotations

import dataclasses
import shutil
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("mup")

from calibration.train.data import load_data  # noqa: E402
from advisor.specs.runspec import RunSpec  # noqa: E402
from calibration.train.group import train_group, train_stack  # noqa: E402
from calibration.train.stacked import stack_key  # noqa: E402
from calibration.train.single import train_run  # noqa: E402

# A tiny muP proxy at twice its base width (so muP's multipliers are not all 1).
BASE = RunSpec(width=32, depth=2, batch_size=4, seq_len=16, tokens=4 * 16 * 24,
               eval_interval=8, eval_sequences=8, grad_clip=1.0,
               model=(("base_width", 16), ("head_dim", 16)))

MEMBERS = [
    dataclasses.replace(BASE, lr=1e-2, weight_decay=0.1, seed=0,
                        schedule="wsd:warmup=3,cooldown=0.3"),
    dataclasses.replace(BASE, lr=3e-3, weight_decay=0.0, seed=1, schedule="cosine:warmup=2"),
    dataclasses.replace(BASE, lr=2e-2, weight_decay=1.0, seed=2, tokens=4 * 16 * 16),
    # far too high an LR: stopped by the divergence rule while the others go on
    dataclasses.replace(BASE, lr=8.0, seed=3, diverge_factor=1.05),
]


@pytest.fixture(scope="module")
def data():
    return load_data("stdlib")


@pytest.fixture(scope="module")
def float64():
    # float64 so that any difference is a bug, not rounding; one thread because tiny
    # models only lose from threading (and a shared 2-core CI box is easily oversubscribed)
    old, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(old)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def stacked_and_alone(data, float64):
    reported = []
    stacked = train_stack(MEMBERS, data, "cpu", on_result=reported.append)
    alone = [train_run(s, data, "cpu") for s in MEMBERS]
    return stacked, alone, reported


def test_each_member_follows_its_single_run(stacked_and_alone):
    stacked, alone, _ = stacked_and_alone
    assert [r.spec for r in stacked] == MEMBERS
    for s, a in zip(stacked, alone):
        assert s.error == "" and a.error == ""
        assert s.status == a.status
        assert s.curve["step"] == a.curve["step"]
        assert s.curve["tokens"] == a.curve["tokens"]
        np.testing.assert_allclose(s.curve["lr"], a.curve["lr"], rtol=1e-12)
        assert s.tokens_seen == a.tokens_seen
        assert (s.n_params, s.n_params_non_embedding) == (a.n_params, a.n_params_non_embedding)
        if s.status == "diverged":   # chaotic by then: rounding differences are amplified
            continue
        # the loss is computed in float32 by calibration.model.proxy.compute_loss on both paths
        np.testing.assert_allclose(s.curve["train_loss"], a.curve["train_loss"], rtol=2e-6)
        np.testing.assert_allclose(s.curve["val_loss"], a.curve["val_loss"], rtol=2e-6)
        assert s.final_train_loss == pytest.approx(a.final_train_loss, rel=2e-6)


def test_members_really_trained_and_the_diverged_one_stopped(stacked_and_alone):
    stacked, _, _ = stacked_and_alone
    for r in stacked[:3]:
        assert r.status == "finished"
        assert r.curve["train_loss"][-1] < r.curve["train_loss"][0] - 0.3
        assert r.final_val_loss < np.log(256)
    assert stacked[2].tokens_seen == 4 * 16 * 16        # its own, shorter budget
    bad = stacked[3]
    assert bad.status == "diverged"
    assert bad.tokens_seen < bad.spec.tokens
    assert np.isnan(bad.final_val_loss)


def test_on_result_reports_each_member_once_as_it_ends(stacked_and_alone):
    stacked, _, reported = stacked_and_alone
    assert sorted(id(r) for r in reported) == sorted(id(r) for r in stacked)
    # the diverged member and the short member end first
    assert {r.spec.seed for r in reported[:2]} == {2, 3}
    assert all(("stack_size" in [d[1] for d in r.diagnostics]) for r in stacked)


def test_train_group_delegates_stackable_specs(data, float64):
    specs = [dataclasses.replace(MEMBERS[0], stack=True, tokens=4 * 16 * 4),
             dataclasses.replace(MEMBERS[1], stack=True, tokens=4 * 16 * 4)]
    results = train_group(specs, data, "cpu")
    assert [d for d in results[0].diagnostics if d[1] == "stack_size"] == [(0, "stack_size", 2.0)]
    alone = train_run(specs[1], data, "cpu")
    np.testing.assert_allclose(results[1].curve["train_loss"], alone.curve["train_loss"],
                               rtol=2e-6)
    # stacking is an execution detail: the run id (the store's row key) ignores it
    assert specs[0].run_id == dataclasses.replace(specs[0], stack=False).run_id


def test_train_group_keeps_callbacks_and_progress_when_asked_to_stack(data, float64):
    """Callbacks need a model of their own: the group trains one run at a time (saying so),
    each with the callbacks and the progress function, instead of dropping them."""
    class Probe:
        def on_step(self, step, model, optimizer, batch):
            return {"probe": float(step)}

    specs = [dataclasses.replace(m, stack=True, tokens=4 * 16 * 4) for m in MEMBERS[:2]]
    steps = []
    with pytest.warns(UserWarning, match="one at a time"):
        results = train_group(specs, data, "cpu", callbacks=[Probe()],
                              progress=lambda step, total, loss: steps.append(step))
    for r in results:
        names = [d[1] for d in r.diagnostics]
        assert "probe" in names and "stack_size" not in names
    assert len(steps) == sum(s.steps for s in specs)
    # without callbacks the same group stacks and the progress function still runs
    steps.clear()
    results = train_group(specs, data, "cpu", progress=lambda step, total, loss: steps.append(step))
    assert all("stack_size" in [d[1] for d in r.diagnostics] for r in results)
    assert steps and steps[-1] == max(s.steps for s in specs)


@pytest.mark.parametrize("parameterization", ["mup", "sp"])
def test_tied_embeddings_stack_and_match_their_single_runs(data, float64, parameterization):
    """A tied embedding is one parameter used twice (input and readout): the stack holds it
    once and its gradient is the sum of both uses, as in the single model. No fallback to
    single runs (a warning here would be the stack failing and retrying one at a time)."""
    tied = dataclasses.replace(
        BASE, parameterization=parameterization, tokens=4 * 16 * 24, grad_clip=1.0,
        model=(("base_width", 16), ("head_dim", 16), ("tied_embeddings", True)))
    specs = [dataclasses.replace(tied, lr=1e-2, weight_decay=0.1, seed=0),
             dataclasses.replace(tied, lr=3e-3, seed=1, schedule="cosine:warmup=2")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stacked = train_stack(specs, data, "cpu")
    alone = [train_run(s, data, "cpu") for s in specs]
    for s, a in zip(stacked, alone):
        assert ("stack_size", 2.0) in [(d[1], d[2]) for d in s.diagnostics]
        assert s.status == a.status == "finished" and s.error == ""
        # one embedding, counted once, as alone
        assert (s.n_params, s.n_params_non_embedding) == (a.n_params, a.n_params_non_embedding)
        assert s.final_train_loss < np.log(256) - 0.5                  # it trained
        np.testing.assert_allclose(s.curve["train_loss"], a.curve["train_loss"], rtol=2e-6)
        np.testing.assert_allclose(s.curve["val_loss"], a.curve["val_loss"], rtol=2e-6)


def test_specs_of_different_shapes_go_to_different_stacks(data, float64):
    a = dataclasses.replace(BASE, tokens=4 * 16 * 2, eval_interval=2)
    b = dataclasses.replace(a, width=48, model=(("base_width", 16), ("head_dim", 16)))
    c = dataclasses.replace(a, lr=1e-3)
    assert stack_key(a) == stack_key(c) != stack_key(b)
    results = train_stack([a, b, c], data, "cpu")
    assert [r.spec for r in results] == [a, b, c]
    sizes = [dict((d[1], d[2]) for d in r.diagnostics).get("stack_size") for r in results]
    # a and c share a stack of two; b alone goes through train_run (no stack diagnostics)
    assert sizes == [2.0, None, 2.0]
    assert all(r.status == "finished" for r in results)


def test_bad_settings_fail_every_member_with_one_clear_error(data):
    short = dataclasses.replace(BASE, seq_len=16, data="stdlib")

    class Tiny:       # a data source shorter than one sequence
        spec, vocab_size = "tiny", 256
        train = np.zeros(8, np.uint8)
        val = np.zeros(8, np.uint8)

        def check_fits(self, seq_len):
            return load_data("stdlib").__class__.check_fits(self, seq_len)

    results = train_stack([short, dataclasses.replace(short, lr=1e-3)], Tiny(), "cpu")
    assert [r.status for r in results] == ["failed", "failed"]
    assert all("fewer than one sequence" in r.error for r in results)


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++")),
                    reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_stack_matches_eager_single_runs(data):
    """The path a GPU takes by default (torch.compile of the vmapped loss and of the stacked
    optimizer), exercised here on the CPU with inductor: same curves as eager train_run."""
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)    # as a real sweep runs
    try:
        specs = [dataclasses.replace(m, compile="always", tokens=4 * 16 * 8, eval_interval=4)
                 for m in MEMBERS[:2]]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stacked = train_stack(specs, data, "cpu")
        # no silent fallback to eager or to one run at a time
        assert not [w for w in caught if "eager" in str(w.message)
                    or "one at a time" in str(w.message)]
        assert all(dict((d[1], d[2]) for d in r.diagnostics)["stack_size"] == 2 for r in stacked)
        for s, spec in zip(stacked, specs):
            alone = train_run(dataclasses.replace(spec, compile="never"), data, "cpu")
            assert s.status == alone.status == "finished"
            # float32 here; inductor may reassociate sums
            np.testing.assert_allclose(s.curve["train_loss"], alone.curve["train_loss"],
                                       rtol=2e-5)
    finally:
        torch.set_num_threads(threads)
        torch.set_default_dtype(dtype)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_stack_matches_single_runs_and_sizes_itself_from_memory(data):
    """On a GPU (bf16 autocast, torch.compile): K from free memory fits this sweep, and each
    member ends where its single run ends (bf16: a looser tolerance)."""
    from calibration.train.stacked import choose_stack_size

    torch.set_default_dtype(torch.float32)    # the module's float64 fixture may still be active
    base = RunSpec(width=128, depth=2, batch_size=16, seq_len=128, tokens=16 * 128 * 40,
                   eval_interval=20, eval_sequences=32)
    specs = [dataclasses.replace(base, lr=2.0 ** -k, seed=k) for k in (9, 8, 7)]
    assert choose_stack_size(specs, data, "cuda") == 3
    stacked = train_stack(specs, data, "cuda")
    for s, spec in zip(stacked, specs):
        alone = train_run(spec, data, "cuda")
        assert s.status == alone.status == "finished"
        np.testing.assert_allclose(s.curve["train_loss"], alone.curve["train_loss"], rtol=2e-2)
        np.testing.assert_allclose(s.final_val_loss, alone.final_val_loss, rtol=2e-2)


def test_a_sweep_with_stack_true_stores_one_row_per_member(tmp_path, data):
    """Through the executor: a plan with ``stack: true`` trains its same-shape runs as one
    stack, and the results store holds one ordinary row (and curve) per member."""
    from advisor.specs.plan import load_plan
    from advisor.runs.store import ResultsStore
    from calibration.sweep.executors import run_sweep

    plan_file = tmp_path / "tiny.yaml"
    plan_file.write_text(
        "name: tiny-stacked\n"
        "settings: {family: proxy-llama, data: stdlib, depth: 2, head_dim: 16, base_width: 16,"
        " seq_len: 16, batch_size: 4, tokens: 256, eval_interval: 2, eval_sequences: 8,"
        " stack: true}\n"
        "grid: {width: [32], lr: [0.001, 0.003, 0.01]}\n")
    plan = load_plan(plan_file)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_sweep(plan, tmp_path / "store", device="cpu", show_progress=False)
    finally:
        torch.set_num_threads(threads)
    store = ResultsStore.open(tmp_path / "store")
    try:
        runs = store.runs()
        assert sorted(r.settings["lr"] for r in runs) == [0.001, 0.003, 0.01]
        assert all(r.status == "finished" for r in runs)
        for r in runs:
            sizes = [d["value"] for d in store.diagnostics(r.run_id) if d["name"] == "stack_size"]
            assert sizes == [3.0]
            assert len(store.curve(r.run_id)["step"]) == 2      # steps 2 and 4
    finally:
        store.close()
