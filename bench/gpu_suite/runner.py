"""The suite's loop: probe the machine, then for each stage in priority order keep it if
done, estimate it, skip it when the budget cannot fit it, run it, record it, re-bundle; at
the end print the summary table of every figure (the last lines of the output).

Times are wall-clock seconds from the start of the call (``Deadline``)."""
from __future__ import annotations

import time
import traceback
from pathlib import Path

from bench.gpu_suite.budget import Deadline, correction, fits, scaled
from bench.gpu_suite.probe import compile_seconds
from bench.gpu_suite.report import (figures_table, summary_markdown, summary_rows,
                                    write_bundle)
from bench.gpu_suite.stages.base import Ctx, StageSkipped
from bench.gpu_suite.state import SuiteState, write_json, write_text


class Log:
    """Print with the elapsed time, and keep a copy in DIR/log.txt (appended per call)."""

    def __init__(self, path: Path, deadline: Deadline):
        self.path, self.deadline = path, deadline
        self.f = open(path, "a")

    def __call__(self, msg: str) -> None:
        line = f"[{self.deadline.elapsed():6.0f}s] {msg}"
        print(line, flush=True)
        self.f.write(line + "\n")
        self.f.flush()

    def close(self):
        self.f.close()


def run_suite(opts, stages) -> int:
    """Run ``stages`` (bench.gpu_suite.stages objects) under ``opts`` (the parsed command
    line); return the exit code: 1 when a stage failed in this call, else 0."""
    import torch

    from bench.gpu_suite.probe import measure
    from bench.gpu_suite.sizes import sizes

    out = Path(opts.out)
    deadline = Deadline(opts.budget_s, reserve_s=5.0 if opts.smoke else 15.0)
    state = SuiteState(out)
    log = Log(out / "log.txt", deadline)
    sz = sizes(opts.smoke)
    device = opts.device
    header, failed = "", ["(interrupted)"]
    try:
        for name in opts.redo:
            state.forget(name)
        mode = "SMOKE (toy sizes: nothing here is a result)" if opts.smoke else "full size"
        log(f"gpu suite: {mode}; "
            f"budget {opts.budget_s:.0f} s; out {out}; device {device}; torch {torch.__version__}; "
            f"compile {opts.compile}")
        if all(state.stage(st.name).get("status") == "done" for st in stages):
            log("every selected stage is done in an earlier call: nothing to measure")
            failed = []
            return 0
        # measure compile wherever it will be used: on CUDA unless never, anywhere if always
        probe = measure(device, sz["probe"], measure_compile=opts.compile == "always"
                        or (device.startswith("cuda") and opts.compile != "never"))
        sw = probe["software"]
        probe["device_name"] = f"{sw.get('gpu', device)} / torch {sw['torch']}"
        write_json(out / "probe.json", probe)
        eager = probe["eager"]
        log(f"probe ({probe['probe_s']:.1f} s): peak {probe['peak_flops'] / 1e12:.3g} TFLOP/s "
            f"({probe['peak_source']}), copy {probe['copy_bytes_per_s'] / 1e9:.3g} GB/s, eager "
            f"step floor {eager['floor_s'] * 1e3:.2f} ms, rate {eager['rate_flops'] / 1e12:.3g} "
            f"TFLOP/s" + (f", compile {probe['compile']['compile_s']:.1f} s"
                          if "compile" in probe else ""))
        sw = probe["software"]
        smoke = f" (SMOKE: toy sizes on {device}, not results)" if opts.smoke else ""
        header = (f"# GPU suite summary{smoke}\n\n"
                  f"device {sw.get('gpu', device)}; torch {sw['torch']} (CUDA {sw['torch_cuda']}); "
                  f"CuPy {sw.get('cupy')}; mup {sw.get('mup')}; "
                  f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
                  f"budget {opts.budget_s:.0f} s; command `{opts.command}`")
        state.data["header"] = header
        state.save()
        ctx = Ctx(out=out, smoke=opts.smoke, device=device, sizes=sz, probe=probe,
                  deadline=deadline, compile=opts.compile, log=log)
        ctx.checkpoint = lambda: _bundle(opts, out, stages, state, header)
        failed = _stages(stages, ctx, state, opts, log)
        call = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "device": sw.get("gpu", device),
                "torch": sw["torch"], "budget_s": opts.budget_s, "elapsed_s": deadline.elapsed(),
                "smoke": opts.smoke, "command": opts.command, "failed": failed}
        state.add_call(call)
    finally:
        header = header or state.data.get("header") or "# GPU suite summary"
        md = summary_markdown(stages, state, opts.smoke, header)
        write_text(out / "summary.md", md)
        write_json(out / "summary.json", _summary_json(stages, state, opts))
        if opts.bundle:
            _bundle(opts, out, stages, state, header)
        log.close()
        print()
        print(md, flush=True)
    return 1 if failed else 0


