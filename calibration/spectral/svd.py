"""Top singular values of many matrices at once: batched block Lanczos on NumPy or CuPy.

One algorithm, written against an array module ``xp`` (``numpy`` on a CPU, ``cupy`` on a
GPU), so the CPU path that the tests exercise is the GPU path. Torch tensors are taken
without a copy: CPU tensors through ``Tensor.numpy()``, CUDA tensors through DLPack
(``cupy.from_dlpack``).

Method
------
For a batch of same-shape matrices A (b, m, n), oriented so that n <= m, run block Lanczos on
A^T A with block size p: each iteration reads every matrix twice (W = A Q_j, Z = W^T A, in
row layout), orthogonalises Z against the whole basis (two passes of classical Gram-Schmidt),
and extends the projected matrix T = Q^T A^T A Q, kept on the host in float64. The Ritz values
of T (the largest eigenvalues of a banded matrix, ``scipy.linalg.eig_banded``) are lower
bounds on sigma_i^2 that increase with every iteration. A matrix stops when its top-k
Ritz values have converged to the requested relative tolerance (see
:func:`_estimated_error`); converged matrices drop out of the batch, which is compacted
(one copy of the still-active matrices) once at most half of it is active. A warm start
(right singular vectors from a previous call, e.g. the previous training step) seeds the
first block.

Cost: 2 x (bytes of the matrices) of memory traffic per iteration (the bound that the
benchmark compares against), plus O(n d p) for orthogonalisation with a basis of d vectors,
plus host work on d x d banded matrices every ``check_every`` iterations.

Everything small (Gram matrices of blocks, T, its eigenproblem) is done on the host in
float64; the device only runs matrix products, so the CuPy path needs nothing beyond
``matmul``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from advisor.errors import AdvisorError


# --------------------------------------------------------------------------------------
# Array-module abstraction
# --------------------------------------------------------------------------------------

def get_array_module(x) -> Any:
    """``cupy`` for a CuPy array, else ``numpy``."""
    mod = type(x).__module__
    if mod.startswith("cupy"):
        import cupy

        return cupy
    return np


def to_host(x) -> np.ndarray:
    """A NumPy copy (CuPy) or the array itself (NumPy)."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "get"):
        return x.get()
    return np.asarray(x)


def as_array(x):
    """A NumPy or CuPy view of ``x`` (a torch tensor, NumPy or CuPy array), copying only when
    the dtype has to change (float16/bfloat16 are promoted to float32; integers refused).

    CUDA tensors go through DLPack into CuPy without a copy; CPU tensors through ``.numpy()``.
    """
    if type(x).__module__.startswith("torch"):
        import torch

        t = x.detach()
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.float()
        if not t.is_floating_point():
            raise AdvisorError(f"singular values need a floating-point matrix, got {t.dtype}")
        if t.is_cuda:
            import cupy

            return cupy.from_dlpack(t)
        return t.cpu().numpy()
    xp = get_array_module(x)
    a = xp.asarray(x)
    if a.dtype.kind != "f":
        if a.dtype.kind in "iub":
            raise AdvisorError(f"singular values need a floating-point matrix, got {a.dtype}")
        raise AdvisorError(f"unsupported matrix dtype {a.dtype}")
    if a.dtype.itemsize < 4:
        a = a.astype(xp.float32)
    return a


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------

@dataclass
class SpectralResult:
    """Top singular values of one matrix.

    ``values``: the k largest singular values, descending (float64, Ritz values: each is a
    lower bound that the solver drove to within ``tol`` relative error). ``vectors``: p
    right Ritz vectors, rows of an (p, n_min) array in the orientation the solver used
    (pass it back as a warm start). ``error``: the estimated relative error of the values
    when the solver stopped. ``iterations``: Lanczos iterations (each reads the matrix
    twice). ``converged``: whether ``error <= tol`` (or the Krylov space became invariant).
    """

    values: np.ndarray
    vectors: Any = field(repr=False)
    error: float
    iterations: int
    converged: bool

    @property
    def top(self) -> float:
        return float(self.values[0])


# --------------------------------------------------------------------------------------
# Host-side helpers (float64)
# --------------------------------------------------------------------------------------

