"""Run a sweep plan into a results store, resumably, on one of three executors.

- ``inproc`` (default): this process trains every pending run, on ``device``.
- ``gpus``: one worker process per local GPU (``cuda:0`` ... ``cuda:N-1``), or ``workers``
  processes on the CPU; each worker claims runs and writes them to the SQLite store itself.
- ``ray``: one Ray task per group of runs on a Ray cluster (``address``; a local instance
  when omitted); this process claims the runs, and writes what the tasks return.

Every worker (an inproc sweep, each process of ``gpus``, the Ray driver) claims a run in the
store before training it (a lease with a heartbeat: advisor.runs.store.LeaseKeeper), so any
number of sweeps started on one store share its runs instead of repeating them, and a run
whose worker died (its pid gone, or its lease expired) is taken over by another.

Every executor first checks the plan, the data and the store (AdvisorError before any
compute), skips runs already stored as finished or diverged, and records each run in one
transaction as soon as it ends. Killing a sweep at any moment and starting it again with the
same command therefore re-runs only the runs that had not been recorded.
"""
from __future__ import annotations

import functools
import math
import os
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass

from advisor.errors import AdvisorError

EXECUTORS = ("inproc", "gpus", "ray")


@dataclass
class SweepSummary:
    total: int
    already_done: int
    ran: int
    by_status: dict
    wall_time_s: float
    others: int = 0       # runs of the plan that other workers on the store recorded meanwhile


def group_specs(specs) -> list[list]:
    """Runs that can train in one stack (:func:`advisor.specs.grouping.stack_key`, the one key that
    decides it: same shape, data and betas; token budgets, LRs, schedules may differ), in
    first-appearance order."""
    from advisor.specs.grouping import stack_key

    groups: "OrderedDict[tuple, list]" = OrderedDict()
    for s in specs:
        groups.setdefault(stack_key(s), []).append(s)
    return list(groups.values())


def _cost(spec) -> float:
    """Relative compute of a run: training FLOPs (6 N D plus attention)."""
    from calibration.model.proxy import flops_per_token

    return flops_per_token(spec.model_config()) * spec.steps * spec.tokens_per_step


def _fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
    """A tqdm bar over runs, showing the current run's loss and an ETA from compute done."""

    def __init__(self, specs, already_done: int, total: int, enabled: bool = True):
        self.costs = {s.run_id: _cost(s) for s in specs}
        self.remaining = sum(self.costs.values())
        self.done_cost, self.t0 = 0.0, time.perf_counter()
        self.current, self.last_refresh = "", 0.0
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=already_done, unit="run", file=sys.stderr,
                            dynamic_ncols=True,
                            bar_format="calibrate {n_fmt}/{total_fmt} runs |{bar}| {desc}")

    def _eta(self) -> str:
        elapsed = time.perf_counter() - self.t0
        if self.done_cost <= 0:
            return "?"
        return _fmt_time(elapsed / self.done_cost * self.remaining)

    def step(self, spec, step: int, total_steps: int, loss: float) -> None:
        if self.bar is None:
            return
        now = time.perf_counter()
        if now - self.last_refresh < 0.5 and step != total_steps:
            return
        self.last_refresh = now
        frac_cost = self.costs.get(spec.run_id, 0.0) * step / total_steps
        done = self.done_cost + frac_cost
        rem = self.remaining - frac_cost
        elapsed = now - self.t0
        eta = _fmt_time(elapsed / done * rem) if done > 0 else "?"
        self.bar.set_description_str(f"w={spec.width} {spec.parameterization} lr={spec.lr:.3g} "
                                 f"step {step}/{total_steps} loss={loss:.3f} ETA {eta}")

    def run_done(self, spec, status: str, val_loss: float) -> None:
        c = self.costs.get(spec.run_id, 0.0)
        self.done_cost += c
        self.remaining -= c
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_description_str(f"last: w={spec.width} lr={spec.lr:.3g} {status} "
                                     f"val={val_loss:.3f} ETA {self._eta()}")

    def close(self):
        if self.bar is not None:
            self.bar.close()


def device_memory(device: str) -> tuple[float, str, int]:
    """(bytes of memory, its name, bytes per activation value) of the device runs train on:
    a CUDA device's total memory (bf16 autocast), else this host's physical memory (fp32)."""
    import torch

    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and torch.cuda.is_available():
        dev = torch.device(device)
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        return float(torch.cuda.get_device_properties(idx).total_memory), f"cuda:{idx}", 2
    try:
        ram = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        ram = math.nan
    return ram, "this host's memory", 4


