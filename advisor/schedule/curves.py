"""Loss curves under known LR schedules: loading, validation and the per-step LR.

A :class:`Curve` is one training run seen by a schedule law: the LR of every optimizer step
(``lrs[s]`` is the LR used at step ``s``; index 0 is the LR "before" training, 0 for a
warmup that starts from zero) and the loss logged at some of those steps. Steps count
optimizer updates, not tokens. Losses are in nats per token.

Three sources:

* :func:`load_csv` -- a user's CSV with columns ``step,lr,loss`` (one row per logged step).
  Between logged rows the LR is interpolated linearly; before the first row it is assumed to
  ramp linearly from 0 (a linear warmup). Log from step 1 to avoid that assumption.
* :func:`load_multipower` -- the curves of Luo et al. 2025 (arXiv 2503.12811), whose files
  hold the LR only at logged steps; the per-step schedule is rebuilt exactly from the file
  name (see ``shared/data/external/README.md``) and checked against the logged LRs.
* :func:`load_store` -- finished runs of a calibration results store (imported lazily).
"""
from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from advisor.specs.grouping import EXECUTION_ONLY, group_key
from advisor.errors import AdvisorError

#: Multi-power-law data conventions (Luo et al. 2025, authors' loader): linear warmup from 0
#: over 2,160 steps to a peak of 3e-4; decays end at 3e-5; wsdcon drops at step 8,000.
MP_WARMUP, MP_PEAK, MP_END, MP_WSDCON_DROP, MP_WSDCON_TOTAL = 2160, 3e-4, 3e-5, 8000, 16000
MP_TRAIN = ("cosine_24000", "constant_24000", "wsdcon_9")
MP_TEST = ("constant_72000", "cosine_72000", "wsd_20000_24000", "wsdld_20000_24000",
           "wsdcon_3", "wsdcon_18")
MP_SIZES = ("25M", "100M", "400M")


@dataclass
class Curve:
    """One run: the LR at every step and the loss at logged steps.

    ``lrs[s]`` is the LR (absolute, as given) of optimizer step ``s`` for s = 0..T, so
    ``len(lrs) == T + 1``; ``steps`` are strictly increasing logged steps in 1..T and
    ``loss`` their losses (nats).
    """

    name: str
    lrs: np.ndarray
    steps: np.ndarray
    loss: np.ndarray
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.lrs = np.asarray(self.lrs, dtype=np.float64)
        self.steps = np.asarray(self.steps, dtype=np.int64)
        self.loss = np.asarray(self.loss, dtype=np.float64)
        validate_curve(self)

    @property
    def total_steps(self) -> int:
        return len(self.lrs) - 1

    @property
    def peak_lr(self) -> float:
        return float(self.lrs.max())

    @property
    def final_loss(self) -> float:
        return float(self.loss[-1])

    def ipeak(self) -> int:
        """First step at which the LR reaches its peak (the end of warmup)."""
        return int(np.argmax(self.lrs >= self.lrs.max() * (1 - 1e-9)))

    def has_annealing(self, rel_tol: float = 1e-3) -> bool:
        """True if the LR falls after having reached its peak (so annealing is observed)."""
        lr = self.lrs[: self.steps[-1] + 1]
        ipeak = int(np.argmax(lr))
        return bool(lr[ipeak:].min() < lr[ipeak] * (1 - rel_tol))


