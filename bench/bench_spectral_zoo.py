"""The spectral check over the model zoo: confusion table, first-named cause, time per model.

    python -m bench.bench_spectral_zoo --widths 64,128,256 --seeds 4
    python -m bench.bench_spectral_zoo --widths 128,256,512 --seeds 4 --only issue15,rotary
    python -m bench.bench_spectral_zoo ... --json out.json      # rows per model, written atomically
    python -m bench.bench_spectral_zoo --steady --widths 64,128,256 --seeds 2 --steps 300
        # steady-state mode on the issue-15 model under each weight-decay width rule
    python -m bench.bench_spectral_zoo --wd-sweep --widths 64,256 --steps 300 --seq-len 32
        # weight decay x width at fixed LR under each rule: does the best weight decay transfer?
    python -m bench.bench_spectral_zoo --mechanism --widths 64,128,256,512,1024 --seeds 4
        # issue 15's false alarm: attention output RMS and concentration against width

Correct models (``zoo.CORRECT``) should come out ``pass``; broken ones (``zoo.BROKEN``)
``FAIL`` with the expected cause named first. Times are wall-clock seconds on this machine
for the whole check of one model (every width and seed), with one torch thread.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="64,128,256")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--only", default="", help="comma-separated zoo names")
    ap.add_argument("--json", default="", help="write per-model results here")
    ap.add_argument("--show", action="store_true", help="print each report")
    ap.add_argument("--steady", action="store_true",
                    help="steady-state mode under the wd rules none / sqrt / mup instead")
    ap.add_argument("--weight-decay", type=float, default=1.0)
    ap.add_argument("--rules", default="none,sqrt,mup")
    ap.add_argument("--mechanism", action="store_true",
                    help="attention-output RMS and attention concentration of the issue-15 "
                         "model per width (geometric means over seeds)")
    ap.add_argument("--wd-sweep", action="store_true",
                    help="held-out loss over weight decay x width under each rule")
    ap.add_argument("--wds", default="0.1,0.3,1,3")
    args = ap.parse_args(argv)
    if args.wd_sweep:
        return wd_sweep(args)
    if args.steady:
        return steady(args)
    if args.mechanism:
        return mechanism(args)

    import torch

    from calibration.spectral import zoo
    from calibration.spectral.invariance import run_check

    torch.set_num_threads(1)
    widths = [int(w) for w in args.widths.split(",")]
    names = [n for n in args.only.split(",") if n] or [*zoo.CORRECT, *zoo.BROKEN]
    print(f"widths {widths}, {args.seeds} seeds, {args.steps} steps, torch threads 1")
    print(f"{'model':<24} {'expect':<16} {'got':<13} {'first cause':<12} {'rows f/i/p':<11} "
          f"{'seeds':>5} {'time':>6}")
    out, wrong = {}, 0
    for name in names:
        spec = zoo.by_name(name)
        expect = "pass" if name in zoo.CORRECT else "FAIL:" + zoo.BROKEN[name][1]
        t0 = time.perf_counter()
        res = run_check(zoo.factory(spec, name), widths, steps=args.steps, seeds=args.seeds,
                        contract=zoo.contract(name, seq_len=args.seq_len))
        dt = time.perf_counter() - t0
        causes = res.causes()
        first = causes[0].name if causes else ("base-shapes" if res.defect else "-")
        got = res.status
        ok = (got == "pass") if name in zoo.CORRECT else (got == "FAIL" and first == zoo.BROKEN[name][1])
        wrong += not ok
        counts = f"{len(res.failed)}/{len(res.inconclusive)}/{len(res.rows) - len(res.failed) - len(res.inconclusive)}"
        print(f"{name:<24} {expect:<16} {got:<13} {first:<12} {counts:<11} {res.seeds:>5} "
              f"{dt:>5.1f}s"
              f"{'' if ok else '   <-- WRONG'}", flush=True)
        if args.show:
            print(res.report())
        out[name] = {"expect": expect, "status": got, "first_cause": first, "seconds": dt,
                     "result": res.to_dict()}
    print(f"{len(names) - wrong} of {len(names)} right")
    if args.json:
        path = Path(args.json)
        fd, tmp = tempfile.mkstemp(dir=path.parent or ".", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump({"widths": widths, "seeds": args.seeds, "steps": args.steps,
                       "models": out}, fh, indent=1, default=str)
        os.replace(tmp, path)
    return 1 if wrong else 0


def mechanism(args) -> int:
    """Per width: RMS of each block's attention output, sqrt(sum p^2) and entropy (nats) of
    its attention (queries past position 8), trained-logit RMS; after ``steps`` steps, the
    check's own training (same batches and probe as run_check)."""
    import numpy as np
    import torch

    from calibration.spectral import probes, zoo
    from calibration.spectral.invariance import text_batches

    torch.set_num_threads(1)
    widths = [int(w) for w in args.widths.split(",")]
    probe = text_batches(1, 8, args.seq_len, seed=10_000)[0][0]

    def concentration(a):
        T = a.shape[-1]
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        p = torch.softmax(a.masked_fill(~mask, -float("inf")), -1)[..., 8:, :]
        ent = -(p * torch.log(p.clamp_min(1e-30))).sum(-1)
        return float(p.pow(2).sum(-1).mean().sqrt()), float(ent.mean())

    print(f"issue15 model, {args.steps} steps, {args.seeds} seeds, geometric means")
    for w in widths:
        recs = []
        for s in range(args.seeds):
            batches = text_batches(8, 8, args.seq_len, seed=s)
            torch.manual_seed(s)
            model, opt = zoo.build(zoo.CORRECT["issue15"], w)
            for step in range(args.steps):
                x, y = batches[step % len(batches)]
                loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1))
                opt.zero_grad()
                loss.backward()
                opt.step()
            r = probes.record(model, probe)
            rec = {}
            for b in range(2):
                rec[f"out{b}"] = probes.rms(r["acts"][f"blocks.{b}.attn.proj"])
                rec[f"conc{b}"], rec[f"ent{b}"] = concentration(r["attn"][f"attn_logits[{b}]"])
                rec[f"logits{b}"] = probes.rms(r["attn"][f"attn_logits[{b}]"])
            recs.append(rec)
        g = {k: float(np.exp(np.mean([np.log(x[k]) for x in recs]))) for k in recs[0]}
        print(f"width {w:>5} (d_head {w // 4:>3}): " + " ".join(f"{k} {v:.3g}" for k, v in g.items()),
              flush=True)
    return 0


