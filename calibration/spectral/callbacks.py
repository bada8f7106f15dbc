"""A training callback (``calibration.train.single.train_run(..., callbacks=[...])``) that logs
spectral diagnostics at chosen steps; what it returns is stored with the run.

At each step s in ``steps`` (after that step's optimizer update) it returns, per 2-D weight
(effective matrix, see ``probes``), ``sv/<name>`` = sigma_max(W) / sqrt(fan_out / fan_in)
(the Yang-Simon-Bernstein scale), ``dsv/<name>`` = the same for the update over the last
``window`` steps (when step s - window was seen), and with ``sharpness=True`` the entries of
``sharpness.sharpness_report`` on the step's batch. Top singular values come from the batched
Lanczos solver, warm-started from the previous call's vectors.
"""
from __future__ import annotations

import math


class SpectralCallback:
    """``on_step(step, model, optimizer, batch) -> dict | None``."""

    def __init__(self, steps, window: int = 1, sharpness: bool = False, tol: float = 1e-3):
        self.steps = sorted(set(int(s) for s in steps))
        self.window = int(window)
        self.sharpness = sharpness
        self.tol = tol
        self._snap = {}
        self._warm = {}
        if self.window < 1:
            from advisor.errors import AdvisorError
            raise AdvisorError("window must be at least one step")

    def on_step(self, step, model, optimizer, batch):
        from calibration.spectral import probes
        from calibration.spectral.svd import top_singular_values

        wanted = step in self.steps
        if step + self.window in self.steps:
            self._snap[step + self.window] = probes.snapshot_weights(model)
        if not wanted:
            return None
        mats = probes.snapshot_weights(model)
        out = {}
        sv = top_singular_values(mats, tol=self.tol, warm_start=self._warm)
        self._warm = {n: r.vectors for n, r in sv.items()}
        for name, m in mats.items():
            fan_out, fan_in = m.shape
            out[f"sv/{name}"] = sv[name].top / math.sqrt(fan_out / fan_in)
        prev = self._snap.pop(step, None)
        if prev is not None:
            dsv = top_singular_values({n: mats[n] - prev[n] for n in mats}, tol=self.tol)
            for name, m in mats.items():
                fan_out, fan_in = m.shape
                out[f"dsv/{name}"] = dsv[name].top / math.sqrt(fan_out / fan_in)
        if self.sharpness:
            from calibration.spectral.sharpness import sharpness_report

            out.update(sharpness_report(model, batch, optimizer, tol=self.tol))
        return out
