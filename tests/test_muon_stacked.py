"""Stacked Muon (calibration.train.stacked_optim) against torch.optim.Muon, member by member."""
import pytest

torch = pytest.importorskip("torch")
if not hasattr(torch.optim, "Muon"):
    pytest.skip("torch.optim.Muon needs torch >= 2.9", allow_module_level=True)

from advisor.errors import AdvisorError
from calibration.train.stacked_optim import (StackedMuon, muon_hypers_from_optimizers,
                                       newton_schulz_stacked)

SHAPES = {"tall": (12, 5), "wide": (4, 9), "square": (6, 6)}
MEMBERS = [  # lr, weight decay, momentum, nesterov, adjust_lr_fn
    dict(lr=0.02, weight_decay=0.0, momentum=0.95, nesterov=True, adjust_lr_fn="original"),
    dict(lr=0.005, weight_decay=0.1, momentum=0.9, nesterov=False, adjust_lr_fn="match_rms_adamw"),
    dict(lr=0.04, weight_decay=0.01, momentum=0.8, nesterov=True, adjust_lr_fn="match_rms_adamw"),
]


def _members(dtype):
    gen = torch.Generator().manual_seed(0)
    init = {n: torch.randn(3, *s, generator=gen, dtype=dtype) for n, s in SHAPES.items()}
    singles = [{n: torch.nn.Parameter(init[n][k].clone()) for n in SHAPES} for k in range(3)]
    opts = [torch.optim.Muon(list(singles[k].values()), **MEMBERS[k]) for k in range(3)]
    stacked = {n: init[n].clone().requires_grad_(True) for n in SHAPES}
    return singles, opts, stacked


def _run(dtype, ns_dtype, atol):
    singles, opts, stacked = _members(dtype)
    hypers, (coeffs, steps, eps, addmm) = muon_hypers_from_optimizers(singles, opts)
    assert hypers["tall"].adjust[1] == pytest.approx(0.2 * 12 ** 0.5)
    assert hypers["wide"].adjust[0] == 1.0 and hypers["tall"].adjust[0] == pytest.approx(
        (12 / 5) ** 0.5)
    smuon = StackedMuon(stacked, hypers, coeffs, steps, eps, ns_dtype=ns_dtype, use_addmm=addmm)
    gen = torch.Generator().manual_seed(1)
    sched = [1.0, 0.7, 0.3, 0.0, 0.5, 1.0]
    for t, mult in enumerate(sched):
        grads = {n: torch.randn(3, *s, generator=gen, dtype=dtype) for n, s in SHAPES.items()}
        scale = torch.tensor([mult, mult, 0.0 if t == 2 else mult], dtype=dtype)
        for k in range(3):
            for g in opts[k].param_groups:
                g["lr"] = MEMBERS[k]["lr"] * float(scale[k])
            for n in SHAPES:
                singles[k][n].grad = grads[n][k].clone()
            opts[k].step()
        for n in SHAPES:
            stacked[n].grad = grads[n].clone()
        smuon.step(scale)
        for k in range(3):
            for n in SHAPES:
                torch.testing.assert_close(stacked[n][k].detach(), singles[k][n].detach(),
                                           rtol=0, atol=atol)
                buf = opts[k].state[singles[k][n]]["momentum_buffer"]
                torch.testing.assert_close(smuon.state[n]["buf"][k], buf, rtol=0,
                                           atol=1e-15 if dtype == torch.float64 else 1e-6)
    # the run actually moved the weights (a test that could not fail otherwise)
    assert (stacked["tall"][0] - _members(dtype)[2]["tall"][0]).abs().max() > 1e-3