def _stages(stages, ctx, state, opts, log) -> list[str]:
    failed, skipped = [], []
    for st in stages:
        entry = state.stage(st.name)
        prior = entry.get("status")
        if prior == "done":
            log(f"{st.order}. {st.name}: done in an earlier call, kept")
            continue
        missing = [n for n in st.needs if state.stage(n).get("status") != "done"]
        if missing:
            note = f"needs stage {', '.join(missing)} done first"
            log(f"{st.order}. {st.name}: skipped ({note})")
            state.set_stage(st.name, status=prior or "skipped", note=note)
            skipped.append(st.name)
            continue
        t = time.perf_counter()
        ok, est = _guarded(st, ctx, state, log, "estimate", lambda: st.estimate(ctx))
        if not ok:
            (skipped if est == "skipped" else failed).append(st.name)
            continue
        est_wall = time.perf_counter() - t
        left = ctx.deadline.remaining()
        ratios = state.data.setdefault("ratios", {}).get(ctx.probe["device_name"], [])
        ctx.time_scale = correction(ratios)
        verdict = fits(scaled(est, ctx.time_scale), left)
        corr = (f", x{ctx.time_scale:.2f} from this device's earlier actual/estimate = "
                f"{est.seconds * ctx.time_scale:.1f} s" if ctx.time_scale != 1.0 else "")
        log(f"{st.order}. {st.name}: estimate {est.seconds:.1f} s ({est.detail}; estimated in "
            f"{est_wall:.1f} s{corr}); {left:.0f} s left -> {verdict}")
        if verdict == "none":
            est_c = scaled(est, ctx.time_scale)
            note = (f"needs ~{est_c.seconds:.0f} s (at least {est_c.min_seconds:.0f} s), "
                    f"{left:.0f} s were left")
            state.set_stage(st.name, status="partial" if prior == "partial" else "skipped",
                            note=note, estimate_s=est.seconds)
            skipped.append(st.name)
            continue
        t0, c0 = time.perf_counter(), compile_seconds()
        ok, outcome = _guarded(st, ctx, state, log, "run", lambda: st.run(ctx, est), est.seconds)
        if not ok:
            (skipped if outcome == "skipped" else failed).append(st.name)
            continue
        actual = time.perf_counter() - t0
        if outcome.status == "done" and est.seconds >= 5.0:
            state.data["ratios"].setdefault(ctx.probe["device_name"], []).append(
                actual / est.seconds)
        c1 = compile_seconds()
        compile_s = None if c0 is None or c1 is None else c1 - c0
        sdir = ctx.stage_dir(st.name)
        figs = outcome.figures
        write_text(sdir / "figures.md", f"# {st.order}. {st.title}\n\n"
                   + figures_table(figs or st.goals(), outcome.status, ctx.smoke))
        state.set_stage(st.name, status=outcome.status, estimate_s=est.seconds, actual_s=actual,
                        compile_s=compile_s, figures=[f.to_dict() for f in figs],
                        measured=f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
                                 f"{ctx.probe['software'].get('gpu', ctx.device)}",
                        note=outcome.note,
                        pngs=[str(Path(p).relative_to(ctx.out)) for p in outcome.pngs
                              if Path(p).is_file()], error=None)
        log(f"{st.order}. {st.name}: {outcome.status}; estimate {est.seconds:.1f} s, actual "
            f"{actual:.1f} s" + ("" if compile_s is None else f" (torch.compile {compile_s:.1f} s "
                                  "in this process)")
            + (f"; {outcome.note}" if outcome.note else ""))
        ctx.checkpoint()
    if skipped:
        log(f"skipped this call: {', '.join(skipped)}")
    return failed


def _guarded(st, ctx, state, log, phase, fn, est_s=None):
    """``(True, fn())``, or ``(False, "skipped")`` when the stage raised StageSkipped, or
    ``(False, "failed")`` when it raised anything else (recorded with its traceback)."""
    t0 = time.perf_counter()
    try:
        return True, fn()
    except StageSkipped as exc:
        log(f"{st.order}. {st.name}: skipped ({exc})")
        state.set_stage(st.name, status="skipped", note=str(exc))
        return False, "skipped"
    except Exception as exc:
        _fail(st, ctx, state, log, exc, phase, est_s,
              None if est_s is None else time.perf_counter() - t0)
        return False, "failed"


def _fail(st, ctx, state, log, exc, phase, est_s=None, actual_s=None) -> None:
    line = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    log(f"{st.order}. {st.name}: FAILED in its {phase}: {line}")
    write_text(ctx.stage_dir(st.name) / "error.txt", traceback.format_exc())
    state.set_stage(st.name, status="failed", note=f"{phase}: {line}", error=line,
                    estimate_s=est_s, actual_s=actual_s)


def _summary_json(stages, state, opts) -> dict:
    cols = ["stage", "status", "figure", "value", "goal", "verdict"]
    return {"smoke": opts.smoke, "command": opts.command,
            "rows": [dict(zip(cols, r)) for r in summary_rows(stages, state, opts.smoke)],
            "stages": {s.name: state.stage(s.name) for s in stages},
            "calls": state.data["calls"]}


def _bundle(opts, out, stages, state, header) -> None:
    if not opts.bundle:
        return
    md = summary_markdown(stages, state, opts.smoke,
                          header or state.data.get("header") or "# GPU suite summary")
    pngs = [out / p for s in stages for p in state.stage(s.name).get("pngs", [])]
    write_bundle(out, Path(opts.bundle), md, _summary_json(stages, state, opts), pngs)