def validate_curve(c: Curve) -> None:
    """Raise AdvisorError naming the first problem with a curve (NaNs, order, gaps...)."""
    name = c.name
    if c.lrs.ndim != 1 or len(c.lrs) < 2:
        raise AdvisorError(f"curve {name}: needs the LR of at least one step")
    if c.steps.ndim != 1 or len(c.steps) != len(c.loss):
        raise AdvisorError(f"curve {name}: steps and losses differ in length")
    if len(c.steps) < 3:
        raise AdvisorError(f"curve {name}: only {len(c.steps)} logged points; need at least 3")
    if not np.all(np.isfinite(c.lrs)):
        raise AdvisorError(f"curve {name}: the LR has NaN or infinite values")
    if np.any(c.lrs < 0):
        raise AdvisorError(f"curve {name}: negative learning rate")
    if c.lrs.max() <= 0:
        raise AdvisorError(f"curve {name}: the LR is zero throughout")
    bad = ~np.isfinite(c.loss)
    if bad.any():
        raise AdvisorError(f"curve {name}: loss is NaN or infinite at step "
                           f"{int(c.steps[np.argmax(bad)])} ({int(bad.sum())} such rows)")
    if np.any(c.loss <= 0):
        raise AdvisorError(f"curve {name}: loss must be positive (nats per token)")
    d = np.diff(c.steps)
    if np.any(d <= 0):
        i = int(np.argmax(d <= 0))
        raise AdvisorError(f"curve {name}: steps are not strictly increasing "
                           f"(step {int(c.steps[i + 1])} follows {int(c.steps[i])})")
    if c.steps[0] < 1 or c.steps[-1] > c.total_steps:
        raise AdvisorError(f"curve {name}: logged steps {int(c.steps[0])}..{int(c.steps[-1])} "
                           f"fall outside the schedule's steps 1..{c.total_steps}")


def check_gaps(steps: np.ndarray, name: str, factor: float = 4.0) -> None:
    """Refuse a curve whose logging has a hole much longer than its usual spacing."""
    d = np.diff(steps)
    if len(d) == 0:
        return
    med = float(np.median(d))
    big = d > factor * max(med, 1.0)
    if big.any():
        i = int(np.argmax(big))
        raise AdvisorError(f"curve {name}: gap in the log between steps {int(steps[i])} and "
                           f"{int(steps[i + 1])} (usual spacing {med:g}); the LR there is "
                           f"unknown -- log evenly or fill the gap")


def per_step_lr(steps: np.ndarray, lr: np.ndarray) -> np.ndarray:
    """Per-step LR for steps 0..steps[-1] from LRs logged at ``steps``.

    Linear interpolation between logged steps; from 0 at step 0 up to the first logged LR.
    """
    grid = np.arange(int(steps[-1]) + 1, dtype=np.float64)
    xs = np.concatenate([[0.0], steps.astype(np.float64)]) if steps[0] > 0 else steps
    ys = np.concatenate([[0.0], lr]) if steps[0] > 0 else lr
    return np.interp(grid, xs, ys)


def _read_csv_columns(path: Path, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise AdvisorError(f"no such curve file: {path}")
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise AdvisorError(f"cannot read {path}: {exc}") from None
    if not rows:
        raise AdvisorError(f"{path}: empty file")
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in required if c not in header]
    if missing:
        raise AdvisorError(f"{path}: needs columns {', '.join(required)}; "
                           f"missing {', '.join(missing)} (header: {','.join(header)})")
    idx = [header.index(c) for c in required]
    out = {c: [] for c in required}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not x.strip() for x in row):
            continue
        for c, i in zip(required, idx):
            try:
                v = row[i].strip()
                out[c].append(float(v) if v.lower() not in ("", "nan") else math.nan)
            except (IndexError, ValueError):
                raise AdvisorError(f"{path}, line {lineno}: {c} is not a number: "
                                   f"{row[i] if i < len(row) else '(missing)'!r}") from None
    return {c: np.asarray(v, dtype=np.float64) for c, v in out.items()}


def load_csv(path, name: str | None = None) -> Curve:
    """A user's run from a CSV with columns ``step,lr,loss`` (see module docstring)."""
    path = Path(path)
    cols = _read_csv_columns(path, ("step", "lr", "loss"))
    steps, lr, loss = cols["step"], cols["lr"], cols["loss"]
    name = name or path.stem
    if len(steps) < 3:
        raise AdvisorError(f"curve {name}: only {len(steps)} rows; need at least 3")
    if not np.all(np.isfinite(steps)) or np.any(steps != np.round(steps)):
        raise AdvisorError(f"curve {name}: steps must be whole numbers")
    if not np.all(np.isfinite(lr)):
        i = int(np.argmax(~np.isfinite(lr)))
        raise AdvisorError(f"curve {name}: lr is NaN at step {int(steps[i])}")
    bad = ~np.isfinite(loss)
    if bad.any():
        raise AdvisorError(f"curve {name}: loss is NaN or infinite at step "
                           f"{int(steps[np.argmax(bad)])} ({int(bad.sum())} such rows); "
                           f"drop or repair those rows")
    st = steps.astype(np.int64)
    d = np.diff(st)
    if np.any(d <= 0):
        i = int(np.argmax(d <= 0))
        raise AdvisorError(f"curve {name}: steps are not strictly increasing "
                           f"(step {int(st[i + 1])} follows {int(st[i])})")
    if st[0] < 1:
        raise AdvisorError(f"curve {name}: steps count optimizer updates from 1; got {st[0]}")
    check_gaps(st, name)
    return Curve(name=name, lrs=per_step_lr(st, lr), steps=st, loss=loss,
                 source=str(path), meta={"kind": "csv"})


