"""check-spectral on Muon-trained models (issue 16's gap): Float32Muon is torch.optim.Muon with a
float32 Newton-Schulz; sharpness works with Muon groups (no ``betas``); the check records which
layers Muon steps and blames them with Muon's own advice. The zoo's Muon entries (one correct,
two broken) run in tests/test_spectral_zoo.py with the rest of the zoo."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("mup")

from calibration.model.proxy import MuonWithAdamW  # noqa: E402
from calibration.train.muon_float32 import Float32Muon  # noqa: E402
from calibration.spectral import example_factory as ef  # noqa: E402
from calibration.spectral.blame import blame  # noqa: E402
from calibration.spectral.invariance import CheckResult, Row, muon_layers  # noqa: E402
from calibration.spectral.sharpness import (full_hessian, lm_loss, model_hvp,  # noqa: E402
                                            sharpness_report)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _mats(seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(a, b, generator=g).to(dtype))
            for a, b in ((24, 8), (8, 24), (16, 16))]


def _run(opt_cls, params, steps=3, **kw):
    groups = [{"params": params[:2], "lr": 0.02, "adjust_lr_fn": "match_rms_adamw"},
              {"params": params[2:], "lr": 0.01, "weight_decay": 0.1}]
    opt = opt_cls(groups, lr=0.02, weight_decay=0.0, nesterov=True, **kw)
    g = torch.Generator().manual_seed(7)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g).to(p.dtype)
        opt.step()
    return [p.detach().clone() for p in params], opt


def test_float32_muon_is_torch_muon_term_by_term():
    ref, ref_opt = _run(torch.optim.Muon, _mats())
    same, opt = _run(Float32Muon, _mats(), ns_dtype=None)          # torch's bfloat16 cast
    assert isinstance(opt, torch.optim.Muon)
    for a, b in zip(ref, same):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6)
    for p, q in zip(ref_opt.param_groups[0]["params"], opt.param_groups[0]["params"]):
        torch.testing.assert_close(opt.state[q]["momentum_buffer"],
                                   ref_opt.state[p]["momentum_buffer"], rtol=0, atol=0)


def test_float32_muon_is_closer_to_exact_than_torch_bfloat16():
    exact, _ = _run(Float32Muon, _mats(dtype=torch.float64), ns_dtype=torch.float64)
    f32, _ = _run(Float32Muon, _mats(), ns_dtype=torch.float32)
    bf16, _ = _run(torch.optim.Muon, _mats())
    err32 = max(float((a.double() - e).abs().max()) for a, e in zip(f32, exact))
    err16 = max(float((a.double() - e).abs().max()) for a, e in zip(bf16, exact))
    assert err32 < 1e-5 < err16


def _tiny_muon_model(muon_cls=torch.optim.Muon, adam=True, steps=5):
    torch.manual_seed(0)
    model, _ = ef.build(8, depth=1, vocab=16, seq_len=8)
    model = model.double()
    mats = [p for n, p in model.named_parameters() if p.ndim == 2 and "blocks" in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim == 2 and "blocks" in n)]
    muon = muon_cls(mats, lr=0.02, weight_decay=0.0)
    opt = MuonWithAdamW(muon, torch.optim.AdamW(rest, lr=0.01)) if adam else muon
    if not adam:
        for p in rest:
            p.requires_grad_(False)
    x = torch.randint(0, 16, (4, 8))
    y = (3 * x + 1) % 16
    for _ in range(steps):
        opt.zero_grad()
        lm_loss(model(x), y).backward()
        opt.step()
    return model, opt, (x, y), mats


def test_sharpness_with_muon_and_adamw_groups_is_the_adam_part_of_the_hessian():
    model, opt, batch, mats = _tiny_muon_model()
    rep = sharpness_report(model, batch, opt, tol=1e-8)
    assert {"sharpness", "gd_stability", "adam_sharpness", "adam_stability",
            "adam_fraction"} <= set(rep)
    assert all(np.isfinite(v) for v in rep.values())
    # against a dense eigensolve: D^1/2 H D^1/2 with D = lr / (sqrt(v_hat) + eps) on the
    # AdamW-stepped entries and 0 on Muon's
    hvp = model_hvp(model, lm_loss, batch)
    H = full_hessian(hvp).numpy()
    muon_ids = {id(p) for p in mats}
    d = []
    for p in hvp.params:
        if id(p) in muon_ids:
            d.append(np.zeros(p.numel()))
            continue
        st = opt.adamw.state[p]
        v_hat = st["exp_avg_sq"] / (1 - 0.999 ** float(st["step"]))
        d.append((0.01 / (v_hat.sqrt() + 1e-8)).reshape(-1).numpy())
    d = np.sqrt(np.concatenate(d))
    ref = np.linalg.eigvalsh(d[:, None] * H * d[None, :])[-1]
    assert rep["adam_sharpness"] == pytest.approx(ref, rel=1e-4)
    n_muon = sum(p.numel() for p in mats)
    assert rep["adam_fraction"] == pytest.approx(1 - n_muon / hvp.dim)


def test_sharpness_with_muon_alone_leaves_the_adam_figures_out():
    model, opt, batch, _ = _tiny_muon_model(adam=False)
    rep = sharpness_report(model, batch, opt)
    assert set(rep) == {"sharpness", "gd_stability"}
    assert rep["gd_stability"] > 0


def test_the_check_names_the_layers_muon_steps():
    model, opt, _, mats = _tiny_muon_model(steps=1)
    names = muon_layers(model, opt)
    assert names and all(n.startswith("blocks.") for n in names)
    assert muon_layers(model, torch.optim.AdamW(model.parameters())) == []


def _result(muon):
    rows = [Row("blocks.0.mlp.fc", "update_op", 0.5, "FAIL", [1, 1, 1], "", 0.45, 0.55,
                "hidden"),
            Row("wte", "update_op", -1.0, "FAIL", [1, 1, 1], "", -1.05, -0.95, "input")]
    return CheckResult([32, 64, 128], 20, 0.3, rows, 4,
                       muon_layers=["blocks.0.mlp.fc", "wte"] if muon else [])


def test_blame_gives_muon_advice_for_layers_on_muon():
    on_muon = {c.name: c.line() for c in blame(_result(True))}
    on_adam = {c.name: c.line() for c in blame(_result(False))}
    assert "sqrt(fan_out/fan_in)" in on_muon["hidden-lr"]
    assert "keep it on AdamW" in on_muon["embedding"]
    assert "divide their Adam LR" in on_adam["hidden-lr"]
    assert "Muon" not in on_adam["embedding"]
    assert _result(True).to_dict()["muon_layers"] == ["blocks.0.mlp.fc", "wte"]
