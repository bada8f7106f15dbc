"""Train a group of runs: stacked into one model where they can be (``calibration.train.stacked``),
one at a time otherwise (``calibration.train.single``). The layer above both; they do not import
each other.

Units: as ``calibration.train.single`` (tokens, sequences, nats per token).
"""
from __future__ import annotations

import warnings

from advisor.errors import AdvisorError
from calibration.train.runtime import resolve_device
from calibration.train.stacked import (CPU_MAX_MEMBERS, run_stack, StackOOM, choose_stack_size,
                                 split_evenly, stack_key)
from calibration.train.single import train_run


def train_group(specs, data, device: str = "cpu", on_result=None, callbacks=(), progress=None):
    """Train runs that share a shape; ``on_result(RunResult)`` is called as each run ends.

    Stacked (:func:`train_stack`) when every spec asks for it (``stack: true``), there are
    several, the stack can reproduce their optimizer (``STACKED_OPTIMIZERS``) and no
    ``callbacks`` are given (a callback inspects one model; a stack has none
    of its own): the runs are then trained one at a time, each with the callbacks, and a
    warning says so. ``progress`` reaches either path."""
    from calibration.train.stacked_optim import STACKED_OPTIMIZERS

    specs = list(specs)
    stackable = all(s.optimizer in STACKED_OPTIMIZERS for s in specs)  # else one at a time
    stackable = stackable and not any(s.factory for s in specs)   # a foreign model: one by one
    if specs and all(s.stack for s in specs) and len(specs) > 1 and stackable:
        if not callbacks:
            return train_stack(specs, data, device, on_result, progress=progress)
        warnings.warn(f"{len(specs)} runs ask for stacking but training callbacks were given; "
                      "training them one at a time so every run gets the callbacks")
    results = []
    for spec in specs:
        r = train_run(spec, data, device, callbacks=callbacks, progress=progress)
        if on_result is not None:
            on_result(r)
        results.append(r)
    return results


def train_stack(specs, data, device: str = "cpu", on_result=None, *,
                max_members: int | None = None, progress=None):
    """Train runs as stacks of same-shape members; ``train_group``'s
    signature and results (one RunResult per spec, in ``specs`` order; ``on_result`` called
    as each member ends).

    Specs are grouped by :data:`STACK_KEY_FIELDS`, sorted by length (so members of a stack
    end close together), and cut into stacks of K members, K from free GPU memory or
    ``max_members`` / ``$ADVISOR_STACK_MAX`` / 8 on the CPU. A stack that runs out of
    memory is retried as two halves; a stack that fails for another reason falls back to
    ``train_run`` one member at a time for the members not yet reported (with a warning),
    so a sweep never loses runs to the stacking itself.
    """

    specs = list(specs)
    if not specs:
        return []
    device = resolve_device(device)
    results: dict[int, object] = {}
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(specs):
        groups.setdefault(stack_key(s), []).append(i)

    def deliver(i, r):
        results[i] = r
        if on_result is not None:
            on_result(r)

    for idxs in groups.values():
        idxs = sorted(idxs, key=lambda i: -specs[i].steps)
        try:
            k = choose_stack_size([specs[i] for i in idxs], data, device, max_members)
        except AdvisorError:
            raise
        except Exception as exc:
            warnings.warn(f"could not measure stack memory ({type(exc).__name__}: {exc}); "
                          f"using stacks of {CPU_MAX_MEMBERS}")
            k = min(len(idxs), CPU_MAX_MEMBERS)
        todo = split_evenly(idxs, k)
        while todo:
            chunk = todo.pop(0)
            reported = set()

            def on_member(r, chunk=chunk, reported=reported):
                i = next(i for i in chunk if specs[i] is r.spec and i not in reported)
                reported.add(i)
                deliver(i, r)

            try:
                if len(chunk) == 1:
                    on_member(train_run(specs[chunk[0]], data, device))
                else:
                    run_stack([specs[i] for i in chunk], data, device, on_member, progress)
            except StackOOM:
                rest = [i for i in chunk if i not in reported]
                half = max(1, len(rest) // 2)
                warnings.warn(f"a stack of {len(chunk)} ran out of device memory; "
                              f"retrying its {len(rest)} unfinished members in stacks of {half}")
                todo[:0] = split_evenly(rest, half)
            except Exception as exc:
                rest = [i for i in chunk if i not in reported]
                warnings.warn(f"stacked training failed ({type(exc).__name__}: {exc}); "
                              f"training {len(rest)} member(s) one at a time")
                for i in rest:
                    on_member(train_run(specs[i], data, device))
    return [results[i] for i in range(len(specs))]
