"""The batch on the user's devices: whole accumulation, the rounding priced in nats, a fixed
batch checked, the critical batch and its trade-off, the batch ramp; bad input is one
`error:` line and exit 2, found before any work."""
import json
import math
import subprocess
import sys

import pytest

from advisor import AdvisorError, recommend
from advisor.recommendation.batch_plan import (REFUSE_OCTAVES, batch_ramp, critical_batch_view,
                                               plan_batch)
from advisor.recommendation.trust import curvature_batch


def cli(*args):
    return subprocess.run([sys.executable, "-m", "advisor.cli", *args], capture_output=True,
                          text=True)


def test_rounding_picks_the_nearer_whole_accumulation_in_log2_and_prices_it():
    k = curvature_batch()
    p = plan_batch(499.0, 4096, k, devices=8, micro_batch=4)   # 15.6 micro-steps of 32
    assert p.accumulation == 16 and p.global_sequences == 512
    assert p.rounding_octaves == pytest.approx(math.log2(512 / 499), abs=1e-4)
    assert p.rounding_cost_nats == pytest.approx(k * math.log2(512 / 499) ** 2, rel=1e-2)
    lo = plan_batch(490.0, 4096, k, devices=8, micro_batch=4)  # 15.3: 480 is nearer in log2
    assert lo.global_sequences == 480


def test_a_fixed_batch_is_kept_or_refused_naming_the_reachable_ones():
    p = plan_batch(499.0, 4096, 0.01, devices=8, micro_batch=4, fixed_sequences=1024)
    assert (p.accumulation, p.global_sequences) == (32, 1024)
    assert p.rounding_cost_nats == pytest.approx(0.01 * math.log2(1024 / 499) ** 2, rel=1e-2)
    with pytest.raises(AdvisorError, match="nearest reachable: 992 or 1024"):
        plan_batch(499.0, 4096, 0.01, devices=8, micro_batch=4, fixed_sequences=1000)
    with pytest.raises(AdvisorError, match="cannot be reached on 8 devices"):
        plan_batch(499.0, 4096, 0.01, devices=8, micro_batch=64, fixed_sequences=256)


def test_devices_that_force_the_batch_far_above_the_law_are_refused_unless_asked():
    law = 100.0
    per_step = int(law * 2 ** REFUSE_OCTAVES) + 8
    with pytest.raises(AdvisorError, match="--batch-size"):
        plan_batch(law, 2048, 0.01, devices=per_step // 8, micro_batch=8)
    ok = plan_batch(law, 2048, 0.01, devices=per_step // 8, micro_batch=8,
                    fixed_sequences=per_step // 8 * 8)
    assert ok.accumulation == 1 and ok.rounding_cost_nats > 0.03


def test_the_critical_batch_trade_off_follows_mccandlish():
    p = plan_batch(512.0, 4096, 0.01, devices=8, micro_batch=4)
    b = p.global_tokens
    view = critical_batch_view(p, critical_tokens=b, source="test")   # B = B_crit
    rows = {r["batch_multiple"]: r for r in view.tradeoff}
    assert view.planned_over_critical == 1.0 and "near the critical batch" in view.regime
    # S ~ 1 + Bc/B, E ~ 1 + B/Bc: doubling at B = Bc takes 3/4 of the steps and 3/2 the tokens
    assert rows[2.0]["steps_relative"] == pytest.approx(0.75)
    assert rows[2.0]["tokens_relative"] == pytest.approx(1.5)
    assert rows[0.5]["steps_relative"] == pytest.approx(1.5)


def test_the_ramp_doubles_up_to_the_plan_where_the_critical_batch_grows_past_each_stage():
    p = plan_batch(512.0, 4096, 0.01, devices=8, micro_batch=4)      # accumulation 16
    total = 1e11

    def cbs(d):                         # rises then plateaus at 4x the planned batch
        return 4 * p.global_tokens * d / (d + 1e9)

    ramp = batch_ramp(p, 2, total, cbs)
    seqs = [s.global_sequences for s in ramp.stages]
    assert seqs == [128, 256, 512]
    for stage, nxt in zip(ramp.stages, ramp.stages[1:]):
        assert cbs(stage.to_tokens * 1.001) >= nxt.global_sequences * 4096   # switch point
        assert cbs(stage.to_tokens * 0.999) < nxt.global_sequences * 4096
    assert ramp.stages[-1].to_tokens == pytest.approx(total, rel=1e-3)
    assert ramp.total_steps > ramp.steps_at_planned_batch          # smaller early batches
    with pytest.raises(AdvisorError, match="below one micro-step"):
        batch_ramp(p, 5, total, cbs)                               # 16 / 32 < 1
    odd = plan_batch(192.0, 4096, 0.01, devices=8, micro_batch=4)  # accumulation 6
    assert [s.accumulation for s in batch_ramp(odd, 2, total, cbs).stages] == [2, 3, 6]
    with pytest.raises(AdvisorError, match="above the critical batch even at the end"):
        batch_ramp(p, 1, total, lambda d: 0.5 * p.global_tokens)


def test_the_library_and_the_json_carry_the_plan():
    rec = recommend(params=7e9, devices=8, micro_batch=4, batch_ramp=1)
    d = rec.to_dict()["batch_plan"]
    seqs = rec.batch_size_sequences.value
    assert d["global_sequences"] == seqs and seqs % 32 == 0
    assert d["critical"]["tokens"] > d["global_tokens"]
    stages = [s["global_sequences"] for s in d["ramp"]["stages"]]
    assert stages[-1] == seqs and stages[0] == 32 * round(seqs // 32 / 2)
    json.dumps(d, allow_nan=False)


@pytest.mark.parametrize("args, message", [
    (("--devices", "0"), "--devices must be between 1"),
    (("--devices", "8", "--micro-batch", "2.5"), "--micro-batch must be a whole number"),
    (("--devices", "8", "--micro-batch", "4", "--batch-size", "1000"), "nearest reachable"),
    (("--devices", "64", "--micro-batch", "64"), "use fewer devices"),
    (("--devices", "8", "--micro-batch", "4", "--batch-ramp", "9"), "--batch-ramp must be"),
])
def test_bad_device_input_is_one_error_line_and_exit_2(args, message):
    r = cli("recommend", "--params", "7e9", *args)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]


def test_a_fixed_batch_from_the_conditional_options_runs_on_the_devices():
    rec = recommend(params=7e9, devices=8, micro_batch=4, batch_size=1024)
    plan = rec.batch_plan
    assert (plan.accumulation, plan.global_sequences) == (32, 1024)
    assert rec.batch_size_sequences.value == 1024 and "given" in plan.batch_source
    # the cost of that batch is priced once, in the `given` block (part A), not warned twice
    assert rec.given["batch"]["expected_cost_nats"] > 0
    assert not any("the batch the devices run" in w for w in rec.warnings)
    r = cli("recommend", "--params", "7e9", "--devices", "8", "--micro-batch", "4",
            "--batch-tokens", str(1000 * 4096))
    assert r.returncode == 2 and "nearest reachable: 992 or 1024" in r.stderr