def wd_sweep(args) -> int:
    """Held-out loss (nats/byte, 16 fixed batches of the stdlib corpus's held-out part) of the
    issue15 model after ``steps`` steps at LR 1e-2 on fresh training batches, per rule, width
    and base weight decay."""
    import numpy as np
    import torch

    from calibration.train.data import load_data
    from calibration.spectral import zoo
    from calibration.spectral.invariance import text_batches

    torch.set_num_threads(1)
    widths = [int(w) for w in args.widths.split(",")]
    wds = [float(x) for x in args.wds.split(",")]
    val = load_data("stdlib").val
    rng = np.random.default_rng(123)
    starts = rng.integers(0, len(val) - args.seq_len - 1, size=16 * 8)
    chunk = torch.from_numpy(np.stack([np.asarray(val[s:s + args.seq_len + 1], dtype=np.int64)
                                       for s in starts]))
    print(f"issue15 model, LR 1e-2, {args.steps} steps of 8 x {args.seq_len} bytes, seed 0; "
          f"held-out loss (nats/byte)")
    print(f"{'rule':<6} {'width':>5} " + " ".join(f"{'wd=' + str(w):>9}" for w in wds) + "   best")
    for rule in args.rules.split(","):
        for w in widths:
            losses = []
            for wd in wds:
                batches = text_batches(args.steps, 8, args.seq_len, seed=0)   # fresh data
                torch.manual_seed(0)
                spec = zoo.with_(zoo.CORRECT["issue15"], weight_decay=wd, wd_rule=rule)
                model, opt = zoo.build(spec, w)
                for step in range(args.steps):
                    x, y = batches[step % len(batches)]
                    loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, 256),
                                                             y.reshape(-1))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                with torch.no_grad():
                    out = model(chunk[:, :-1])
                    v = torch.nn.functional.cross_entropy(out.reshape(-1, 256),
                                                          chunk[:, 1:].reshape(-1)).item()
                losses.append(v if np.isfinite(v) else float("nan"))
            best = wds[int(np.nanargmin(losses))]
            print(f"{rule:<6} {w:>5} " + " ".join(f"{v:>9.4f}" for v in losses) + f"   {best}",
                  flush=True)
    return 0


def steady(args) -> int:
    """Measured vs predicted width slope of sigma_max (median over hidden matrices)."""
    import numpy as np
    import torch

    from calibration.spectral import zoo
    from calibration.spectral.steady import run_steady

    torch.set_num_threads(1)
    widths = [int(w) for w in args.widths.split(",")]
    print(f"steady state: issue15 model, widths {widths}, {args.steps} steps x {args.seeds} "
          f"seeds, seq {args.seq_len}, LR 1e-2, weight decay {args.weight_decay} at the base")
    print(f"{'rule':<6} {'predicted':>9} {'measured (median)':>18} {'range over matrices':>22} "
          f"{'verdict':<13} {'settle':>6} {'time':>6}")
    for rule in args.rules.split(","):
        spec = zoo.with_(zoo.CORRECT["issue15"], weight_decay=args.weight_decay, wd_rule=rule)
        res = run_steady(zoo.factory(spec, rule), widths, steps=args.steps, seeds=args.seeds,
                         seq_len=args.seq_len)
        sl = [r.slope for r in res.rows]
        pred = float(np.median([r.predicted for r in res.rows]))
        print(f"{rule:<6} {pred:>+9.2f} {float(np.median(sl)):>+18.2f} "
              f"{min(sl):>+10.2f} .. {max(sl):>+7.2f}   {res.status:<13} "
              f"{max(r.settle for r in res.rows):>6.0%} {res.seconds:>5.0f}s", flush=True)
        if args.show:
            print(res.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
