"""The one registry of schedule-law forms: name -> constants, bounds, evaluation, fitter hooks.

Every place that needs to know what a schedule law is reads :data:`FORMS`: the fitter
(:mod:`advisor.schedule.fitting`: which procedure, the first stage, the grid of starts,
the tissue law's annealing momenta), the law file (:mod:`advisor.schedule.lawfile`:
which constants a file must hold and what makes them valid) and prediction (both a
fit's and a loaded law's). No code tests a law by its name.

Forms (LRs are divided by the fit's ``lr_scale``, the peak LR of the fitted curves):

- ``multipower``: Luo et al. 2025, arXiv 2503.12811 (:mod:`advisor.schedule.multipower`);
  ``rho`` is a fitting option (forward area sum u^rho, 1 = the published law).
- ``tissue``: Tissue et al. 2024, arXiv 2408.11029 (:mod:`advisor.schedule.tissue`);
  ``lam``, the momentum of the annealing area, is chosen by the fitter from ``LAMS``.
- ``valley``: ours (:mod:`advisor.schedule.valley`); fitted exactly on a grid, with
  ``rho`` among its constants.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from advisor.schedule import multipower, tissue, valley

DEFAULT_LAM = 0.999     # tissue: the paper's annealing momentum, where none was chosen


@dataclass(frozen=True)
class ScheduleForm:
    """One schedule-law form and how it is fitted.

    ``params``: the constants in ``theta`` order; ``log_params``: those fitted on a log
    scale (positive); ``bounds``: {constant: (lo, hi)} of the others (None: open);
    ``fitter``: ``"least_squares"`` (first stage, grid of starts, trust-region refine, see
    :func:`advisor.schedule.fitting.fit_law`) or ``"grid"`` (the form's own exact
    ``fit_grid``). Hooks (None where the fitter does not use them):

    - ``plan(u, steps, rho, lam)``: what the module's ``predict``/``value_and_jac`` need
      for normalised LRs ``u`` (index = step) at ``steps``;
    - ``first_stage(u, st, rho, lam)``: (forward area S1, annealing regressor) at steps
      ``st``, with which the law is linear in (L0, A, B or C) once alpha is fixed;
    - ``starts(base, plans)``: starting points of the refine from the first stage's
      (L0, A, alpha, B or C);
    - ``lams(lam_option)``: the annealing momenta the fitter tries ([None]: none);
    - ``check(params, lam)``: extra validity rules of a law file's constants (the reason,
      or None).

    ``reference``: where the form comes from (a paper, or ``ours`` with ``ours`` True).
    """

    name: str
    module: object                  # the form's evaluation: predict (and value_and_jac)
    params: tuple
    log_params: tuple
    bounds: dict
    fitter: str
    reference: str
    # fitter hooks (see above)
    plan: Callable | None = None
    first_stage: Callable | None = None
    starts: Callable | None = None
    lams: Callable = field(default=lambda lam_option: [None])
    check: Callable = field(default=lambda params, lam: None)
    ours: bool = False          # a form of this project, not from a paper
    #: The constants that set the curve's shape (exponents, time constants), as opposed to
    #: its level and amplitudes: what a fit at one peak LR can lend one at another
    #: (``FitOptions.fix``), leaving the level and amplitudes to the new LR's curves.
    shape: tuple = ()

    def predict(self, theta, u, steps, *, rho: float = 1.0, lam=None) -> np.ndarray:
        """Loss (nats) at ``steps`` for normalised per-step LRs ``u`` (index = step)."""
        steps = np.asarray(steps, dtype=np.int64)
        if self.plan is None:
            return self.module.predict(theta, u, steps)
        return self.module.predict(theta, self.plan(u, steps, rho, lam))


# multi-power (Luo et al. 2025): rho is a fitting option; no annealing momentum
def _mp_plan(u, steps, rho, lam):
    return multipower.make_plan(u, steps, rho=rho)


def _mp_first_stage(u, st, rho, lam):
    # the loss drop at saturation (G = 1) is eta_peak - eta_t
    return np.cumsum(np.where(u > 0, u, 0.0) ** rho)[st], -(u.max() - u[st])


def _mp_starts(base, plans):
    return multipower.starts(base)


# tissue (Tissue et al. 2024): the annealing momentum lam is chosen from tissue.LAMS
def _tissue_plan(u, steps, rho, lam):
    return tissue.make_plan(u, steps, lam=DEFAULT_LAM if lam is None else lam)


def _tissue_first_stage(u, st, rho, lam):
    p = tissue.make_plan(u, st, lam=lam)
    return p.S1, -p.S2


def _tissue_starts(base, plans):
    s2max = max(float(np.max(np.abs(p.S2))) for p in plans)
    return tissue.starts(base, s2max) + [base]


def _tissue_lams(lam_option):
    return [lam_option] if lam_option else list(tissue.LAMS)


def _tissue_check(params, lam):
    if not isinstance(lam, (int, float)) or isinstance(lam, bool) or not 0 < lam < 1:
        return "a tissue law needs lam in (0, 1)"
    return None


def _valley_check(params, lam):
    if not 0 < params["p"] <= 3:
        return f"a valley law needs p in (0, 3], got {params['p']!r}"
    if not 0 < params["rho"] <= 2:
        return "a valley law needs rho in (0, 2]"
    return None


FORMS: dict[str, ScheduleForm] = {
    "multipower": ScheduleForm(
        "multipower", multipower, multipower.PARAMS, multipower.LOG_PARAMS, multipower.BOUNDS,
        "least_squares", "Luo et al. 2025, arXiv 2503.12811", plan=_mp_plan,
        first_stage=_mp_first_stage, starts=_mp_starts,
        shape=("alpha", "C", "beta", "gamma")),
    "tissue": ScheduleForm(
        "tissue", tissue, tissue.PARAMS, tissue.LOG_PARAMS, tissue.BOUNDS, "least_squares",
        "Tissue et al. 2024, arXiv 2408.11029", plan=_tissue_plan,
        first_stage=_tissue_first_stage, starts=_tissue_starts, lams=_tissue_lams,
        check=_tissue_check, shape=("alpha",)),
    "valley": ScheduleForm(
        "valley", valley, valley.PARAMS, valley.LOG_PARAMS, {}, "grid",
        "ours (advisor/schedule/valley.py); river-valley picture of Wen et al. 2024, "
        "arXiv 2410.05192", check=_valley_check, ours=True,
        shape=("alpha", "p", "c")),
}
