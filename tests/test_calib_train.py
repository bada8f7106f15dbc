"""One training run: schedule, loss curve, statuses, callbacks."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("mup")

from advisor.rules.lr_schedule import parse_schedule
from calibration.train.data import load_data
from advisor.specs.runspec import RunSpec
from calibration.train.group import train_group
from calibration.train.single import train_run

TINY = dict(width=32, depth=2, batch_size=4, seq_len=32, eval_interval=5, eval_sequences=16,
            model={"head_dim": 16, "base_width": 32})


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    return load_data("stdlib")


def test_run_records_curve_with_schedule_and_loss_falls(data):
    spec = RunSpec(lr=2 ** -6, tokens=4 * 32 * 30, schedule="cosine:warmup=3,final=0.1", **TINY)
    r = train_run(spec, data)
    assert r.status == "finished", r.error
    c = r.curve
    assert c["step"] == [5, 10, 15, 20, 25, 30]
    assert c["tokens"] == [s * 128 for s in c["step"]]
    expected = spec.lr * parse_schedule(spec.schedule).multipliers(30)
    assert np.allclose(c["lr"], expected[np.array(c["step"]) - 1])
    assert c["lr"][-1] == pytest.approx(0.1 * spec.lr)
    assert c["val_loss"][-1] < c["val_loss"][0] < math.log(256)
    assert r.final_val_loss == c["val_loss"][-1]
    assert r.tokens_seen == 30 * 128 and r.tokens_per_s > 0 and r.wall_time_s > 0
    assert r.n_params > r.n_params_non_embedding > 0


def test_same_spec_same_result(data):
    spec = RunSpec(lr=2 ** -6, tokens=4 * 32 * 10, **TINY)
    a, b = train_run(spec, data), train_run(spec, data)
    assert a.curve["train_loss"] == b.curve["train_loss"]
    assert a.run_id == b.run_id
    assert RunSpec(lr=2 ** -5, tokens=4 * 32 * 10, **TINY).run_id != a.run_id


def test_huge_lr_diverges_early(data):
    spec = RunSpec(lr=8.0, tokens=4 * 32 * 200, **TINY)
    r = train_run(spec, data)
    assert r.status == "diverged"
    assert r.tokens_seen < spec.tokens          # stopped early to save compute


def test_callbacks_return_diagnostics(data):
    class GradNorm:
        def on_step(self, step, model, optimizer, batch):
            if step % 2 == 0:
                return {"embed_norm": model.embed.weight.norm().item()}
            return None

    spec = RunSpec(lr=2 ** -6, tokens=4 * 32 * 6, **TINY)
    r = train_run(spec, data, callbacks=[GradNorm()])
    own = [d for d in r.diagnostics if not d[1].startswith("stab.")]   # stability probes aside
    assert [d[0] for d in own] == [2, 4, 6]
    assert all(d[1] == "embed_norm" and d[2] > 0 for d in own)


def test_failure_is_a_result_not_a_crash(data):
    spec = RunSpec(lr=2 ** -6, tokens=4 * 512 * 2, **{**TINY, "seq_len": 512})
    bad = load_data.__wrapped__("stdlib")
    tiny = type(bad)("tiny", bad.train[:100], bad.val[:100], 256, "x")
    r = train_run(spec, tiny)
    assert r.status == "failed" and "fewer than one sequence" in r.error


def test_train_group_trains_each_and_reports(data):
    specs = [RunSpec(lr=lr, tokens=4 * 32 * 3, **TINY) for lr in (2 ** -7, 2 ** -6)]
    seen = []
    out = train_group(specs, data, "cpu", on_result=seen.append)
    assert [r.spec for r in seen] == specs and len(out) == 2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_run_with_bf16_and_compile(data):
    spec = RunSpec(lr=2 ** -6, tokens=4 * 32 * 20, **TINY)
    r = train_run(spec, data, "cuda")
    assert r.status == "finished", r.error
    assert r.curve["val_loss"][-1] < r.curve["val_loss"][0]
    cpu = train_run(spec, data, "cpu")
    assert r.final_val_loss == pytest.approx(cpu.final_val_loss, abs=0.1)   # bf16 vs fp32


def test_stacked_groups_go_to_train_stack_and_agree_with_single_runs(data):
    pytest.importorskip("calibration.train.stacked")
    tiny = dict(TINY, tokens=4 * 32 * 10)
    stacked = train_group([RunSpec(lr=lr, stack=True, **tiny) for lr in (2 ** -7, 2 ** -6)],
                          data, "cpu")
    assert all(("stack_size" in {d[1] for d in r.diagnostics}) for r in stacked)
    for r in stacked:
        single = train_run(RunSpec(lr=r.spec.lr, **tiny), data)
        assert r.run_id == single.run_id              # stacking does not change the run id
        assert r.final_val_loss == pytest.approx(single.final_val_loss, abs=1e-4)
