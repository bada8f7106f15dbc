"""What a reader hands over: one run's logged steps, losses and (where logged) LR and grad norm.

Steps count optimizer updates; losses are training losses in nats per token; the LR is
absolute. Every reader returns a :class:`RunLog` built by :func:`make_log`, which refuses
(one :class:`~advisor.errors.AdvisorError` line) what no analysis can use: steps that do
not increase, non-finite losses, too few points.

The column and key names that readers recognise live here, once (:data:`KEYS`).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from advisor.errors import AdvisorError

#: Recognised names of each quantity, in order of preference (compared case-insensitively,
#: after stripping a W&B export's "<run name> - " prefix). Hugging Face's Trainer logs
#: loss/learning_rate/grad_norm; nanoGPT, torchtitan and Lightning use the others.
KEYS = {
    "step": ("step", "_step", "global_step", "iter", "iteration", "trainer/global_step"),
    "loss": ("loss", "train_loss", "train/loss", "loss/train", "training_loss", "lm_loss",
             "train/lm_loss", "train/loss_step", "train_loss_step"),
    "lr": ("lr", "learning_rate", "train/learning_rate", "train/lr", "lr-adamw", "lr/group_0",
           "optimizer/lr", "lr-AdamW", "train/lr_group_0"),
    "grad_norm": ("grad_norm", "train/grad_norm", "gradient_norm", "grad-norm",
                  "optimizer/grad_norm", "train/gradient_norm"),
    # the largest attention or output logit, where a trainer logs it (Wortsman et al. 2023)
    "logit": ("max_logit", "train/max_logit", "max_attn_logit", "attn_logit_max",
              "logits/max", "output_logit_max", "max_output_logit"),
}
#: Optional quantities beside step and loss, in reading order.
OPTIONAL = ("lr", "grad_norm", "logit")
MIN_POINTS = 8          # fewer logged losses than this cannot support a fit


@dataclass
class RunLog:
    """One run's log, validated (see :func:`make_log`).

    ``lr``, ``grad_norm`` and ``logit`` (the largest logit) are None when the log does not
    have them, else arrays aligned with ``steps`` (NaN where that row did not log them).
    """

    steps: np.ndarray
    loss: np.ndarray
    lr: np.ndarray | None
    grad_norm: np.ndarray | None
    source: str
    fmt: str
    keys: dict = field(default_factory=dict)     # quantity -> the key it was read from
    logit: np.ndarray | None = None

    @property
    def last_step(self) -> int:
        return int(self.steps[-1])


def pick_key(names, quantity: str, chosen: str | None = None, where: str = "") -> str | None:
    """Which of ``names`` holds ``quantity``: ``chosen`` if given (it must exist), else the
    first name of :data:`KEYS` present. Several W&B runs in one export are refused."""
    names = list(names)
    if chosen is not None:
        if chosen not in names:
            raise AdvisorError(f"{where}: no {chosen!r} in the log (it has: "
                               f"{', '.join(map(str, names[:20]))})")
        return chosen
    plain = {}
    for n in names:
        if n.endswith(("__MIN", "__MAX")):
            continue
        base = n.split(" - ", 1)[1] if " - " in n else n
        plain.setdefault(base.strip().lower(), []).append(n)
    for k in KEYS[quantity]:
        hits = plain.get(k.lower())
        if hits:
            if len(hits) > 1:
                raise AdvisorError(f"{where}: several runs log {k} ({', '.join(hits)}); pick "
                                   f"one with --{quantity.replace('_', '-')}-key")
            return hits[0]
    return None


def to_float(v) -> float:
    """A logged value as a float; '' / None -> NaN (not logged); 'nan', 'inf' kept."""
    if v is None:
        return math.nan
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    s = str(v).strip()
    if not s:
        return math.nan
    return float(s)           # ValueError for garbage: the reader names the line


def make_log(steps, loss, lr=None, grad_norm=None, *, source: str, fmt: str,
             keys: dict | None = None, missing=None, logit=None) -> RunLog:
    """Validate and build a :class:`RunLog`.

    Rows whose loss was not logged (``missing`` True: an empty cell, a key absent from a
    JSON line) are dropped; a loss logged as NaN or inf is refused, naming the step.
    """
    steps = np.asarray(steps, dtype=np.float64)
    loss = np.asarray(loss, dtype=np.float64)
    if missing is not None:
        keep = ~np.asarray(missing, dtype=bool)
        steps, loss = steps[keep], loss[keep]
        lr = None if lr is None else np.asarray(lr, dtype=np.float64)[keep]
        grad_norm = None if grad_norm is None else np.asarray(grad_norm, dtype=np.float64)[keep]
        logit = None if logit is None else np.asarray(logit, dtype=np.float64)[keep]
    if len(steps) < MIN_POINTS:
        raise AdvisorError(f"{source}: only {len(steps)} logged losses; a forecast needs at "
                           f"least {MIN_POINTS}")
    if not np.all(np.isfinite(steps)) or np.any(steps != np.round(steps)) or steps.min() < 0:
        raise AdvisorError(f"{source}: steps must be whole numbers >= 0")
    steps = steps.astype(np.int64)
    d = np.diff(steps)
    if np.any(d <= 0):
        i = int(np.argmax(d <= 0))
        raise AdvisorError(f"{source}: steps are not strictly increasing (step "
                           f"{int(steps[i + 1])} follows {int(steps[i])}); a resumed run "
                           f"repeats steps: keep one segment per step")
    bad = ~np.isfinite(loss)
    if bad.any():
        i = int(np.argmax(bad))
        raise AdvisorError(f"{source}: loss is {loss[i]} at step {int(steps[i])} "
                           f"({int(bad.sum())} such rows); a non-finite loss means the run "
                           f"diverged there or the log is corrupt: this tool reads finite "
                           f"losses only (cut the log before step {int(steps[i])})")
    if np.any(loss <= 0):
        raise AdvisorError(f"{source}: loss must be positive (nats per token)")
    if steps[0] == 0:          # a loss logged before the first update: not on the LR curve
        steps, loss = steps[1:], loss[1:]
        lr = None if lr is None else lr[1:]
        grad_norm = None if grad_norm is None else grad_norm[1:]
        logit = None if logit is None else logit[1:]
    if lr is not None:
        lr = np.asarray(lr, dtype=np.float64)
        if np.all(np.isnan(lr)):
            lr = None
        else:
            ok = np.isfinite(lr)
            if np.any(np.isinf(lr)) or np.any(lr[ok] < 0):
                raise AdvisorError(f"{source}: the LR column has negative or infinite values")
            if np.nanmax(lr) <= 0:
                raise AdvisorError(f"{source}: the LR is zero throughout")
    grad_norm, logit = (None if v is None or np.all(np.isnan(np.asarray(v, dtype=np.float64)))
                        else np.asarray(v, dtype=np.float64) for v in (grad_norm, logit))
    return RunLog(steps=steps, loss=loss, lr=lr, grad_norm=grad_norm, source=source, fmt=fmt,
                  keys=dict(keys or {}), logit=logit)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(s: str) -> str:
    return _ANSI.sub("", s)
