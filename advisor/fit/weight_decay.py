"""Weight decay through the AdamW timescale (Power Lines: Bergsma et al. 2025, arXiv:2505.13738).

AdamW with coupled weight decay (PyTorch: each step shrinks weights by lr * lambda) averages
over the last tau_iter = 1 / (lr * lambda) steps; as a fraction of a run of D / B steps that is

    tau = B / (lr * lambda * D)         (B and D in tokens)

and Power Lines finds the optimal tau a power law in tokens per parameter, tau* = c TPP^m.
Here tau is computed at each cell's optimum (LR, batch and lambda from the per-cell fits) and
the power law is fitted across cells. The law-set form ``adamw_timescale`` turns it back into
lambda = B / (lr * tau* * D) with the set's own LR and batch laws.
"""
from __future__ import annotations

import numpy as np

from advisor.errors import AdvisorError
from advisor.fit.powerlaw import PowerLaw, fit_power_law

MIN_CELLS = 3


def timescale(batch_tokens, lr, weight_decay, D):
    """tau = B / (lr * lambda * D): the AdamW averaging window as a fraction of training."""
    return np.asarray(batch_tokens, float) / (np.asarray(lr, float)
                                              * np.asarray(weight_decay, float)
                                              * np.asarray(D, float))


def fit_timescale_law(optima) -> PowerLaw:
    """tau*(TPP) = c * TPP^m from cells whose weight decay was swept (CellOptimum list)."""
    cells = [o for o in optima if "weight_decay" in o.optimum]
    if len(cells) < MIN_CELLS:
        raise AdvisorError(f"the weight-decay (AdamW timescale) law needs at least {MIN_CELLS} "
                           f"cells with at least 3 weight decays each, got {len(cells)}")
    tau, tpp = [], []
    for o in cells:
        b = o.optimum.get("batch_size", o.best_run.get("batch_size"))
        if b is None:
            raise AdvisorError("the weight-decay law needs the batch size of each cell")
        tau.append(float(timescale(b, o.optimum["learning_rate"], o.optimum["weight_decay"],
                                   o.D)))
        tpp.append(o.D / o.N)
    return fit_power_law(np.array(tau), {"TPP": np.array(tpp)}, what="AdamW timescale")