def check_inputs(plan, device: str, force: bool = False, done=frozenset()):
    """Load and check every data source the plan uses, that each run's estimated memory and
    time fit (advisor.specs.plan's bounds), and that the runs not yet ``done`` (ids) fit the plan's
    time bound on this device (unless ``force``), before any compute. Returns (data by
    source, the pending runs' best-case seconds on this device)."""
    from calibration.train.data import load_data
    from calibration.train.runtime import check_device_name
    from advisor.specs.plan import check_memory, check_plan_time, check_time

    check_device_name(device)
    datas = {}
    factories = {}
    for spec in plan.specs:
        if spec.data not in datas:
            datas[spec.data] = load_data(spec.data)
        datas[spec.data].check_fits(spec.seq_len)
        cfg = spec.model_config(vocab_size=datas[spec.data].vocab_size)
        if spec.factory:        # the family's shape says nothing of a foreign model's cost
            factories.setdefault((spec.factory, cfg.vocab_size, spec.seq_len, cfg.base_width),
                                 (spec.lr, set()))[1].add(spec.width)
            continue
        check_time(plan.name, spec, datas[spec.data].vocab_size)
    for (name, vocab, seq_len, base_width), (lr, widths) in factories.items():
        from calibration.model.factory import check_factory

        check_factory(name, widths, vocab, seq_len, lr, base_width)
    memory, where, act_bytes = device_memory(device)
    vocab = {k: d.vocab_size for k, d in datas.items()}
    own = [s for s in plan.specs if not s.factory]   # a foreign model's cost is unknown
    check_memory(plan.name, own, memory, where, vocab, act_bytes)
    kind = "cuda" if where.startswith("cuda") else "cpu"
    pending = [s for s in own if s.run_id not in done]
    seconds = check_plan_time(plan.name, pending, kind, vocab, force=force)
    return datas, seconds


def stored_final_ids(out_dir) -> set:
    """Ids of the runs already stored final in ``out_dir``'s store (read-only; none when
    there is no store yet)."""
    from pathlib import Path

    from advisor.runs.store import DB_NAME, ResultsStore

    if not (Path(out_dir) / DB_NAME).is_file():
        return set()
    with ResultsStore.open(out_dir, readonly=True) as st:
        return st.final_ids()


def work_units(specs) -> list[list]:
    """Units of work, in plan order: a group of runs that stack (``stack: true``, same shape)
    is one unit, trained together; every other run is a unit of its own, so that the work
    spreads evenly over workers."""
    return [g for grp in group_specs(specs)
            for g in ([grp] if len(grp) > 1 and all(s.stack and not s.factory for s in grp)
                      else [[s] for s in grp])]


def claim_loop(units, lease, train_unit, should_stop=lambda: False,
               poll_s: float | None = None) -> list[str]:
    """Train, one unit at a time, the runs of ``units`` this worker can claim.

    ``lease``: a advisor.runs.store.LeaseKeeper; ``train_unit(specs)`` trains the claimed
    members of a unit and records each of them (closing its attempt and lease). Runs held by
    a live worker are waited for, every ``poll_s`` seconds (default a quarter of the lease,
    at most 2 s): if that worker dies or its lease expires, this one takes the run over. Ends
    when every run is done (stored final, or attempted and ended during this sweep) or
    ``should_stop()``. Returns the ids this worker claimed and trained.
    """
    poll = poll_s if poll_s is not None else min(2.0, lease.ttl_s / 4)
    todo = [list(u) for u in units]
    ours: list[str] = []
    while todo and not should_stop():
        trained, keep = False, []
        for unit in todo:                  # one pass: claim each unit just before training it
            if should_stop():
                keep.append(unit)
                continue
            claimed, held, _done = lease.claim([s.run_id for s in unit])
            if claimed:
                by_id = {s.run_id: s for s in unit}
                try:
                    train_unit([by_id[r] for r in claimed])
                finally:
                    lease.store.release(lease.owner, claimed)   # any not recorded
                ours.extend(claimed)
                trained = True
            rest = [s for s in unit if s.run_id in held]
            if rest:
                keep.append(rest)
        todo = keep
        if todo and not trained:
            time.sleep(poll)           # all that is left is being trained elsewhere
    return ours


