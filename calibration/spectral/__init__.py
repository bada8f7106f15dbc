"""Spectral diagnostics of muP proxies: top singular values, sharpness, width-invariance check.

Modules (each with one job):

- :mod:`calibration.spectral.svd`: top-k singular values of many matrices at once by batched
  block Lanczos, on NumPy (CPU) or CuPy (GPU) through one array-module abstraction.
- :mod:`calibration.spectral.sharpness`: top Hessian eigenvalue (and Adam's preconditioned
  one) from Hessian-vector products by double backward, forward-over-reverse, or finite
  differences of gradients.
- :mod:`calibration.spectral.probes`: per-layer statistics of a torch model (activation RMS,
  attention logits captured at ``scaled_dot_product_attention``, weight and update operator
  norms with multipliers applied outside the weight).
- :mod:`calibration.spectral.invariance`: train a family at several widths, fit per-layer
  log-log slopes against width, and give a verdict (``advisor check-spectral``).
- :mod:`calibration.spectral.callbacks`: a training callback that logs diagnostics.
- :mod:`calibration.spectral.pytest_helper`: ``assert_width_invariant`` for users' test suites.

Only :mod:`svd` is importable without torch.
"""
