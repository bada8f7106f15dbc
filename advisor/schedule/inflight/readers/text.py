"""Plain-text training logs: nanoGPT, torchtitan, Megatron-style and similar console output.

A line counts when it names a step and a loss:

* nanoGPT: ``iter 100: loss 4.2345, time 12.3ms, mfu 30.1%``
* torchtitan: ``step: 10  loss:  9.1234  memory: ... tps: ...`` (ANSI colours stripped)
* generic: ``step 10 ... loss=9.12 ... lr=3e-4 ... grad_norm=1.2`` (``:``, ``=`` or space)
* Megatron: ``iteration 100/ 1000 | ... | learning rate: 3.0E-04 | lm loss: 4.5E+00 |
  grad norm: 1.2 | max attention logit: 35.1 |``

The largest logit, where a line logs it, is read for the health check: ``max_logit``,
``max logit``, ``max attention logit``, ``max_attn_logit``, ``attn_logit_max``,
``max_output_logit``, ``output_logit_max``, ``logits/max`` (with ``:``, ``=`` or a space;
the names of :data:`~advisor.schedule.inflight.log.KEYS` ``["logit"]`` and their spaced
forms). A line with several (attention and output) gives the largest.

Evaluation lines (``val loss``, ``eval_loss``, ``validation``) are skipped: nanoGPT's
``step 2000: train loss 2.9, val loss 3.0`` would otherwise repeat step 2000.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from advisor.errors import AdvisorError
from advisor.schedule.inflight.log import RunLog, make_log, strip_ansi

_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf|-inf|NaN|Inf)"
STEP = re.compile(r"\b(?:iter|step|iteration)\b\s*[:=]?\s*(\d+)", re.I)
LOSS = re.compile(r"(?<![\w/])(?:train[_ ]?)?loss\b\s*[:=]?\s*" + _NUM, re.I)
LR = re.compile(r"\b(?:lr|learning[_ ]rate)\b\s*[:=]?\s*" + _NUM, re.I)
GN = re.compile(r"\bgrad[_ ]?norm\b\s*[:=]?\s*" + _NUM, re.I)
LOGIT = re.compile(r"(?<![\w/])(?:max[_ ](?:(?:attn|attention|output)[_ ])?logits?"
                   r"|(?:attn|attention|output)[_ ]logits?[_ ]max|logits/max)"
                   r"\s*[:=]?\s*" + _NUM, re.I)
EVAL = re.compile(r"\b(?:val|valid|validation|eval|test)[_ /]?loss\b", re.I)


def read(path: Path, keys: dict) -> RunLog:
    if any(keys.get(q) for q in keys):
        raise AdvisorError("--*-key options apply to CSV, JSONL, HF and TensorBoard logs, not "
                           "to text logs")
    steps, loss, lr, gn, lg = [], [], [], [], []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                line = strip_ansi(line)
                if EVAL.search(line):
                    continue
                s, l_ = STEP.search(line), LOSS.search(line)
                if not (s and l_):
                    continue
                steps.append(int(s.group(1)))
                loss.append(float(l_.group(1)))
                m = LR.search(line)
                lr.append(float(m.group(1)) if m else math.nan)
                m = GN.search(line)
                gn.append(float(m.group(1)) if m else math.nan)
                hits = [float(m.group(1)) for m in LOGIT.finditer(line)]
                lg.append(max(hits) if hits else math.nan)
    except OSError as exc:
        raise AdvisorError(f"cannot read {path}: {exc.strerror}") from None
    if not steps:
        raise AdvisorError(f"{path}: no line names a step and a loss (e.g. 'iter 100: loss "
                           f"4.23' or 'step: 10  loss: 9.12'); for CSV/JSON logs give --format")
    return make_log(steps, loss, lr, gn, source=str(path), fmt="text", logit=lg)
