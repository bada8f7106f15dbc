"""``assert_width_invariant``: the spectral width-invariance check as one line in a test suite.

    from calibration.spectral.pytest_helper import assert_width_invariant
    from mypackage.model import make_model          # width -> model or (model, optimizer)

    def test_my_model_is_width_invariant():
        assert_width_invariant(make_model, widths=(64, 128, 256), steps=20)

Fails with the report (causes first, then the failing or inconclusive rows) unless the check
passes; an inconclusive result fails too, with what would settle it (see
``calibration.spectral.invariance``). The CLI's contract options are a
:class:`calibration.spectral.contract.Contract` here, passed as ``contract=``::

    from calibration.spectral.contract import Contract
    assert_width_invariant(make_model, contract=Contract(layout="seq-first", vocab=50304,
                                                         loss_fn=my_loss, batch_fn=my_batch))
"""
from __future__ import annotations

from typing import Callable

from calibration.spectral.invariance import DEFAULT_SEEDS, DEFAULT_TOL, CheckResult, run_check


def assert_width_invariant(factory: Callable, widths=(64, 128, 256), steps: int = 20,
                           tol: float = DEFAULT_TOL, seeds: int = DEFAULT_SEEDS,
                           **kw) -> CheckResult:
    """Run the check; raise AssertionError naming the failing layers. Returns the result."""
    result = run_check(factory, widths, steps=steps, tol=tol, seeds=seeds, **kw)
    if not result.passed:
        raise AssertionError(f"width-invariance check {result.status}:\n" + result.report())
    return result
