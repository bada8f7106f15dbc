"""The optimizer-rules module (advisor/rules/optim_rules.py) and the proxy optimizer that reads it."""
import math

import pytest

from advisor.errors import AdvisorError
from advisor.rules.optim_rules import (GROUPS, all_groups, check_alpha, depth_lr_multiplier,
                                 group_multipliers, residual_multiplier)


def test_everything_is_one_at_the_base_model():
    for alpha in (0, 0.5, 1):
        for g in all_groups(1.0, 1.0, alpha):
            assert (g.lr, g.weight_decay, g.init_std, g.output, g.eps, g.residual) == (1, 1, 1, 1, 1, 1)


def test_mup_width_rules():
    h = group_multipliers("hidden", width_mult=8)
    assert (h.lr, h.weight_decay, h.init_std) == pytest.approx((1 / 8, 8, 1 / math.sqrt(8)))
    assert h.decay_per_step == pytest.approx(1.0)     # independent weight decay
    r = group_multipliers("readout", width_mult=8)
    assert (r.lr, r.output, r.init_std) == pytest.approx((1, 1 / 8, 1))
    for g in ("embedding", "block_vector", "final_norm"):
        assert group_multipliers(g, width_mult=8).lr == 1
    sp = group_multipliers("hidden", width_mult=8, width_rule="sp")
    assert (sp.lr, sp.weight_decay, sp.init_std) == (1, 1, 1)


@pytest.mark.parametrize("alpha, branch, lr", [(0, 1.0, 1.0), (0.5, 8 ** -0.5, 8 ** -0.5),
                                               (1, 1 / 8, 1.0)])
def test_depth_rules(alpha, branch, lr):
    assert residual_multiplier(8, alpha) == pytest.approx(branch)
    assert depth_lr_multiplier(8, alpha) == pytest.approx(lr)
    for g in ("hidden", "block_vector"):
        m = group_multipliers(g, 1.0, 8, alpha)
        assert (m.residual, m.lr, m.eps) == pytest.approx((branch, lr, branch))
        assert m.weight_decay == 1 and m.init_std == 1     # no depth rescaling of wd or init
    for g in ("embedding", "final_norm", "readout"):
        m = group_multipliers(g, 1.0, 8, alpha)
        assert (m.residual, m.lr, m.eps) == (1, 1, 1)


def test_width_and_depth_compose():
    m = group_multipliers("hidden", width_mult=4, depth_mult=16, alpha=0.5)
    assert m.lr == pytest.approx(1 / 4 / 4)
    assert m.decay_per_step == pytest.approx(1 / 4)   # lr*wd follows the depth LR factor
    assert m.eps_width == pytest.approx(1 / 4)        # CompleteP Eq. 40, reported only


@pytest.mark.parametrize("alpha", [0.25, 1.5, -1, float("nan"), "1", True])
def test_undefined_exponents_are_refused(alpha):
    with pytest.raises(AdvisorError, match="alpha"):
        check_alpha(alpha)


def test_bad_groups_and_multipliers_are_refused():
    with pytest.raises(AdvisorError, match="unknown parameter group"):
        group_multipliers("bias")
    with pytest.raises(AdvisorError, match="width multiplier"):
        group_multipliers("hidden", width_mult=0)
    with pytest.raises(AdvisorError, match="depth multiplier"):
        group_multipliers("hidden", depth_mult=float("inf"))
    assert set(g.group for g in all_groups()) == set(GROUPS)


# --- the proxy's optimizer reads these rules ------------------------------------------------

def _proxy(width, depth, alpha, par="mup"):
    torch = pytest.importorskip("torch")
    pytest.importorskip("mup")
    from calibration.model.proxy import ProxyConfig, build_model
    torch.set_num_threads(1)
    cfg = ProxyConfig.from_family("proxy-llama", width=width, depth=depth, head_dim=16,
                                  base_width=32, base_depth=2, seq_len=32,
                                  parameterization=par, depth_alpha=alpha)
    return cfg, build_model(cfg, seed=0)


def _by_name(model, opt):
    group_of = {id(p): g for g in opt.param_groups for p in g["params"]}
    return {n: group_of[id(p)] for n, p in model.named_parameters()}


def test_width_groups_match_mup_muadamw():
    # an independent reference: mup's own MuAdamW on the same model
    from mup import MuAdamW

    from calibration.model.proxy import build_optimizer
    cfg, model = _proxy(128, 2, None)
    ours = _by_name(model, build_optimizer(model, cfg, lr=0.01, weight_decay=0.1))
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    ref = _by_name(model, MuAdamW([{"params": decay, "weight_decay": 0.1},
                                   {"params": rest, "weight_decay": 0.0}], lr=0.01))
    for name in ours:
        assert ours[name]["lr"] == pytest.approx(ref[name]["lr"]), name
        assert ours[name]["weight_decay"] == pytest.approx(ref[name]["weight_decay"]), name


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_proxy_groups_follow_the_depth_rules(alpha):
    from calibration.model.proxy import build_optimizer
    cfg, model = _proxy(32, 16, alpha)                  # m_L = 8
    assert cfg.residual_mult == pytest.approx(residual_multiplier(8, alpha))
    assert model.blocks[3].branch_mult == pytest.approx(residual_multiplier(8, alpha))
    groups = _by_name(model, build_optimizer(model, cfg, lr=0.01, weight_decay=0.1, eps=1e-8))
    lr_in = 0.01 * depth_lr_multiplier(8, alpha)
    for name in ("blocks.5.attn.q.weight", "blocks.15.mlp.down.weight", "blocks.0.attn_norm.weight"):
        assert groups[name]["lr"] == pytest.approx(lr_in)
        assert groups[name]["eps"] == pytest.approx(1e-8 * residual_multiplier(8, alpha))
    assert groups["blocks.5.attn.q.weight"]["weight_decay"] == pytest.approx(0.1)
    assert groups["blocks.0.attn_norm.weight"]["weight_decay"] == 0.0
    for name in ("embed.weight", "readout.weight", "norm.weight"):
        assert groups[name]["lr"] == pytest.approx(0.01) and groups[name]["eps"] == 1e-8


def test_proxy_refuses_an_undefined_depth_exponent():
    pytest.importorskip("torch")
    from calibration.model.proxy import ProxyConfig
    with pytest.raises(AdvisorError, match="alpha"):
        ProxyConfig.from_family("proxy-llama", width=32, head_dim=16, base_width=32,
                                depth_alpha=0.3)


def test_weight_decay_width_rules():
    # torch weight_decay of a hidden matrix at 4x the base width, under each rule
    assert group_multipliers("hidden", width_mult=4).weight_decay == 4          # MuAdamW
    assert group_multipliers("hidden", width_mult=4, wd_rule="sqrt").weight_decay == 2
    assert group_multipliers("hidden", width_mult=4, wd_rule="none").weight_decay == 1
    # decay per step: constant under mup, 1/sqrt(m) under sqrt, 1/m under none
    assert group_multipliers("hidden", 4, wd_rule="sqrt").decay_per_step == 0.5
    assert group_multipliers("hidden", 4, wd_rule="none").decay_per_step == 0.25
    assert group_multipliers("readout", 4, wd_rule="sqrt").weight_decay == 1
    with pytest.raises(AdvisorError):
        group_multipliers("hidden", 4, wd_rule="linear")
