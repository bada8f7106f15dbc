"""The weight-decay width rule as a run setting: RunSpec carries it, the store keeps it, and the
proxy's real build_optimizer gives the hidden matrices wd x m^e (mup e=1, sqrt e=1/2, none 0)."""
import math

import pytest

from advisor.errors import AdvisorError
from advisor.specs.plan import load_plan
from advisor.specs.runspec import RunSpec
from advisor.runs.store import ResultsStore

torch = pytest.importorskip("torch")
pytest.importorskip("mup")

from calibration.model.proxy import ProxyConfig, build_model, build_optimizer  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
BASE = 32
WD = 0.1
LR = 2 ** -6


def _groups(width, wd_rule, kind="muadamw"):
    cfg = ProxyConfig.from_family("proxy-llama", width=width, depth=2, head_dim=16,
                                  base_width=BASE, seq_len=16)
    model = build_model(cfg, seed=0)
    opt = build_optimizer(model, cfg, LR, WD, kind=kind, wd_rule=wd_rule)
    names = {id(p): n for n, p in model.named_parameters()}
    by_name = {}
    for g in opt.param_groups:
        for p in g["params"]:
            by_name[names[id(p)]] = (g["group"], g["lr"], g["weight_decay"])
    return by_name


@pytest.mark.parametrize("rule,exponent", [("mup", 1.0), ("sqrt", 0.5), ("none", 0.0)])
@pytest.mark.parametrize("m", [2, 4])
def test_hidden_weight_decay_follows_the_rule(rule, exponent, m):
    groups = _groups(BASE * m, rule)
    hidden = {n: v for n, v in groups.items() if v[0] == "hidden"}
    assert len(hidden) == 2 * 7                      # q, k, v, o, gate, up, down per block
    for name, (_, lr, wd) in hidden.items():
        assert lr == pytest.approx(LR / m), name
        assert wd == pytest.approx(WD * m ** exponent), name
        # decay per step lr * wd: constant under mup, falls as m^-1/2 (sqrt) and m^-1 (none)
        assert lr * wd == pytest.approx(LR * WD * m ** (exponent - 1.0)), name
    # the rule touches hidden matrices only: embedding and readout keep wd, vectors get none
    assert groups["embed.weight"][2] == pytest.approx(WD)
    assert groups["readout.weight"][2] == pytest.approx(WD)
    assert groups["norm.weight"][2] == 0.0


def test_the_rules_coincide_at_the_base_width_and_differ_away_from_it():
    at_base = {r: _groups(BASE, r)["blocks.0.attn.q.weight"][2] for r in ("mup", "sqrt", "none")}
    assert list(at_base.values()) == pytest.approx([WD] * 3)
    at_4x = [_groups(4 * BASE, r)["blocks.0.attn.q.weight"][2] for r in ("mup", "sqrt", "none")]
    assert at_4x == pytest.approx([4 * WD, 2 * WD, WD])


def test_a_rule_where_it_means_nothing_is_refused():
    with pytest.raises(AdvisorError, match="without muP's width rules"):
        _groups(64, "sqrt", kind="adamw")
    with pytest.raises(AdvisorError, match="weight-decay width rule"):
        _groups(64, "cube")


def test_runspec_carries_the_rule_and_old_run_ids_do_not_change():
    assert RunSpec(wd_rule="mup").run_id == RunSpec().run_id
    assert RunSpec(wd_rule="sqrt").run_id != RunSpec().run_id
    assert RunSpec(wd_rule="none").settings()["wd_rule"] == "none"
    with pytest.raises(AdvisorError, match="wd_rule must be one of"):
        RunSpec(wd_rule="linear")
    with pytest.raises(AdvisorError, match="needs optimizer muadamw"):
        RunSpec(wd_rule="sqrt", optimizer="adamw")
    with pytest.raises(AdvisorError, match="needs optimizer muadamw"):
        RunSpec(wd_rule="none", parameterization="sp")


def test_the_shipped_plan_sweeps_the_three_rules_and_the_store_keeps_them(tmp_path):
    plan = load_plan("cpu-wd-rules")
    specs = plan.specs
    rules = {s.wd_rule for s in specs}
    assert rules == {"mup", "sqrt", "none"}
    # long enough for weight decay to act: lr * wd * steps >= 1 at the middle of the grid
    assert max(s.lr * s.weight_decay * s.steps for s in specs) >= 1.0
    st = ResultsStore.create(tmp_path)
    for s in specs[:3]:
        settings = dict(s.settings(), arch={"heads": 2, "ffn_hidden": 88})
        st.record(s.run_id, settings, "finished", final_train_loss=2.0, final_val_loss=2.1,
                  n_params=1000, n_params_non_embedding=500, tokens_seen=s.tokens,
                  wall_time_s=1.0)
    rows = st.steplaw_rows()
    assert {r["wd_rule"] for r in rows} <= {"mup", "sqrt", "none"}
    assert all(r["wd_rule"] == s.wd_rule for r, s in
               zip(sorted(rows, key=lambda r: r["exp_name"]),
                   sorted(specs[:3], key=lambda s: s.run_id)))
    assert not any(math.isnan(r["weight_decay"]) for r in rows)


def test_a_training_run_uses_its_rule():
    """Through calibration.train.single: the rules give one run at the base width and differ at 2x."""
    from calibration.train.data import load_data
    from calibration.train.single import train_run

    data = load_data("stdlib")
    model = {"head_dim": 16, "base_width": BASE}

    def loss(width, rule):
        spec = RunSpec(width=width, depth=2, batch_size=4, seq_len=32, tokens=4 * 32 * 6,
                       lr=2 ** -5, weight_decay=2.0, wd_rule=rule, eval_interval=6,
                       eval_sequences=8, model=model)
        r = train_run(spec, data)
        assert r.status == "finished", r.error
        return r.final_train_loss

    assert loss(BASE, "mup") == loss(BASE, "none")
    assert loss(2 * BASE, "mup") != loss(2 * BASE, "none")
