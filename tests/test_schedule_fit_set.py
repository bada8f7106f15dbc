"""`advisor schedule fit` says when its curves cannot measure how fast the loss follows an LR
drop (no quick cooldown among them), and what pilot curve would (docs/run.md, table F)."""
from pathlib import Path

import pytest

from advisor.rules.lr_schedule import parse_schedule
from advisor.schedule.fitting import cools_down_quickly

INPUTS = Path(__file__).resolve().parents[1] / "recipes/schedule/inputs/schaipp-124m-lr5e-4"


@pytest.mark.parametrize("spec, quick", [
    ("wsd:cooldown=0.1,shape=linear,final=0,warmup=300", True),
    ("wsd:cooldown=0.2,shape=1-sqrt,final=0", True),
    ("wsd:cooldown=0.4,shape=linear,final=0", True),      # 80% -> 20% over 24% of the run
    ("wsd:cooldown=0.6,shape=linear,final=0", False),     # over 36%
    ("cosine:final=0.1,warmup=300", False),               # over ~47%
    ("cosine:final=0", False),
    ("constant:warmup=300", False),
])
def test_a_quick_cooldown_is_a_fall_from_80_to_20_percent_within_a_quarter_of_the_run(spec, quick):
    assert cools_down_quickly(parse_schedule(spec).multipliers(20000)) is quick


def test_fit_on_constant_and_cosine_runs_advises_a_cooldown_branch(cli, tmp_path):
    code, out, err = cli(["schedule", "fit", str(INPUTS / "const_50000.csv"), "--curve",
                          str(INPUTS / "cos10_50000.csv"), "--law", "valley",
                          "--out", str(tmp_path / "law.yaml")])
    assert code == 0 and (tmp_path / "law.yaml").exists()     # advice, not a refusal
    note = next(l for l in err.splitlines() if l.startswith("note: no fitted curve cools"))
    assert "short cooldown branched from a constant run" in note and "table F" in note
