"""Run a sweep plan into a results store, resumably, on one of three executors.

- ``inproc`` (default): this process trains every pending run, on ``device``.
- ``gpus``: one worker process per local GPU (``cuda:0`` ... ``cuda:N-1``), or ``workers``
  processes on the CPU; each worker writes its runs to the same SQLite store itself.
- ``ray``: one Ray task per group of runs on a Ray cluster (``address``; a local instance
  when omitted); tasks return their results and this process writes them.

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
# Settings that must agree for runs to share a group (a shape and a step count).
_GROUP_KEYS = ("family", "width", "depth", "parameterization", "model", "batch_size", "seq_len",
               "tokens", "optimizer", "data", "eval_interval", "eval_sequences", "compile")


@dataclass
class SweepSummary:
    total: int
    already_done: int
    ran: int
    by_status: dict
    wall_time_s: float


def group_specs(specs) -> list[list]:
    """Runs that share a shape and a step count, in first-appearance order."""
    groups: "OrderedDict[tuple, list]" = OrderedDict()
    for s in specs:
        key = tuple(str(getattr(s, k)) for k in _GROUP_KEYS)
        groups.setdefault(key, []).append(s)
    return list(groups.values())


def _cost(spec) -> float:
    """Relative compute of a run: training FLOPs (6 N D plus attention)."""
    from calibration.model import flops_per_token

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


def check_inputs(plan, device: str):
    """Load and check every data source the plan uses (before any compute)."""
    from calibration.data import load_data

    datas = {}
    for spec in plan.specs:
        if spec.data not in datas:
            datas[spec.data] = load_data(spec.data)
        datas[spec.data].check_fits(spec.seq_len)
        spec.model_config(vocab_size=datas[spec.data].vocab_size)
    return datas


def run_sweep(plan, out_dir, executor: str = "inproc", device: str = "auto",
              address: str | None = None, workers: int | None = None,
              show_progress: bool = True) -> SweepSummary:
    """Run every pending run of ``plan`` into the store in ``out_dir``."""
    from calibration.store import ResultsStore

    if executor not in EXECUTORS:
        raise AdvisorError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    if not plan.specs:
        raise AdvisorError(f"plan {plan.name} has no runs")
    datas = check_inputs(plan, device)
    if executor != "ray":
        from calibration.train import resolve_device
        resolve_device(device)            # AdvisorError now if CUDA was asked for and is absent
    store = ResultsStore.create(out_dir)
    t0 = time.perf_counter()
    try:
        done = store.final_ids()
        pending = [s for s in plan.specs if s.run_id not in done]
        already = len(plan.specs) - len(pending)
        progress = Progress(pending, already, len(plan.specs), enabled=show_progress)
        try:
            if pending:
                if executor == "inproc":
                    _run_inproc(pending, datas, device, store, progress)
                elif executor == "gpus":
                    _run_processes(pending, out_dir, device, workers, progress)
                else:
                    _run_ray(pending, address, device, store, progress)
        finally:
            progress.close()
        ids = {s.run_id for s in plan.specs}
        by_status: dict = {}
        for r in store.runs():
            if r.run_id in ids:
                by_status[r.status] = by_status.get(r.status, 0) + 1
    finally:
        store.close()
    return SweepSummary(len(plan.specs), already, len(pending), by_status,
                        time.perf_counter() - t0)


# --------------------------------------------------------------------------------------
# In-process
# --------------------------------------------------------------------------------------

def _run_inproc(pending, datas, device, store, progress):
    from calibration.train import resolve_device, train_group

    device = resolve_device(device)

    def on_result(r):
        store.record_result(r)
        progress.run_done(r.spec, r.status, r.final_val_loss)

    for group in group_specs(pending):
        data = datas[group[0].data]
        if len(group) > 1 and all(s.stack for s in group):
            train_group(group, data, device, on_result=on_result)
            continue
        for spec in group:
            train_group([spec], data, device, on_result=on_result,
                        progress=functools.partial(progress.step, spec))


# --------------------------------------------------------------------------------------
# One process per GPU (or N CPU processes)
# --------------------------------------------------------------------------------------

def _worker(worker_idx: int, device: str, out_dir: str, jobs, events, threads: int | None):
    """Worker process: train groups from ``jobs`` on ``device``, write each run to the store."""
    import queue

    if threads:
        import torch
        torch.set_num_threads(threads)
    from calibration.data import load_data
    from calibration.store import ResultsStore
    from calibration.train import RunSpec, train_group

    store = ResultsStore.open(out_dir)
    parent = os.getppid()
    while True:
        if os.getppid() != parent:      # the sweep was killed: stop after the current run
            break
        try:
            group = jobs.get(timeout=1.0)
        except queue.Empty:
            continue
        if group is None:
            break
        specs = [RunSpec.from_settings(d) for d in group]
        data = load_data(specs[0].data)

        def on_result(r):
            store.record_result(r)
            events.put(("done", r.spec.run_id, r.status, r.final_val_loss))

        if len(specs) > 1 and all(s.stack for s in specs):
            train_group(specs, data, device, on_result=on_result)
            continue
        for spec in specs:
            last = [0.0]

            def on_progress(step, total, loss, _id=spec.run_id):
                now = time.perf_counter()
                if now - last[0] > 0.5 or step == total:
                    last[0] = now
                    events.put(("step", _id, step, total, loss))

            train_group([spec], data, device, on_result=on_result, progress=on_progress)
    store.close()
    events.put(("exit", worker_idx))


def _run_processes(pending, out_dir, device, workers, progress):
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
    jobs, events = ctx.Queue(), ctx.Queue()
    by_id = {s.run_id: s for s in pending}
    groups = group_specs(pending)
    # Split groups into single runs unless stacked, so work spreads evenly over workers.
    units = [g for grp in groups for g in ([grp] if all(s.stack for s in grp) else [[s] for s in grp])]
    for unit in units:
        jobs.put([s.settings() for s in unit])
    for _ in devices:
        jobs.put(None)
    procs = [ctx.Process(target=_worker, args=(i, dev, str(out_dir), jobs, events, threads),
                         daemon=True) for i, dev in enumerate(devices)]
    for p in procs:
        p.start()
    exited: set = set()
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
    finally:
        for p in procs:
            p.join(timeout=120)       # a worker that said goodbye is only flushing its queue
            if p.is_alive():
                p.terminate()
    bad = [p.exitcode for i, p in enumerate(procs) if i not in exited and p.exitcode != 0]
    if bad:
        raise AdvisorError(f"executor gpus: {len(bad)} worker(s) exited with codes {bad}; "
                           "finished runs are stored, run the same command again to resume")


# --------------------------------------------------------------------------------------
# Ray
# --------------------------------------------------------------------------------------

def _ray_train_group(settings_list, device):
    """Runs inside a Ray worker: train a group, return plain results (no store access)."""
    from calibration.data import load_data
    from calibration.train import RunSpec, resolve_device, train_group

    specs = [RunSpec.from_settings(d) for d in settings_list]
    return train_group(specs, load_data(specs[0].data), resolve_device(device))


def _run_ray(pending, address, device, store, progress):
    try:
        import ray
    except ImportError:
        raise AdvisorError("executor ray needs Ray: pip install 'hp-advisor[ray]'") from None
    import torch

    use_gpu = device in ("auto", None) and torch.cuda.is_available() or str(device).startswith("cuda")
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
                 include_dashboard=False)
    by_id = {s.run_id: s for s in pending}
    remote = ray.remote(num_gpus=1 if use_gpu else 0, num_cpus=1)(_ray_train_group)
    dev = "cuda" if use_gpu else "cpu"
    units = [g for grp in group_specs(pending)
             for g in ([grp] if all(s.stack for s in grp) else [[s] for s in grp])]
    refs = [remote.remote([s.settings() for s in unit], dev) for unit in units]
    while refs:
        ready, refs = ray.wait(refs, num_returns=1)
        for res_list in ray.get(ready):
            for r in res_list:
                store.record_result(r)
                progress.run_done(by_id.get(r.spec.run_id, r.spec), r.status, r.final_val_loss)
