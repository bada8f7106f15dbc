"""The proxy model family: muP and SP coincide at the base width and scale as muP says."""
import math
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("mup")

from advisor.errors import AdvisorError
from calibration.model.proxy import (ProxyConfig, build_model, build_optimizer, compute_loss,
                               count_params)

TINY = dict(depth=2, head_dim=16, base_width=32, seq_len=32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cfg(width, par="mup", **kw):
    return ProxyConfig.from_family("proxy-llama", width=width, parameterization=par,
                                   **{**TINY, **kw})


def _train_losses(c, steps=3, lr=2 ** -6, wd=0.1):
    model = build_model(c, seed=0)
    opt = build_optimizer(model, c, lr, wd)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (4, 33), generator=g)
    out = []
    for _ in range(steps):
        loss, _ = compute_loss(model(x[:, :-1]), x[:, 1:], c.z_loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append(loss.item())
    return out


def test_mup_equals_sp_at_the_base_width():
    # Same initialisation, attention scale, output multiplier and per-group LRs at d0.
    assert _train_losses(cfg(32, "mup")) == _train_losses(cfg(32, "sp"))


def test_mup_differs_from_sp_away_from_the_base_width():
    assert _train_losses(cfg(64, "mup"), steps=1) != _train_losses(cfg(64, "sp"), steps=1)


def test_forward_maps_tokens_to_logits():
    c = cfg(64)
    model = build_model(c, seed=0)
    logits = model(torch.randint(0, 256, (3, 20)))
    assert logits.shape == (3, 20, 256)
    total, non_emb = count_params(model)
    assert total - non_emb == 2 * 256 * 64          # embedding + untied readout


def test_muadamw_groups_follow_mup_rules():
    c = cfg(128)                                    # m = 4
    model = build_model(c, seed=0)
    opt = build_optimizer(model, c, lr=0.01, weight_decay=0.1)
    by_param = {}
    for g in opt.param_groups:
        for p in g["params"]:
            by_param[id(p)] = (g["lr"], g["weight_decay"])
    named = dict(model.named_parameters())
    assert by_param[id(named["blocks.0.attn.q.weight"])] == pytest.approx((0.0025, 0.4))
    assert by_param[id(named["blocks.1.mlp.down.weight"])] == pytest.approx((0.0025, 0.4))
    assert by_param[id(named["embed.weight"])] == pytest.approx((0.01, 0.1))
    assert by_param[id(named["readout.weight"])] == pytest.approx((0.01, 0.1))
    assert by_param[id(named["norm.weight"])] == pytest.approx((0.01, 0.0))
    sp = cfg(128, "sp")
    opt_sp = build_optimizer(build_model(sp, seed=0), sp, lr=0.01, weight_decay=0.1)
    assert {g["lr"] for g in opt_sp.param_groups} == {0.01}


def test_initialisation_uses_the_base_constants():
    c = cfg(256, init_std_hidden=0.1, init_std_readout=0.16, init_std_embed=0.02)  # m = 8
    named = dict(build_model(c, seed=0).named_parameters())
    assert named["blocks.0.attn.q.weight"].std().item() == pytest.approx(0.1 / math.sqrt(8), rel=0.05)
    # the down projection's fan-in is the MLP width, also 8x its base
    assert named["blocks.0.mlp.down.weight"].std().item() == pytest.approx(0.1 / math.sqrt(8), rel=0.05)
    assert named["readout.weight"].std().item() == pytest.approx(0.16, rel=0.05)
    assert named["embed.weight"].std().item() == pytest.approx(0.02, rel=0.05)
    s = cfg(256, "sp", init_std_hidden=0.1)
    named = dict(build_model(s, seed=0).named_parameters())
    assert named["blocks.0.attn.q.weight"].std().item() == pytest.approx(0.1, rel=0.05)


def test_attention_scale_is_one_over_d_head_under_mup():
    # fixed number of heads: head size grows with width
    assert cfg(32, n_heads=2).softmax_scale == pytest.approx(1 / math.sqrt(16))
    assert cfg(128, n_heads=2).softmax_scale == pytest.approx(4 / 64)     # sqrt(16) / 64
    assert cfg(128, "sp", n_heads=2).softmax_scale == pytest.approx(1 / 8)


@pytest.mark.parametrize("extra", [dict(qk_norm=True), dict(z_loss=1e-4),
                                   dict(tied_embeddings=True), dict(depth_alpha=1.0),
                                   dict(n_heads=2)])
def test_family_options_build_and_train(extra):
    losses = _train_losses(cfg(64, **extra), steps=3, lr=2 ** -7)
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0]


def test_depth_scaling_multiplies_branches_and_hidden_lr():
    c = cfg(32, depth=8, base_depth=2, depth_alpha=1.0)
    assert c.residual_mult == pytest.approx(0.25)
    model = build_model(c, seed=0)
    opt = build_optimizer(model, c, lr=0.01)
    assert min(g["lr"] for g in opt.param_groups) == pytest.approx(0.01)   # (L/L0)^0
    c = cfg(32, depth=8, base_depth=2, depth_alpha=0.5)
    opt = build_optimizer(build_model(c, seed=0), c, lr=0.01)
    assert min(g["lr"] for g in opt.param_groups) == pytest.approx(0.005)  # (L/L0)^-1/2


@pytest.mark.parametrize("kw, msg", [
    (dict(width=40), "does not divide width 40"),
    (dict(width=64, n_heads=3), "heads do not divide"),
    (dict(width=64, parameterization="ntk"), "parameterization"),
    (dict(width=64, init_std_hidden=-1.0), "init_std_hidden"),
])
def test_unbuildable_configs_are_rejected(kw, msg):
    kw = {**TINY, **kw}
    width = kw.pop("width")
    with pytest.raises(AdvisorError, match=msg):
        ProxyConfig.from_family("proxy-llama", width=width, **kw)


def test_unknown_family_and_setting():
    with pytest.raises(AdvisorError, match="unknown model family"):
        ProxyConfig.from_family("no-such-family", width=64)
    with pytest.raises(AdvisorError, match="unknown model setting"):
        ProxyConfig.from_family("proxy-llama", width=64, dropout=0.1)


def test_store_plan_and_package_import_without_torch():
    code = ("import sys, calibration, advisor.runs.store, advisor.runs.summary; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