# ----------------------------------------------------------------------------------------
# Luo et al. 2025 multi-power-law curves


def multipower_lrs(name: str) -> np.ndarray:
    """Per-step LRs (steps 0..T-1) of a schedule of Luo et al. 2025, from its file name.

    Conventions of the authors' loader (thu-yao-01-luo/MultiPowerLaw): ``linspace(0, peak,
    2160)`` warmup over steps 0..2159; cosine from the peak at step 2160 to 3e-5 at step T;
    wsd: geometric decay from step 20,000 to 3e-5 at 24,000; wsdld: linear; wsdcon_X: X*1e-5
    from step 8,000 to 16,000.
    """
    W, peak, end = MP_WARMUP, MP_PEAK, MP_END
    warm = np.linspace(0.0, peak, W)
    m = re.fullmatch(r"(constant|cosine)_(\d+)", name)
    if m:
        T = int(m.group(2))
        if m.group(1) == "constant":
            return np.concatenate([warm, np.full(T - W, peak)])
        s = np.arange(W, T, dtype=np.float64)
        return np.concatenate([warm, end + 0.5 * (peak - end) * (1 + np.cos(np.pi * (s - W) / (T - W)))])
    m = re.fullmatch(r"(wsd|wsdld)_(\d+)_(\d+)", name)
    if m:
        D, T = int(m.group(2)), int(m.group(3))
        s = np.arange(D, T, dtype=np.float64)
        p = (s - D) / (T - D)
        dec = peak ** (1 - p) * end ** p if m.group(1) == "wsd" else peak * (1 - p) + end * p
        return np.concatenate([warm, np.full(D - W, peak), dec])
    m = re.fullmatch(r"wsdcon_(\d+)", name)
    if m:
        low = int(m.group(1)) * 1e-5
        return np.concatenate([warm, np.full(MP_WSDCON_DROP - W, peak),
                               np.full(MP_WSDCON_TOTAL - MP_WSDCON_DROP, low)])
    raise AdvisorError(f"unknown multi-power-law schedule name {name!r}")


def load_multipower(folder, name: str) -> Curve:
    """One curve of ``multipower_loss_curves/<size>/`` with its rebuilt per-step LR.

    Logged points at or beyond the schedule's last step are dropped (the authors use the last
    logged point below step 24,000). The rebuilt LR is checked against the logged LR column.
    """
    path = Path(folder) / f"{name}.csv"
    cols = _read_csv_columns(path, ("step", "lr", "loss"))
    lrs = multipower_lrs(name)
    keep = cols["step"] < len(lrs)
    steps = cols["step"][keep].astype(np.int64)
    rebuilt = lrs[steps]
    err = np.max(np.abs(rebuilt - cols["lr"][keep]) / cols["lr"][keep])
    if err > 1e-6:
        raise AdvisorError(f"{path}: rebuilt LR schedule disagrees with the logged LR "
                           f"(max relative difference {err:.2g})")
    # Our convention: lrs has length T+1 (index = step); the authors' array covers 0..T-1,
    # which is all the logged steps need.
    return Curve(name=name, lrs=lrs, steps=steps, loss=cols["loss"][keep], source=str(path),
                 meta={"kind": "multipower", "size": Path(folder).name})


def multipower_dir() -> Path:
    """``shared/data/external/multipower_loss_curves`` beside the repository."""
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "external" / \
        "multipower_loss_curves"