def _orthonormalize(xp, Z, scale2, rel_drop):
    """Orthonormalise the rows of each Z[i] (b, p, n) by two passes of eigh-based
    Gram orthogonalisation; rows along directions weaker than ``rel_drop`` times the
    reference norm sqrt(scale2[i]) become zero (they carry only rounding noise).

    Returns (Q (b, p, n) on the device, R (b, p, p) float64 on the host) with Z = R^T Q
    (row form of Z^T = Q^T R).
    """
    b, p, _ = Z.shape
    R = np.broadcast_to(np.eye(p), (b, p, p)).copy()
    Q = Z
    for pass_ in range(2):
        G = to_host(xp.matmul(Q, Q.swapaxes(1, 2))).astype(np.float64)
        G = 0.5 * (G + G.swapaxes(1, 2))
        w, U = np.linalg.eigh(G)                       # ascending
        ref = scale2[:, None] if pass_ == 0 else 1.0   # second pass: rows are unit or zero
        keep = w > (rel_drop ** 2) * ref
        inv = np.where(keep, 1.0 / np.sqrt(np.where(keep, w, 1.0)), 0.0)
        M = U.swapaxes(1, 2) * inv[:, :, None]        # rows: Lambda^-1/2 U^T
        Q = xp.matmul(xp.asarray(M.astype(_np_dtype(Z))), Q)
        Rk = U.swapaxes(1, 2) * np.where(keep, np.sqrt(np.maximum(w, 0.0)), 0.0)[:, :, None]
        R = Rk @ R
    return Q, R


def _np_dtype(a):
    return np.dtype(str(a.dtype))


def _top_ritz(T_band_rows, d, p, kk):
    """Largest ``kk`` eigenpairs of one symmetric banded matrix given as lower band rows.

    ``T_band_rows`` is (2p, d): row r holds T[i + r, i]. Returns (values descending,
    vectors (d, kk)).
    """
    from scipy.linalg import eig_banded

    kk = min(kk, d)
    w, v = eig_banded(T_band_rows[:, :d], lower=True, select="i",
                      select_range=(d - kk, d - 1), check_finite=False)
    return w[::-1], v[:, ::-1]


def _estimated_error(history: list[np.ndarray], noise: float = 0.0, window: int = 3) -> float:
    """Relative error of the latest Ritz singular values, estimated from their history.

    Ritz values increase monotonically toward the true values. With successive relative
    increments delta_i (max over the top k) shrinking geometrically at rate r, the distance
    still to go is about delta * r / (1 - r) (Aitken's extrapolation). Lanczos does not
    converge at a steady rate (a Ritz value can linger near a cluster of singular values
    and then move on), so r is the *largest* of the last ``window`` ratios, and the
    estimate is infinite until ``window`` ratios exist and all are below 1. Increments at
    the rounding level (``noise``, relative) count as converged.
    """
    if len(history) < 2:
        return float("inf")
    h = np.asarray(history[-(window + 2):])
    scale = np.maximum(np.abs(h[-1]), np.finfo(float).tiny)
    deltas = np.max(np.abs(np.diff(h, axis=0)) / scale, axis=1)
    last = float(deltas[-1])
    if last <= noise:
        return last
    if len(deltas) < window + 1:
        return float("inf")
    ratios = deltas[1:] / np.maximum(deltas[:-1], np.finfo(float).tiny)
    r = float(np.max(ratios))
    if r >= 1.0:
        return float("inf")
    return max(last, last * r / (1.0 - r))


# --------------------------------------------------------------------------------------
# The batched solver
# --------------------------------------------------------------------------------------

