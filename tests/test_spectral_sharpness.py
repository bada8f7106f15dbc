"""Sharpness (calibration/spectral/sharpness.py): three HVP methods against each other and
against a dense Hessian; Lanczos and power iteration; Adam's preconditioned sharpness."""
import numpy as np
import pytest
import torch

from advisor.errors import AdvisorError
from calibration.spectral import example_factory as ef
from calibration.spectral.sharpness import (METHODS, HVP, adam_step_scale, adam_threshold,
                                            full_hessian, lm_loss, model_hvp, sharpness_report,
                                            top_eigenvalue)


def _trained_tiny(dtype, steps=20, width=8, vocab=16, seq=8):
    """A GPT small enough for a dense Hessian (~1100 parameters), trained a little on a
    fixed pattern so that the Hessian is not the one at initialisation."""
    torch.manual_seed(0)
    model, opt = ef.build(width, depth=1, vocab=vocab, seq_len=seq, lr=0.01)
    model = model.to(dtype)
    x = torch.randint(0, vocab, (4, seq))
    y = (3 * x + 1) % vocab
    for _ in range(steps):
        opt.zero_grad()
        lm_loss(model(x), y).backward()
        opt.step()
    return model, opt, (x, y)


def _real_text_batch(batch=8, seq=64):
    from calibration.train.data import load_data
    data = load_data("stdlib")
    rng = np.random.default_rng(0)
    starts = rng.integers(0, len(data.train) - seq - 1, size=batch)
    chunk = torch.from_numpy(np.stack([data.train[s:s + seq + 1].astype(np.int64) for s in starts]))
    return chunk[:, :-1], chunk[:, 1:]


def test_all_methods_match_the_dense_hessian_in_float64():
    model, _, batch = _trained_tiny(torch.float64)
    H = full_hessian(model_hvp(model, lm_loss, batch))
    top = np.linalg.eigvalsh(H.numpy())[-1]
    for method in METHODS:
        e = top_eigenvalue(model_hvp(model, lm_loss, batch, method=method), tol=1e-6)
        assert e.converged
        assert abs(e.value - top) / top < 1e-3, method


def test_autodiff_methods_match_the_dense_hessian_in_float32():
    model, _, batch = _trained_tiny(torch.float32)
    H = full_hessian(model_hvp(model, lm_loss, batch))
    top = np.linalg.eigvalsh(H.double().numpy())[-1]
    for method in ("double_backward", "jvp"):
        e = top_eigenvalue(model_hvp(model, lm_loss, batch, method=method), tol=1e-5)
        assert abs(e.value - top) / top < 1e-4, method


def test_methods_agree_within_2_percent_on_real_text_in_float32():
    torch.manual_seed(1)
    model, opt = ef.build(32, depth=2, seq_len=64)
    batch = _real_text_batch()
    for _ in range(10):
        opt.zero_grad()
        lm_loss(model(batch[0]), batch[1]).backward()
        opt.step()
    values = {m: top_eigenvalue(model_hvp(model, lm_loss, batch, method=m), tol=1e-4).value
              for m in METHODS}
    ref = values["double_backward"]
    assert ref > 0
    for m, v in values.items():
        assert abs(v - ref) / ref < 0.02, (m, values)


def test_power_iteration_agrees_with_lanczos_when_the_top_eigenvalue_dominates():
    model, _, batch = _trained_tiny(torch.float64)
    hvp = model_hvp(model, lm_loss, batch)
    lan = top_eigenvalue(hvp, "lanczos", tol=1e-8)
    pw = top_eigenvalue(hvp, "power", tol=1e-9, max_iter=500)
    assert abs(pw.value - lan.value) / lan.value < 1e-5
    assert lan.products <= pw.products


def test_preconditioned_operator_has_the_eigenvalues_of_the_scaled_hessian():
    model, opt, batch = _trained_tiny(torch.float64)
    hvp = model_hvp(model, lm_loss, batch)
    H = full_hessian(hvp).numpy()
    s = adam_step_scale(opt, hvp.params).numpy()
    ref = np.linalg.eigvalsh(np.sqrt(s)[:, None] * H * np.sqrt(s)[None, :])[-1]
    got = top_eigenvalue(hvp, scale=torch.from_numpy(s), tol=1e-7).value
    assert abs(got - ref) / abs(ref) < 1e-5


def test_report_compares_with_the_stability_thresholds():
    model, opt, batch = _trained_tiny(torch.float64)
    rep = sharpness_report(model, batch, opt)
    assert set(rep) == {"sharpness", "gd_stability", "adam_sharpness", "adam_stability"}
    assert rep["adam_stability"] == pytest.approx(rep["adam_sharpness"] / 38.0)
    assert adam_threshold(0.9) == pytest.approx(38.0)
    # MuAdamW gives every group the same LR in this model only at the base width; here the
    # LR-weighted GD sharpness must not exceed max(lr) * sharpness / 2.
    max_lr = max(g["lr"] for g in opt.param_groups)
    assert rep["gd_stability"] <= max_lr * rep["sharpness"] / 2 * (1 + 1e-3)


def test_adam_preconditioner_before_any_step_is_refused():
    model, _ = ef.build(8, depth=1, vocab=16, seq_len=8)
    opt = torch.optim.AdamW(model.parameters())
    with pytest.raises(AdvisorError):
        adam_step_scale(opt, list(model.parameters()))


def test_unknown_method_is_refused():
    model, _ = ef.build(8, depth=1, vocab=16, seq_len=8)
    with pytest.raises(AdvisorError):
        HVP(lambda: torch.zeros(()), list(model.parameters()), method="magic")
