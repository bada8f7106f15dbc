"""Muon's width rules (advisor.rules.optim_rules) and the proxy's Muon optimizer (calibration.model.proxy)."""
import math

import pytest

from advisor.errors import AdvisorError
from advisor.rules.optim_rules import (MUON_DEFAULTS, muon_torch_group, muon_update_scale,
                                 muon_width_multiplier, torch_muon_adjust, check_muon_alpha)


def test_update_scale_conventions():
    assert muon_update_scale(512, 128, "spectral") == pytest.approx(2.0)
    assert muon_update_scale(128, 512, "spectral") == pytest.approx(0.5)
    assert muon_update_scale(512, 128, "match_rms_adamw") == pytest.approx(0.2 * math.sqrt(512))
    assert muon_update_scale(128, 512, "match_rms_adamw") == pytest.approx(0.2 * math.sqrt(512))


@pytest.mark.parametrize("shape", [(352, 128), (128, 352), (128, 128)])
@pytest.mark.parametrize("convention", ["spectral", "match_rms_adamw"])
@pytest.mark.parametrize("builtin", [True, False])
def test_torch_group_gives_the_convention_and_keeps_decay_per_step(shape, convention, builtin):
    r = muon_torch_group(*shape, convention, match_rms_builtin=builtin)
    effective = r.lr_factor * torch_muon_adjust(*shape, r.adjust_lr_fn)
    assert effective == pytest.approx(muon_update_scale(*shape, convention))
    assert r.lr_factor * r.wd_factor == pytest.approx(1.0)
    if convention == "match_rms_adamw" and builtin:
        assert r.adjust_lr_fn == "match_rms_adamw" and r.lr_factor == 1.0


def test_width_multipliers_spectral_transfers_match_rms_grows_as_sqrt_width():
    for m in (2, 4, 8):
        assert muon_width_multiplier(32 * m, 32 * m, 32, 32, "spectral") == pytest.approx(1.0)
        assert muon_width_multiplier(88 * m, 32 * m, 88, 32, "spectral") == pytest.approx(1.0)
        assert muon_width_multiplier(32 * m, 32 * m, 32, 32, "match_rms_adamw") == \
            pytest.approx(math.sqrt(m))


def test_bad_muon_inputs_are_one_clear_error():
    with pytest.raises(AdvisorError, match="convention"):
        muon_update_scale(4, 4, "unit")
    with pytest.raises(AdvisorError, match="fan_in"):
        muon_update_scale(4, 0, "spectral")
    with pytest.raises(AdvisorError, match="adjust_lr_fn"):
        torch_muon_adjust(4, 4, "none")
    with pytest.raises(AdvisorError, match="depth"):
        check_muon_alpha(0.5)
    assert check_muon_alpha(0) == 0.0


def test_run_ids_of_earlier_runs_do_not_change():
    from advisor.specs.runspec import RunSpec

    # ids computed with calibration/train/single.py before the Muon settings were added
    assert RunSpec().run_id == "6a8e868dd12231e2"
    assert RunSpec(width=64, optimizer="adamw", lr=0.01).run_id == "46e3bbc82fa98d43"
    a = RunSpec(optimizer="muon")
    assert a.run_id != RunSpec(optimizer="muon", muon_convention="match_rms_adamw").run_id
    assert a.settings()["optimizer"] == "muon" and a.settings()["muon_convention"] == "spectral"
    for bad in (dict(muon_convention="rms"), dict(muon_momentum=1.0), dict(muon_ns_steps=0),
                dict(optimizer="lion")):
        with pytest.raises(AdvisorError):
            RunSpec(**bad)


def test_cpu_muon_plan_expands():
    from advisor.specs.plan import load_plan

    plan = load_plan("cpu-muon-sweep")
    arms = {(s.optimizer, s.muon_convention if s.optimizer == "muon" else "-") for s in plan.specs}
    assert arms == {("muadamw", "-"), ("muon", "spectral"), ("muon", "match_rms_adamw")}
    assert {s.width for s in plan.specs if s.optimizer == "muon"} == {16, 32, 64, 128}
    assert len({s.tokens for s in plan.specs}) == 1          # equal tokens for every arm


torch = pytest.importorskip("torch")


@pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="torch.optim.Muon: torch >= 2.9")
@pytest.mark.parametrize("convention", ["spectral", "match_rms_adamw"])
def test_proxy_muon_optimizer_groups_and_one_exact_step(convention):
    pytest.importorskip("mup")
    from torch.optim._muon import _zeropower_via_newtonschulz

    from calibration.model.proxy import ProxyConfig, build_model, build_optimizer

    cfg = ProxyConfig(width=64, depth=1, head_dim=16, vocab_size=32, seq_len=8, base_width=32)
    model = build_model(cfg, seed=0)
    opt = build_optimizer(model, cfg, lr=0.01, weight_decay=0.1, kind="muon",
                          muon={"convention": convention})
    on_muon = {id(p) for g in opt.muon.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in on_muon) == (name.startswith("blocks.") and p.ndim == 2), name
    assert {g["group"] for g in opt.adamw.param_groups} == {"embedding", "block_vector",
                                                            "final_norm", "readout"}
    assert all(g["initial_lr"] == g["lr"] for g in opt.param_groups)
    down = model.blocks[0].mlp.down.weight                  # 64 x 176: fan_out < fan_in
    before = down.detach().clone()
    x = torch.randint(0, 32, (2, 8))
    model(x).float().logsumexp(-1).mean().backward()
    g = down.grad.detach().clone()
    opt.step()
    mu = MUON_DEFAULTS["momentum"]
    o = _zeropower_via_newtonschulz(g.lerp(g * (1 - mu), mu), MUON_DEFAULTS["ns_coefficients"],
                                    5, MUON_DEFAULTS["eps"])
    s = muon_update_scale(64, 176, convention)
    expected = before * (1 - 0.01 * 0.1) - 0.01 * s * o.float()
    torch.testing.assert_close(down.detach(), expected, rtol=0, atol=1e-7)


def test_proxy_muon_refuses_depth_scaling_clearly():
    pytest.importorskip("mup")
    from calibration.model.proxy import ProxyConfig, build_model, build_optimizer

    cfg = ProxyConfig(width=32, depth=2, head_dim=16, vocab_size=32, seq_len=8, base_width=32,
                      depth_alpha=1.0, base_depth=1)
    with pytest.raises(AdvisorError, match="depth"):
        build_optimizer(build_model(cfg, seed=0), cfg, lr=0.01, kind="muon")


def test_gpu_muon_plan_expands_and_shares_adamw_runs_with_gpu_lr_sweep():
    from advisor.specs.plan import load_plan

    plan = load_plan("gpu-muon-sweep")
    assert len(plan.specs) == 72 and all(s.stack for s in plan.specs)
    lr_ids = {s.run_id for s in load_plan("gpu-lr-sweep").specs}
    shared = [s for s in plan.specs if s.run_id in lr_ids]
    assert len(shared) == 24 and {s.optimizer for s in shared} == {"muadamw"}