def batched_top_singular_values(A, k: int = 1, tol: float = 1e-3, block: int = 4,
                                max_iter: int = 200, warm_start=None, check_every: int = 1,
                                seed: int = 0) -> list[SpectralResult]:
    """Top-k singular values of each matrix of a stack A (b, m, n), NumPy or CuPy.

    ``tol``: relative error of each of the k values at which a matrix stops. ``block``: the
    block size p (>= k; p vectors cost about as much memory traffic as one). ``warm_start``:
    an array (b, p', n_min) of starting vectors (rows) in the solver's orientation, e.g. the
    ``vectors`` of a previous result; missing rows are random. ``check_every``: iterations
    between convergence checks (each check is host work on every active matrix).
    Matrices are oriented so that the smaller dimension is the Krylov dimension.
    """
    xp = get_array_module(A)
    if A.ndim != 3:
        raise AdvisorError(f"expected a stack of matrices (b, m, n), got shape {A.shape}")
    b, m, n = A.shape
    if b == 0:
        return []
    if k < 1 or block < 1 or tol <= 0 or max_iter < 1 or check_every < 1:
        raise AdvisorError("need k >= 1, block >= 1, tol > 0, max_iter >= 1, check_every >= 1")
    if m < n:
        A = A.swapaxes(1, 2)
        m, n = n, m
    dtype = _np_dtype(A)
    p = min(max(block, k), n)
    k = min(k, n)
    kk = min(p, n)                         # Ritz pairs kept (k values + warm-start vectors)
    rel_drop = float(np.sqrt(np.finfo(dtype).eps))   # new directions weaker than this: noise
    noise = 10 * float(np.finfo(dtype).eps)
    safe_tol = 0.5 * tol                   # the error estimate is a heuristic: keep a margin
    iters_cap = min(max_iter, -(-n // p) + 1)
    dmax = p * (iters_cap + 1)

    # Starting block (host random so NumPy and CuPy start identically).
    rng = np.random.default_rng(seed)
    V0 = rng.standard_normal((b, p, n))
    if warm_start is not None:
        W0 = to_host(warm_start)
        if W0.ndim != 3 or W0.shape[0] != b or W0.shape[2] != n:
            raise AdvisorError(f"warm start of shape {W0.shape} does not fit ({b}, <=p, {n})")
        r = min(W0.shape[1], p)
        V0[:, :r, :] = W0[:, :r, :]
    Q0, _ = _orthonormalize(xp, xp.asarray(V0.astype(dtype)), np.ones(b), rel_drop)

    # Per-matrix state (host) and device arrays for the active batch.
    out_vals = np.zeros((b, k))
    out_vecs = [None] * b
    out_err = np.full(b, np.inf)
    out_iter = np.zeros(b, dtype=int)
    out_conv = np.zeros(b, dtype=bool)
    hist: list[list[np.ndarray]] = [[] for _ in range(b)]

    active = np.arange(b)
    A_act = A
    basis = xp.zeros((b, dmax, n), dtype=dtype)
    basis[:, :p, :] = Q0
    band = np.zeros((b, 2 * p, dmax))       # lower band of T: band[i, r, c] = T[c + r, c]
    live = np.ones(b, dtype=bool)           # active members not yet finished (the others
                                            # ride along until the batch is compacted)

    def finish(local_idx, d, converged_flags):
        """Record results of active members ``local_idx`` from the current basis size d."""
        for li, conv in zip(local_idx, converged_flags):
            gi = active[li]
            w, v = _top_ritz(band[li], d, p, kk)
            out_vals[gi, :] = np.sqrt(np.maximum(w[:k], 0.0))
            Y = xp.asarray(v.T.astype(dtype))                  # (kk, d)
            out_vecs[gi] = xp.matmul(Y, basis[li, :d, :])      # (kk, n)
            # Below sigma_1 * sqrt(rel_drop) the normal-equations product A^T A cannot
            # resolve a value in this precision: report it, but not as converged.
            floor = out_vals[gi, 0] * np.sqrt(rel_drop)
            out_conv[gi] = conv and not (k > 1 and np.any(out_vals[gi, 1:] < floor))

    j = 0
    while True:
        d = (j + 1) * p                                      # basis blocks 0..j present
        Qj = basis[:, j * p:d, :]
        W = xp.matmul(A_act, Qj.swapaxes(1, 2))              # (ba, m, p)
        Z = xp.matmul(W.swapaxes(1, 2), A_act)               # (ba, p, n) = (A^T A Q_j)^T
        ref2 = to_host(xp.max(xp.sum(Z * Z, axis=2), axis=1)).astype(np.float64)
        C = np.zeros((len(active), p, d))
        Bd = basis[:, :d, :]
        for _ in range(2):                                   # CGS2 against the whole basis
            Ck = xp.matmul(Z, Bd.swapaxes(1, 2))             # (ba, p, d)
            Z = Z - xp.matmul(Ck, Bd)
            C += to_host(Ck).astype(np.float64)
        # Column block j of T: T[0:d, jp:d] = C^T; store its lower band.
        Tcol = C.swapaxes(1, 2)                              # (ba, d, p): rows 0..d-1
        Tjj = 0.5 * (Tcol[:, j * p:d, :] + Tcol[:, j * p:d, :].swapaxes(1, 2))
        Tcol[:, j * p:d, :] = Tjj
        for c in range(p):
            col = j * p + c
            rows = Tcol[:, col:d, c]                         # T[col:d, col]
            band[:, :rows.shape[1], col] = rows
        j += 1
        exhausted = np.zeros(len(active), dtype=bool)
        if j < iters_cap:
            Qn, R = _orthonormalize(xp, Z, ref2, rel_drop)
            basis[:, d:d + p, :] = Qn
            for c in range(p):                               # T[d + r, jp + c] = R[r, c]
                col = j * p - p + c
                for r in range(p):
                    band[:, d + r - col, col] = R[:, r, c]
            exhausted = ~np.any(np.abs(R) > 0, axis=(1, 2)) & live
        at_cap = j >= iters_cap
        check = at_cap or (j % check_every == 0) or exhausted.any()
        if not check:
            continue

        done = np.zeros(len(active), dtype=bool)
        conv_flags = np.zeros(len(active), dtype=bool)
        for li in np.flatnonzero(live):
            gi = active[li]
            w, _ = _top_ritz(band[li], d, p, k)
            s = np.pad(np.sqrt(np.maximum(w, 0.0)), (0, k - len(w)))
            hist[gi].append(s)
            err = 0.0 if exhausted[li] else _estimated_error(hist[gi], noise)
            out_err[gi] = err
            out_iter[gi] = j
            if err <= safe_tol or exhausted[li] or at_cap:
                done[li] = True
                conv_flags[li] = err <= safe_tol or bool(exhausted[li])
        if done.any():
            finish(np.flatnonzero(done), d, conv_flags[done])
            live &= ~done
        if not live.any() or at_cap:
            break
        keep = np.flatnonzero(live)
        if len(keep) <= len(active) // 2:                    # compact: copy live members
            A_act = A_act[keep]
            basis = basis[keep]
            band = band[keep]
            active = active[keep]
            live = np.ones(len(keep), dtype=bool)

    results = []
    for gi in range(b):
        results.append(SpectralResult(values=out_vals[gi].copy(), vectors=out_vecs[gi],
                                      error=float(out_err[gi]), iterations=int(out_iter[gi]),
                                      converged=bool(out_conv[gi])))
    return results



# --------------------------------------------------------------------------------------
# Many matrices of mixed shapes
# --------------------------------------------------------------------------------------

def top_singular_values(matrices, k: int = 1, tol: float = 1e-3, block: int = 4,
                        max_iter: int = 200, warm_start: Mapping | None = None,
                        check_every: int = 1, seed: int = 0,
                        max_batch_bytes: int = 2 << 30):
    """Top-k singular values of many matrices (torch tensors, NumPy or CuPy arrays).

    ``matrices``: a mapping name -> matrix, or a sequence (names are then 0, 1, ...).
    Matrices with the same shape (up to transposition), dtype and device are stacked into
    batches of at most ``max_batch_bytes`` (stacking copies them once, promoting 16-bit
    floats to float32); a lone matrix is used in place. ``warm_start``: name -> the
    ``vectors`` of an earlier :class:`SpectralResult` for the same name.

    Returns a dict name -> :class:`SpectralResult` (same order as the input).
    """
    if isinstance(matrices, Mapping):
        items = list(matrices.items())
    else:
        items = list(enumerate(matrices))
    arrays = {}
    for name, mat in items:
        a = as_array(mat)
        if a.ndim != 2:
            raise AdvisorError(f"matrix {name!r} has shape {tuple(a.shape)}, expected 2-D")
        if min(a.shape) == 0:
            raise AdvisorError(f"matrix {name!r} is empty: shape {tuple(a.shape)}")
        arrays[name] = a
    groups: dict[tuple, list] = {}
    for name, a in arrays.items():
        m, n = a.shape
        key = (max(m, n), min(m, n), str(a.dtype), get_array_module(a).__name__,
               _device_id(a))
        groups.setdefault(key, []).append(name)

    results = {}
    for (big, small, _, _, _), names in groups.items():
        itemsize = arrays[names[0]].dtype.itemsize
        per = max(1, int(max_batch_bytes // max(1, big * small * itemsize)))
        for start in range(0, len(names), per):
            chunk = names[start:start + per]
            oriented = [arrays[nm] if arrays[nm].shape[0] >= arrays[nm].shape[1]
                        else arrays[nm].T for nm in chunk]
            xp = get_array_module(oriented[0])
            A = oriented[0][None] if len(chunk) == 1 else xp.stack(oriented)
            warm = None
            if warm_start:
                vecs = [warm_start.get(nm) for nm in chunk]
                vecs = [None if v is None else getattr(v, "vectors", v) for v in vecs]
                if any(v is not None for v in vecs):
                    width = max(v.shape[0] for v in vecs if v is not None)
                    W0 = np.random.default_rng(seed + 1).standard_normal((len(chunk), width, small))
                    for i, v in enumerate(vecs):
                        if v is not None:
                            vh = to_host(v)
                            if vh.shape[-1] != small:
                                raise AdvisorError(f"warm start for {chunk[i]!r} has length "
                                                   f"{vh.shape[-1]}, expected {small}")
                            W0[i, :vh.shape[0]] = vh
                    warm = W0
            res = batched_top_singular_values(A, k=k, tol=tol, block=block, max_iter=max_iter,
                                              warm_start=warm, check_every=check_every,
                                              seed=seed)
            results.update(zip(chunk, res))
    return {name: results[name] for name, _ in items}


def _device_id(a) -> int:
    dev = getattr(a, "device", None)
    return int(getattr(dev, "id", -1)) if dev is not None and not isinstance(dev, str) else -1


def full_svd_top(matrices, k: int = 1) -> dict:
    """Reference: the k largest singular values by a full SVD (LAPACK / cuSOLVER), float64
    on the host for NumPy input."""
    items = matrices.items() if isinstance(matrices, Mapping) else enumerate(matrices)
    out = {}
    for name, mat in items:
        a = as_array(mat)
        xp = get_array_module(a)
        s = xp.linalg.svd(a, compute_uv=False)
        out[name] = to_host(s[:k]).astype(np.float64)
    return out