def load_multipower_size(size: str, names=MP_TRAIN + MP_TEST, root=None) -> dict[str, Curve]:
    root = Path(root) if root else multipower_dir()
    folder = root / size
    if not folder.is_dir():
        raise AdvisorError(f"no multi-power-law curves for size {size!r} under {root}")
    return {n: load_multipower(folder, n) for n in names}


def looks_like_multipower(path: Path) -> bool:
    return path.is_dir() and any((path / f"{n}.csv").is_file() for n in MP_TRAIN)


# ----------------------------------------------------------------------------------------
# results store


#: the settings in which the curves of one schedule law may differ (see curve_group_key)
CURVE_FREE_SETTINGS = ("schedule", "seed", "tokens") + EXECUTION_ONLY


def curve_group_key(settings: dict) -> tuple:
    """Which runs' curves one schedule law may be fitted on: equal in every setting but
    :data:`CURVE_FREE_SETTINGS` (the schedule, the seed and the horizon).

    This is not :func:`advisor.specs.grouping.stack_key`, and must not be. The stack key says which
    runs can *train together* (one model shape and batch, any LR, weight decay, schedule or
    token budget); a schedule law describes one model trained at one peak LR with one
    optimizer setting (the laws do not carry the peak LR, docs/schedules.md), so its curves
    must also agree in LR, weight decay and every optimizer constant. Every setting counts
    (``advisor.specs.grouping.group_key``), so a setting added to runs later separates curves
    by default; how a run was executed (stacked, compiled) does not.
    """
    return group_key(settings, CURVE_FREE_SETTINGS)


def load_store(path, run_ids=None, loss: str = "train_loss") -> list[Curve]:
    """Curves of finished runs in a calibration results store.

    Without ``run_ids``, the runs are grouped by :func:`curve_group_key` (everything but
    the schedule, seed and horizon: width, depth, peak LR, batch, ...) and the group with
    the most distinct schedules is taken: a schedule law describes one model at one peak LR.
    """
    try:
        from advisor.runs.store import ResultsStore
    except ImportError as exc:
        raise AdvisorError(f"reading a results store needs the calibration package: {exc}") \
            from None
    store = ResultsStore.open(path, readonly=True)
    runs = [r for r in store.runs(status="finished")]
    if run_ids:
        want = set(run_ids)
        runs = [r for r in runs if r.run_id in want]
        missing = want - {r.run_id for r in runs}
        if missing:
            raise AdvisorError(f"{path}: no finished runs {', '.join(sorted(missing))}")
    else:
        groups: dict = {}
        for r in runs:
            groups.setdefault(curve_group_key(r.settings), []).append(r)
        if not groups:
            raise AdvisorError(f"{path}: no finished runs")
        runs = max(groups.values(), key=lambda g: (len({r.settings.get("schedule") for r in g}),
                                                   len(g)))
    curves = []
    for r in runs:
        c = store.curve(r.run_id)
        y = np.asarray(c[loss], dtype=np.float64)
        ok = np.isfinite(y)
        steps = np.asarray(c["step"])[ok].astype(np.int64)
        lr = np.asarray(c["lr"], dtype=np.float64)[ok]
        if len(steps) < 3:
            continue
        check_gaps(steps, r.run_id)
        curves.append(Curve(name=f"{r.run_id}:{r.settings.get('schedule', '?')}",
                            lrs=per_step_lr(steps, lr), steps=steps, loss=y[ok],
                            source=f"{path}#{r.run_id}",
                            meta={"kind": "store", "schedule": r.settings.get("schedule"),
                                  "run_id": r.run_id}))
    if not curves:
        raise AdvisorError(f"{path}: no finished run has a logged {loss} curve")
    return curves


def load_curves(source, run_ids=None, loss: str = "train_loss") -> list[Curve]:
    """Curves from a CSV file, a multi-power-law size folder, or a results store folder."""
    p = Path(source)
    if p.is_file():
        return [load_csv(p)]
    if looks_like_multipower(p):
        names = [n for n in MP_TRAIN]
        return list(load_multipower_size(p.name, names, root=p.parent).values())
    if p.is_dir():
        return load_store(p, run_ids=run_ids, loss=loss)
    raise AdvisorError(f"no such curves: {source} (a CSV of step,lr,loss or a results store)")
