"""TensorBoard event files, read with tensorboard's own event reader.

``path`` is an event file or a folder of them (a run's log dir; sub-folders are not
merged: point at the run's folder). Needs the ``tensorboard`` package; ``advisor run``
checks for it before reading (:mod:`advisor.cli.deps`). Scalars come from ``add_scalar``
(simple values) or TF2 ``tf.summary.scalar`` (tensors); tags are matched like CSV columns
(:data:`advisor.schedule.inflight.log.KEYS`), e.g. ``train/loss``, ``train/learning_rate``.
A step logged twice (a resumed run writes a new file) keeps the last value written.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from advisor.errors import AdvisorError
from advisor.schedule.inflight.log import OPTIONAL, RunLog, make_log, pick_key


def _scalars(acc, tag) -> dict[int, float]:
    out = {}
    tags = acc.Tags()
    if tag in tags.get("scalars", []):
        for e in acc.Scalars(tag):
            out[int(e.step)] = float(e.value)
    elif tag in tags.get("tensors", []):
        from tensorboard.util import tensor_util
        for e in acc.Tensors(tag):
            out[int(e.step)] = float(np.asarray(tensor_util.make_ndarray(e.tensor_proto)))
    return out


def read(path: Path, keys: dict) -> RunLog:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = Path(path)
    files = sorted(path.glob("*tfevents*")) if path.is_dir() else [path]
    if not files:
        raise AdvisorError(f"{path}: no TensorBoard event files (*tfevents*) in this folder")
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
    try:
        acc.Reload()
    except Exception as exc:  # the reader raises its own types on a corrupt record
        raise AdvisorError(f"{path}: cannot read the event file(s): {exc}") from None
    tags = acc.Tags()
    names = list(tags.get("scalars", [])) + list(tags.get("tensors", []))
    if not names:
        raise AdvisorError(f"{path}: the event files hold no scalars")
    cols = {q: pick_key(names, q, keys.get(q), str(path)) for q in ("loss",) + OPTIONAL}
    if cols["loss"] is None:
        raise AdvisorError(f"{path}: no loss tag (tags: {', '.join(names[:20])}); name it "
                           f"with --loss-key")
    series = {q: _scalars(acc, t) for q, t in cols.items() if t}
    steps = sorted(series["loss"])
    col = {q: [s.get(st, np.nan) for st in steps] for q, s in series.items()}
    return make_log(steps, col["loss"], col.get("lr"), col.get("grad_norm"), logit=col.get("logit"),
                    source=str(path), fmt="tensorboard",
                    keys={q: t for q, t in cols.items() if t})
