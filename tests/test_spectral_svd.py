"""Top singular values by batched block Lanczos (calibration/spectral/svd.py), against a
full SVD; the CuPy path against the NumPy path on a GPU."""
import numpy as np
import pytest

from advisor.errors import AdvisorError
from calibration.spectral.svd import (batched_top_singular_values, full_svd_top,
                                      top_singular_values)


def _cuda_available():
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


gpu = [pytest.mark.gpu, pytest.mark.skipif(not _cuda_available(), reason="needs CuPy and a CUDA GPU")]


def _spectra(rng):
    """Matrices whose spectra make power iteration hard and easy."""
    gauss = rng.standard_normal((3, 400, 300))                     # tiny gap at the top
    ortho = np.stack([np.linalg.qr(rng.standard_normal((200, 150)))[0] for _ in range(2)])  # all 1
    low_rank = (np.einsum("bi,bj->bij", rng.standard_normal((2, 300)), rng.standard_normal((2, 250)))
                + 0.05 * rng.standard_normal((2, 300, 250)))       # large gap
    u, _ = np.linalg.qr(rng.standard_normal((2, 256, 256)))
    v, _ = np.linalg.qr(rng.standard_normal((2, 256, 256)))
    power_law = (u * np.arange(1, 257) ** -0.5) @ v.swapaxes(1, 2)  # trained-weight-like decay
    return {"gaussian": gauss, "orthonormal": ortho, "rank1+noise": low_rank, "power-law": power_law}


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-3), (np.float64, 1e-5), (np.float32, 1e-3)])
def test_top_values_within_tolerance_of_full_svd(dtype, tol):
    rng = np.random.default_rng(0)
    for name, stack in _spectra(rng).items():
        A = stack.astype(dtype)
        k = 1 if name == "rank1+noise" else 3
        res = batched_top_singular_values(A, k=k, tol=tol)
        for a, r in zip(A, res):
            ref = np.linalg.svd(a.astype(np.float64), compute_uv=False)[:k]
            assert r.converged, name
            err = np.max(np.abs(r.values - ref) / ref)
            assert err <= tol, f"{name}: relative error {err:.2e} > {tol:.0e}"
            assert np.all(r.values <= ref * (1 + 1e-5)), "Ritz values are lower bounds"


def test_wide_and_tall_matrices_and_mixed_shapes_in_one_call():
    rng = np.random.default_rng(1)
    mats = {"tall": rng.standard_normal((300, 80)), "wide": rng.standard_normal((80, 300)),
            "square": rng.standard_normal((128, 128)), "tall2": rng.standard_normal((300, 80)),
            "tiny": rng.standard_normal((5, 3))}
    res = top_singular_values(mats, k=2, tol=1e-4)
    ref = full_svd_top(mats, k=2)
    assert list(res) == list(mats)
    for name in mats:
        np.testing.assert_allclose(res[name].values, ref[name], rtol=1e-4)


def test_a_matrix_smaller_than_the_block_is_solved_exactly():
    A = np.random.default_rng(2).standard_normal((1, 9, 3))
    (r,) = batched_top_singular_values(A, k=3, block=4)
    np.testing.assert_allclose(r.values, np.linalg.svd(A[0], compute_uv=False), rtol=1e-12)
    assert r.converged and r.iterations == 1


def test_zero_matrix_has_zero_singular_values():
    (r,) = batched_top_singular_values(np.zeros((1, 50, 40)), k=1)
    assert r.values[0] == 0.0 and r.converged


def test_warm_start_from_previous_vectors_saves_iterations():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((4, 300, 300))
    cold = batched_top_singular_values(A, tol=1e-4)
    A2 = A + 1e-3 * rng.standard_normal(A.shape)          # one small training step later
    warm_vecs = np.stack([r.vectors for r in cold])
    warm = batched_top_singular_values(A2, tol=1e-4, warm_start=warm_vecs)
    cold2 = batched_top_singular_values(A2, tol=1e-4)
    assert sum(r.iterations for r in warm) < 0.7 * sum(r.iterations for r in cold2)
    for a, r in zip(A2, warm):
        ref = np.linalg.svd(a, compute_uv=False)[0]
        assert abs(r.top - ref) / ref <= 1e-4


def test_converged_matrices_leave_the_batch_and_keep_their_answers():
    rng = np.random.default_rng(4)
    easy = np.einsum("bi,bj->bij", rng.standard_normal((3, 200)), rng.standard_normal((3, 200)))
    easy += 1e-3 * rng.standard_normal(easy.shape)
    hard = rng.standard_normal((1, 200, 200))
    res = batched_top_singular_values(np.concatenate([easy, hard]), tol=1e-5)
    assert max(r.iterations for r in res[:3]) < res[3].iterations
    for a, r in zip(np.concatenate([easy, hard]), res):
        ref = np.linalg.svd(a, compute_uv=False)[0]
        assert abs(r.top - ref) / ref <= 1e-5


def test_unresolvable_small_values_are_not_reported_as_converged():
    # sigma_2 / sigma_1 ~ 1e-4: below what A^T A resolves in float32.
    rng = np.random.default_rng(5)
    A = (np.outer(rng.standard_normal(200), rng.standard_normal(100))
         + 1e-4 * rng.standard_normal((200, 100))).astype(np.float32)
    (r,) = batched_top_singular_values(A[None], k=2)
    assert not r.converged


def test_torch_tensors_are_read_in_place_and_bf16_is_promoted():
    torch = pytest.importorskip("torch")
    from calibration.spectral.svd import as_array

    t = torch.randn(64, 32)
    a = as_array(t)
    assert np.shares_memory(a, t.numpy())
    b = as_array(t.to(torch.bfloat16))
    assert b.dtype == np.float32
    res = top_singular_values({"w": t}, tol=1e-6)
    ref = torch.linalg.svdvals(t.double())[0].item()
    assert abs(res["w"].top - ref) / ref < 1e-6


def test_bad_input_is_refused_with_one_line():
    with pytest.raises(AdvisorError):
        top_singular_values({"v": np.ones(5)})
    with pytest.raises(AdvisorError):
        top_singular_values({"i": np.ones((3, 3), dtype=np.int64)})
    with pytest.raises(AdvisorError):
        batched_top_singular_values(np.ones((1, 4, 4)), tol=0)




@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available(), reason="needs CuPy and a CUDA GPU")
def test_cupy_path_matches_numpy_path_and_full_svd(dtype):
    import cupy
    import torch

    rng = np.random.default_rng(6)
    mats = {f"m{i}": rng.standard_normal((512, 384)).astype(dtype) for i in range(6)}
    mats["odd"] = rng.standard_normal((256, 700)).astype(dtype)
    on_cpu = top_singular_values(mats, k=2, tol=1e-4)
    on_gpu_cupy = top_singular_values({n: cupy.asarray(a) for n, a in mats.items()}, k=2, tol=1e-4)
    on_gpu_torch = top_singular_values({n: torch.from_numpy(a).cuda() for n, a in mats.items()},
                                       k=2, tol=1e-4)   # zero-copy through DLPack
    ref = full_svd_top(mats, k=2)
    for n in mats:
        for res in (on_cpu, on_gpu_cupy, on_gpu_torch):
            np.testing.assert_allclose(res[n].values, ref[n], rtol=1e-4)
        # Same start vectors, same algorithm: same iteration counts up to rounding.
        assert abs(on_cpu[n].iterations - on_gpu_cupy[n].iterations) <= 2
