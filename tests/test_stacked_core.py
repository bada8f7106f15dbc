"""The stacked engine's parts on their own: vmapped forward, StackedAdamW, divergence, K.

Specification: K models stacked along a leading axis and stepped together are, member by
member, the same models trained one at a time by PyTorch's AdamW with the muP parameter
groups that ``calibration.model.proxy.build_optimizer`` makes (float64, so any difference is a bug
rather than rounding).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("mup")

from advisor.errors import AdvisorError  # noqa: E402
from advisor.rules.lr_schedule import parse_schedule  # noqa: E402
from calibration.model.proxy import ProxyConfig, build_model, build_optimizer  # noqa: E402
from calibration.train.stacked import (StackedModel, clip_member_grads, split_evenly,  # noqa: E402
                                 stack_size_from_memory)
from calibration.train.stacked_optim import StackedAdamW, hypers_from_optimizers  # noqa: E402

STEPS = 12
BATCH = 3


@pytest.fixture(autouse=True)
def _float64():
    old, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)     # tiny models only lose from threading
    yield
    torch.set_default_dtype(old)
    torch.set_num_threads(threads)


def tiny_cfg(width=64, parameterization="mup"):
    # base width 32, so a width-64 model has m = 2 and muP's multipliers are not all 1.
    return ProxyConfig.from_family("proxy-llama", width=width, depth=2, head_dim=16,
                                   base_width=32, seq_len=16, vocab_size=64,
                                   parameterization=parameterization)


def batch_for(seed, step, cfg):
    """Learnable sequences: arithmetic progressions mod vocab, random start and stride 1-3."""
    g = torch.Generator().manual_seed(1000 * seed + step)
    start = torch.randint(0, cfg.vocab_size, (BATCH, 1), generator=g)
    stride = torch.randint(1, 4, (BATCH, 1), generator=g)
    x = (start + stride * torch.arange(cfg.seq_len + 1)) % cfg.vocab_size
    return x[:, :-1], x[:, 1:]


def ce64(logits, y):
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


MEMBERS = [  # (lr, weight_decay, seed, schedule)
    (1e-2, 0.1, 0, "wsd:warmup=3,cooldown=0.3"),
    (3e-3, 0.0, 1, "cosine:warmup=2"),
    (3e-2, 1.0, 2, "constant"),
]


def train_alone(cfg, lr, wd, seed, schedule, clip=1.0):
    model = build_model(cfg, seed=seed)
    opt = build_optimizer(model, cfg, lr, wd)
    mult = parse_schedule(schedule).multipliers(STEPS)
    losses = []
    for t in range(1, STEPS + 1):
        for g in opt.param_groups:
            g["lr"] = g["initial_lr"] * mult[t - 1]
        x, y = batch_for(seed, t, cfg)
        loss = ce64(model(x), y)
        opt.zero_grad()
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        losses.append(loss.item())
    return losses, {n: p.detach() for n, p in model.named_parameters()}


def make_stack(cfg, members):
    models = [build_model(cfg, seed=s) for _, _, s, _ in members]
    opts = [build_optimizer(m, cfg, lr, wd) for m, (lr, wd, _, _) in zip(models, members)]
    hypers, betas = hypers_from_optimizers([dict(m.named_parameters()) for m in models], opts)
    stack = StackedModel(models)
    return stack, StackedAdamW(stack.params, hypers, betas)


def train_stacked(cfg, members, clip=1.0, poison=None):
    """Train all members as one stack; ``poison=(k, step)`` sets member k's weights to NaN
    before that step (a stand-in for a member that blew up)."""
    stack, opt = make_stack(cfg, members)
    mults = torch.tensor(np.stack([parse_schedule(s).multipliers(STEPS) for *_, s in members]))
    mapped = stack.vmapped(lambda fwd, x, y: ce64(fwd(x), y), batched_extra=2)
    loss_fn = lambda x, y: mapped(stack.params, stack.buffers, x, y)
    active = torch.ones(len(members), dtype=torch.bool)
    curves = []
    for t in range(1, STEPS + 1):
        if poison and poison[1] == t:
            with torch.no_grad():
                for p in stack.params.values():
                    p[poison[0]].fill_(float("nan"))
        xs, ys = zip(*(batch_for(seed, t, cfg) for _, _, seed, _ in members))
        losses = loss_fn(torch.stack(xs), torch.stack(ys))
        newly = active & ~torch.isfinite(losses.detach())
        if newly.any():
            active &= ~newly
            stack.zero_members(newly)
            opt.reset_members(newly)
            losses = loss_fn(torch.stack(xs), torch.stack(ys))
        opt.zero_grad()
        torch.where(active, losses, torch.zeros_like(losses)).sum().backward()
        if clip:
            clip_member_grads(stack.parameters(), clip)
        opt.step(mults[:, t - 1] * active)
        curves.append(losses.detach().clone())
    return torch.stack(curves).T.numpy(), stack, active


def test_members_of_a_stack_train_exactly_as_alone():
    cfg = tiny_cfg()
    curves, stack, _ = train_stacked(cfg, MEMBERS)
    for k, member in enumerate(MEMBERS):
        alone, params = train_alone(cfg, *member)
        np.testing.assert_allclose(curves[k], alone, rtol=0, atol=1e-10)
        for n, p in params.items():
            np.testing.assert_allclose(stack.params[n][k].detach().numpy(), p.numpy(),
                                       rtol=0, atol=1e-10, err_msg=n)
    # and they did train: every member's loss fell from about ln(vocab)
    assert (curves[:, -1] < curves[:, 0] - 0.05).all()
    assert abs(curves[0, 0] - math.log(cfg.vocab_size)) < 0.5


def test_standard_parameterisation_stacks_too():
    cfg = tiny_cfg(parameterization="sp")
    curves, _, _ = train_stacked(cfg, MEMBERS[:2], clip=0)
    for k, member in enumerate(MEMBERS[:2]):
        alone, _ = train_alone(cfg, *member, clip=0)
        np.testing.assert_allclose(curves[k], alone, rtol=0, atol=1e-10)


def test_a_diverged_member_stops_and_the_others_go_on():
    cfg = tiny_cfg()
    curves, stack, active = train_stacked(cfg, MEMBERS, poison=(1, 5))
    assert active.tolist() == [True, False, True]
    for k in (0, 2):
        alone, _ = train_alone(cfg, *MEMBERS[k])
        np.testing.assert_allclose(curves[k], alone, rtol=0, atol=1e-10)
    # the stopped member is inert: zero weights, finite everywhere, not moved after stopping
    for p in stack.params.values():
        assert torch.isfinite(p).all()
        assert (p[1] == 0).all()


def test_muP_multipliers_come_from_the_single_model_optimizer():
    cfg = tiny_cfg(width=128)      # m = 128 / 32 = 4
    model = build_model(cfg, seed=0)
    opt = build_optimizer(model, cfg, lr=0.01, weight_decay=0.1)
    hypers, betas = hypers_from_optimizers([dict(model.named_parameters())], [opt])
    m = cfg.width_mult
    assert m == 4
    q = hypers["blocks.0.attn.q.weight"]
    assert q.lr == [pytest.approx(0.01 / m)]               # hidden matrix: LR / m
    assert q.lr[0] * q.weight_decay[0] == pytest.approx(0.01 * 0.1)   # decay per step kept
    assert hypers["embed.weight"].lr == [pytest.approx(0.01)]
    assert hypers["readout.weight"].lr == [pytest.approx(0.01)]
    assert hypers["blocks.0.attn_norm.weight"].weight_decay == [0.0]
    assert betas == (0.9, 0.95)


def test_stacked_tensors_lose_infshape_but_the_readout_keeps_its_multiplier():
    cfg = tiny_cfg(width=128)
    models = [build_model(cfg, seed=s) for s in (0, 1)]
    x = torch.randint(0, cfg.vocab_size, (2, BATCH, cfg.seq_len))
    expected = torch.stack([m(x[k]) for k, m in enumerate(models)]).detach()
    stack = StackedModel(models)
    out = stack.vmapped(lambda fwd, xb: fwd(xb))(stack.params, stack.buffers, x)
    np.testing.assert_allclose(out.detach().numpy(), expected.numpy(), rtol=0, atol=1e-12)


def test_members_must_share_a_shape():
    with pytest.raises(AdvisorError, match="identical parameter shapes"):
        StackedModel([build_model(tiny_cfg(64), seed=0), build_model(tiny_cfg(128), seed=0)])


def test_per_member_clipping_matches_torch_clip_grad_norm():
    torch.manual_seed(0)
    grads = [torch.randn(3, 5, 4), torch.randn(3, 7)]
    params = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    norms = clip_member_grads(params, 1.0)
    for k in range(3):
        single = [g[k].clone().requires_grad_() for g in grads]
        for s, g in zip(single, grads):
            s.grad = g[k].clone()
        total = torch.nn.utils.clip_grad_norm_(single, 1.0)
        assert norms[k].item() == pytest.approx(total.item(), rel=1e-12)
        for s, p in zip(single, params):
            np.testing.assert_allclose(p.grad[k].numpy(), s.grad.numpy(), rtol=1e-12)


def test_stack_size_from_free_memory():
    gib = 2 ** 30
    # 60 GiB free, 2 GiB fixed, 3 GiB per member: 0.85 * 60 = 51 -> (51 - 2) / 3 = 16
    assert stack_size_from_memory(40, 60 * gib, 3 * gib, 2 * gib) == 16
    assert stack_size_from_memory(8, 60 * gib, 3 * gib, 2 * gib) == 8      # fewer members
    assert stack_size_from_memory(40, 1 * gib, 3 * gib) == 1               # never below one
    assert stack_size_from_memory(500, 80 * gib, 1, cap=64) == 64
    with pytest.raises(AdvisorError):
        stack_size_from_memory(0, gib, gib)


def test_split_evenly_balances_chunks():
    assert [len(c) for c in split_evenly(list(range(10)), 4)] == [4, 3, 3]
    assert split_evenly(list(range(5)), 8) == [[0, 1, 2, 3, 4]]
    assert sum(split_evenly(list(range(17)), 5), []) == list(range(17))


class _MLP(torch.nn.Module):
    """Not the proxy: any module with mup base shapes stacks the same way."""

    def __init__(self, width):
        super().__init__()
        from mup import MuReadout

        self.inp = torch.nn.Linear(8, width)
        self.hidden = torch.nn.Linear(width, width)
        self.out = MuReadout(width, 3)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(torch.relu(self.inp(x)))))


def test_an_arbitrary_mup_module_stacks_with_MuAdamW():
    from mup import MuAdamW, set_base_shapes

    def build(seed):
        torch.manual_seed(seed)
        m = _MLP(64)
        set_base_shapes(m, _MLP(16), delta=_MLP(32))
        return m

    lrs, seeds = [0.03, 0.01, 0.003], [0, 1, 2]
    x = torch.randn(3, 10, 8, generator=torch.Generator().manual_seed(9))
    y = torch.randint(0, 3, (3, 10), generator=torch.Generator().manual_seed(8))
    expected = []
    for k in range(3):
        m = build(seeds[k])
        opt = MuAdamW(m.parameters(), lr=lrs[k], weight_decay=0.1)
        for _ in range(5):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(x[k]), y[k]).backward()
            opt.step()
        expected.append(m.hidden.weight.detach())
    models = [build(s) for s in seeds]
    opts = [MuAdamW(m.parameters(), lr=lr, weight_decay=0.1) for m, lr in zip(models, lrs)]
    hypers, betas = hypers_from_optimizers([dict(m.named_parameters()) for m in models], opts)
    assert hypers["hidden.weight"].lr == pytest.approx([lr / 4 for lr in lrs])  # m = 64/16
    stack = StackedModel(models)
    opt = StackedAdamW(stack.params, hypers, betas)
    loss = stack.vmapped(lambda fwd, xb, yb: torch.nn.functional.cross_entropy(fwd(xb), yb),
                         batched_extra=2)
    for _ in range(5):
        opt.zero_grad()
        loss(stack.params, stack.buffers, x, y).sum().backward()
        opt.step(torch.ones(3))
    for k in range(3):
        np.testing.assert_allclose(stack.params["hidden.weight"][k].detach().numpy(),
                                   expected[k].numpy(), rtol=0, atol=1e-12)