def run_sweep(plan, out_dir, executor: str = "inproc", device: str = "auto",
              address: str | None = None, workers: int | None = None,
              show_progress: bool = True, force: bool = False) -> SweepSummary:
    """Run every pending run of ``plan`` into the store in ``out_dir``.

    Several sweeps (processes, or hosts sharing the store's file system) may run on one store
    at once: each claims a run before training it, so they share the work, and a run whose
    worker died is taken over (docs/calibration-store.md)."""
    from advisor.runs.store import ResultsStore

    if executor not in EXECUTORS:
        raise AdvisorError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    if not plan.specs:
        raise AdvisorError(f"plan {plan.name} has no runs")
    if executor != "ray":
        from calibration.train.runtime import resolve_device
        resolve_device(device)            # AdvisorError now if CUDA was asked for and is absent
    datas, _ = check_inputs(plan, device, force=force, done=stored_final_ids(out_dir))
    store = ResultsStore.create(out_dir)
    t0 = time.perf_counter()
    ours: list[str] = []
    try:
        done = store.final_ids()
        pending = [s for s in plan.specs if s.run_id not in done]
        already = len(plan.specs) - len(pending)
        progress = Progress(pending, already, len(plan.specs), enabled=show_progress)
        try:
            if pending:
                if executor == "inproc":
                    ours = _run_inproc(pending, datas, device, store, progress)
                elif executor == "gpus":
                    ours = _run_processes(pending, out_dir, device, workers, progress)
                else:
                    ours = _run_ray(pending, address, device, store, progress)
        finally:
            progress.close()
        ids = {s.run_id for s in plan.specs}
        by_status: dict = {}
        final_now = set()
        for r in store.runs():
            if r.run_id in ids:
                by_status[r.status] = by_status.get(r.status, 0) + 1
                if r.status in ("finished", "diverged"):
                    final_now.add(r.run_id)
    finally:
        store.close()
    others = len((final_now - done) - set(ours))
    return SweepSummary(len(plan.specs), already, len(ours), by_status,
                        time.perf_counter() - t0, others)


# --------------------------------------------------------------------------------------
# In-process
# --------------------------------------------------------------------------------------

def _run_inproc(pending, datas, device, store, progress) -> list[str]:
    from advisor.runs.store import LeaseKeeper
    from calibration.train.group import train_group
    from calibration.train.runtime import resolve_device

    device = resolve_device(device)
    with LeaseKeeper(store) as lease:
        def on_result(r):
            store.record_result(r, owner=lease.owner)
            progress.run_done(r.spec, r.status, r.final_val_loss)

        def train_unit(specs):
            data = datas[specs[0].data]
            if len(specs) > 1 and all(s.stack for s in specs):
                train_group(specs, data, device, on_result=on_result)
                return
            for spec in specs:
                train_group([spec], data, device, on_result=on_result,
                            progress=functools.partial(progress.step, spec))

        return claim_loop(work_units(pending), lease, train_unit)


# --------------------------------------------------------------------------------------
# One process per GPU (or N CPU processes)
# --------------------------------------------------------------------------------------

def _worker(worker_idx: int, device: str, out_dir: str, units, events, threads: int | None):
    """Worker process: claim and train units (lists of run settings) on ``device``, writing
    each run to the store; the workers of one sweep (and of other sweeps on the same store)
    share the units through the store's leases."""
    if threads:
        import torch
        torch.set_num_threads(threads)
    from calibration.train.data import load_data
    from advisor.runs.store import LeaseKeeper, ResultsStore
    from advisor.specs.runspec import RunSpec
    from calibration.train.group import train_group

    store = ResultsStore.open(out_dir)
    parent = os.getppid()
    specs_units = [[RunSpec.from_settings(d) for d in unit] for unit in units]
    with LeaseKeeper(store) as lease:
        def on_result(r):
            store.record_result(r, owner=lease.owner)
            events.put(("done", r.spec.run_id, r.status, r.final_val_loss))

        def train_unit(specs):
            data = load_data(specs[0].data)
            if len(specs) > 1 and all(s.stack for s in specs):
                train_group(specs, data, device, on_result=on_result)
                return
            for spec in specs:
                last = [0.0]

                def on_progress(step, total, loss, _id=spec.run_id):
                    now = time.perf_counter()
                    if now - last[0] > 0.5 or step == total:
                        last[0] = now
                        events.put(("step", _id, step, total, loss))

                train_group([spec], data, device, on_result=on_result, progress=on_progress)

        # the sweep was killed: stop after the current unit
        ours = claim_loop(specs_units, lease, train_unit,
                          should_stop=lambda: os.getppid() != parent)
    store.close()
    events.put(("exit", worker_idx, ours))