def test_stacked_muon_equals_torch_muon_in_float64(monkeypatch):
    """torch.optim.Muon's own code with its bfloat16 cast turned into a float64 copy, against
    the batched iteration in float64: equal term by term to float64 rounding."""
    monkeypatch.setattr(torch.Tensor, "bfloat16", lambda self: self.clone())
    _run(torch.float64, torch.float64, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_stacked_muon_follows_torch_muon_in_bfloat16(dtype):
    """The default path, bfloat16 Newton-Schulz as torch's: batched and per-matrix bfloat16
    matmuls may round one unit (2^-8 relative) apart, so weights agree to within a few
    bfloat16 units of the largest step (lr 0.04 x adjust 1.55 x entries <~ 1)."""
    _run(dtype, None, atol=0.04 * 1.6 * 2 ** -7)


def test_batched_newton_schulz_orthogonalises():
    gen = torch.Generator().manual_seed(2)
    u = torch.randn(4, 16, 8, generator=gen, dtype=torch.float64)
    o = newton_schulz_stacked(u, (3.4445, -4.7750, 2.0315), 5, 1e-7, dtype=torch.float64)
    sv = torch.linalg.svdvals(o)
    assert sv.shape == (4, 8)
    assert float(sv.min()) > 0.5 and float(sv.max()) < 1.5   # Keller Jordan's band, not exactly 1


def test_muon_settings_must_agree_across_the_stack():
    singles, _, _ = _members(torch.float64)
    opts = [torch.optim.Muon(list(singles[k].values()), ns_steps=5 if k else 3) for k in range(3)]
    with pytest.raises(AdvisorError, match="Newton-Schulz"):
        muon_hypers_from_optimizers(singles, opts)
    with pytest.raises(AdvisorError, match="torch.optim.Muon only"):
        muon_hypers_from_optimizers(singles, [torch.optim.SGD(list(s.values()), lr=0.1)
                                              for s in singles])


def test_a_stack_of_muon_runs_follows_each_run_alone(monkeypatch):
    """Through the engine (RunSpec -> train_stack vs train_run), float64 throughout (Muon's
    bfloat16 cast made a float64 copy in both paths): equal curves, different conventions,
    LRs, momenta and schedules in one stack."""
    import dataclasses

    pytest.importorskip("mup")
    from calibration.train.data import load_data
    from calibration.train.group import train_stack
    from advisor.specs.runspec import RunSpec
    from calibration.train.group import train_group
    from calibration.train.single import train_run

    monkeypatch.setattr(torch.Tensor, "bfloat16", lambda self: self.clone())
    old, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    try:
        base = RunSpec(width=32, depth=2, batch_size=4, seq_len=16, tokens=4 * 16 * 12,
                       eval_interval=6, eval_sequences=8, optimizer="muon", stack=True,
                       model=(("base_width", 16), ("head_dim", 16)))
        specs = [dataclasses.replace(base, lr=0.02, weight_decay=0.1),
                 dataclasses.replace(base, lr=0.004, muon_convention="match_rms_adamw",
                                     muon_momentum=0.9, muon_nesterov=False,
                                     schedule="cosine:warmup=2")]
        data = load_data("stdlib")
        stacked = train_stack(specs, data, "cpu")
        for spec, got in zip(specs, stacked):
            alone = train_run(spec, data, "cpu")
            assert got.status == alone.status == "finished", (got.error, alone.error)
            assert len(got.curve["val_loss"]) == 2
            # losses are computed in float32 (calibration.model.proxy.compute_loss) on both paths
            for key in ("train_loss", "val_loss"):
                for a, b in zip(got.curve[key], alone.curve[key]):
                    assert a == pytest.approx(b, rel=2e-6)
        assert stacked[0].curve["val_loss"][-1] != stacked[1].curve["val_loss"][-1]
        grouped = train_group(specs, data, "cpu")        # muon is stackable: delegated
        assert [r.curve["val_loss"] for r in grouped] == [r.curve["val_loss"] for r in stacked]
    finally:
        torch.set_default_dtype(old)
        torch.set_num_threads(threads)


def test_both_newton_schulz_forms_agree_in_float64():
    """torch versions with a ``use_addmm`` group setting (False by default) use separate
    products and sums: the same iteration, rounded differently."""
    gen = torch.Generator().manual_seed(3)
    u = torch.randn(2, 10, 7, generator=gen, dtype=torch.float64)
    coeffs = (3.4445, -4.7750, 2.0315)
    fused = newton_schulz_stacked(u, coeffs, 5, 1e-7, dtype=torch.float64, use_addmm=True)
    plain = newton_schulz_stacked(u, coeffs, 5, 1e-7, dtype=torch.float64, use_addmm=False)
    torch.testing.assert_close(fused, plain, rtol=0, atol=1e-12)
    assert fused.shape == u.shape