def _run_processes(pending, out_dir, device, workers, progress) -> list[str]:
    import multiprocessing as mp

    import torch

    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        n_gpu = torch.cuda.device_count()
        if n_gpu == 0:
            raise AdvisorError("executor gpus: no CUDA device visible")
        n = min(workers or n_gpu, n_gpu)
        devices = [f"cuda:{i}" for i in range(n)]
        threads = None
    else:
        n = workers or 2
        devices = ["cpu"] * n
        threads = max(1, (torch.get_num_threads() or 1) // n)
    ctx = mp.get_context("spawn")
    events = ctx.Queue()
    by_id = {s.run_id: s for s in pending}
    units = [[s.settings() for s in unit] for unit in work_units(pending)]
    procs = [ctx.Process(target=_worker, args=(i, dev, str(out_dir), units, events, threads),
                         daemon=True) for i, dev in enumerate(devices)]
    for p in procs:
        p.start()
    exited: set = set()
    ours: list[str] = []
    try:
        while len(exited) < len(procs):
            try:
                ev = events.get(timeout=2.0)
            except Exception:
                if not any(p.is_alive() for p in procs):
                    break
                continue
            if ev[0] == "done":
                progress.run_done(by_id[ev[1]], ev[2], ev[3])
            elif ev[0] == "step":
                progress.step(by_id[ev[1]], ev[2], ev[3], ev[4])
            elif ev[0] == "exit":
                exited.add(ev[1])
                ours.extend(ev[2])
    finally:
        for p in procs:
            p.join(timeout=120)       # a worker that said goodbye is only flushing its queue
            if p.is_alive():
                p.terminate()
    bad = [p.exitcode for i, p in enumerate(procs) if i not in exited and p.exitcode != 0]
    if bad:
        raise AdvisorError(f"executor gpus: {len(bad)} worker(s) exited with codes {bad}; "
                           "finished runs are stored, run the same command again to resume")
    return ours


# --------------------------------------------------------------------------------------
# Ray
# --------------------------------------------------------------------------------------

def _ray_train_group(settings_list, device):
    """Runs inside a Ray worker: train a group, return plain results (no store access)."""
    from calibration.train.data import load_data
    from advisor.specs.runspec import RunSpec
    from calibration.train.group import train_group
    from calibration.train.runtime import resolve_device

    specs = [RunSpec.from_settings(d) for d in settings_list]
    return train_group(specs, load_data(specs[0].data), resolve_device(device))


def _run_ray(pending, address, device, store, progress) -> list[str]:
    """Claim units in the store (this driver is their owner), run them as Ray tasks, record
    what the tasks return. Only this process touches the store, so the store need not be
    reachable from the Ray workers."""
    try:
        import ray
    except ImportError:
        raise AdvisorError("executor ray needs Ray: pip install 'hp-advisor[ray]'") from None
    import torch

    from advisor.runs.store import LeaseKeeper

    use_gpu = device in ("auto", None) and torch.cuda.is_available() or str(device).startswith("cuda")
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
                 include_dashboard=False)
    by_id = {s.run_id: s for s in pending}
    remote = ray.remote(num_gpus=1 if use_gpu else 0, num_cpus=1)(_ray_train_group)
    dev = "cuda" if use_gpu else "cpu"
    ours: list[str] = []
    with LeaseKeeper(store) as lease:
        poll = min(2.0, lease.ttl_s / 4)
        todo = work_units(pending)
        refs: dict = {}
        while todo or refs:
            keep = []
            for unit in todo:
                claimed, held, _done = lease.claim([s.run_id for s in unit])
                if claimed:
                    refs[remote.remote([by_id[r].settings() for r in claimed], dev)] = claimed
                rest = [s for s in unit if s.run_id in held]
                if rest:
                    keep.append(rest)
            todo = keep
            if not refs:
                time.sleep(poll)       # all that is left is being trained elsewhere
                continue
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=poll if todo else None)
            for ref in ready:
                claimed = refs.pop(ref)
                for r in ray.get(ref):
                    store.record_result(r, owner=lease.owner)
                    progress.run_done(by_id.get(r.spec.run_id, r.spec), r.status,
                                      r.final_val_loss)
                ours.extend(claimed)
    return ours
