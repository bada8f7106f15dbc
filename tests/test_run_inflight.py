"""`advisor run`: real training logs (Hugging Face Trainer, TensorBoard), forecasts that hold on
a known curve, health alarms, and bad input as one `error:` line with exit 2."""
import json
import math

import numpy as np
import pytest

from advisor.cli import main
from advisor.rules.lr_schedule import parse_schedule
from advisor.schedule.inflight import scenarios as sc
from advisor.schedule.inflight.analyze import analyze
from advisor.schedule.inflight.forecast import EXTRAP_REL, shipped_prior
from advisor.schedule.inflight.health import ALARM_EXIT
from advisor.schedule.inflight.plan import make_plan
from advisor.schedule.inflight.readers import read_log
from advisor.schedule.valley import predict as valley_predict

THETA = (2.0, 3.0, 0.45, 0.25, 0.6, 0.01, 1.0)     # a valley law: L0, A, alpha, K, p, c, rho


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def law_curve(spec, T, upto, every=50, noise=0.0, seed=0):
    """(steps, lr, loss) of a run that follows a known law, logged up to ``upto``."""
    m = np.concatenate([[0.0], parse_schedule(spec).multipliers(T)])
    steps = np.arange(every, upto + 1, every)
    loss = valley_predict(THETA, m, steps)
    loss = loss * (1 + noise * np.random.default_rng(seed).standard_normal(len(steps)))
    return steps, 3e-4 * m[steps], loss, m


def write_csv(path, steps, lr, loss, header="step,lr,loss"):
    with open(path, "w") as fh:
        fh.write(header + "\n")
        for row in zip(steps, lr, loss):
            fh.write(",".join(map(str, row)) + "\n")
    return path


# ------------------------------------------------------------------ forecasts


def test_first_half_of_a_cosine_run_predicts_its_end(tmp_path):
    spec, T = "cosine:final=0.1,warmup=200", 20000
    steps, lr, loss, m = law_curve(spec, T, T // 2, noise=0.001)
    log = read_log(write_csv(tmp_path / "run.csv", steps, lr, loss))
    plan = make_plan(log, spec, T)
    model, res = analyze(log, plan)
    p = next(p for p in res["predictions"] if p["scenario"] == "plan")
    true = float(valley_predict(THETA, m, np.array([T]))[0])
    # no prior: the law is fitted on the half curve alone, with the interval measured for
    # that (docs/run.md, table A: up to 3% per doubling of the step)
    assert res["model"]["kind"] == "law" and p["lo"] <= true <= p["hi"]
    assert abs(p["loss"] / true - 1) < EXTRAP_REL["law"] and p["rel_halfwidth"] < 0.04
    assert not res["health"]["alarm"]
    # a cooldown started now beats holding the LR, and the best start is a real step
    b = res["best_cooldown"]
    assert plan.now <= b["start"] < T and b["lo"] <= b["loss"] <= b["hi"]


def test_a_constant_lr_run_takes_its_decay_gains_from_the_shipped_prior_with_a_wide_band(
        tmp_path, capsys):
    """No --law and a run still at constant LR: the curve cannot show what a decay gains, so
    the decays come from the shipped prior (another setup), marked as such, with the interval
    measured for a prior from another setup; the constant continuation stays the run's own."""
    spec, T = "wsd:cooldown=0.2,warmup=200", 20000
    steps, lr, loss, _ = law_curve(spec, T, 8000)
    path = write_csv(tmp_path / "run.csv", steps, lr, loss)
    code, out, err = run(["run", str(path), "--schedule", spec, "--steps", str(T),
                          "--no-plot", "--json"], capsys)
    assert code == 0, err
    res = json.loads(out)
    assert "shipped prior" in res["model"]["law"]
    setup = shipped_prior().doc["provenance"]["setup"]
    assert any("shipped prior" in w and setup in w for w in res["model"]["warnings"])
    by = {p["scenario"]: p for p in res["predictions"]}
    reach = math.log2(T / 8000)
    assert by["plan"]["model"] == "shipped" and by["constant"]["model"] == "progress"
    assert by["plan"]["rel_halfwidth"] >= EXTRAP_REL["shipped"] * reach
    assert by["constant"]["rel_halfwidth"] < by["plan"]["rel_halfwidth"]
    assert by["plan"]["loss"] < by["constant"]["loss"]        # a cooldown gains
    assert "best_cooldown" in res and "start" in res["best_cooldown"]
    # the text report says where a decay's gain came from
    code, out, err = run(["run", str(path), "--schedule", spec, "--steps", str(T),
                          "--no-plot"], capsys)
    assert code == 0 and "decay gain from the shipped prior" in out
    # without the shipped prior, the decays are refused with the reason
    code, out, err = run(["run", str(path), "--schedule", spec, "--steps", str(T),
                          "--no-plot", "--no-shipped-prior"], capsys)
    assert code == 0
    assert "no cooldown" in out and "not predicted: the LR has been constant so far" in out


def test_the_shipped_prior_is_what_its_generator_fits_from_the_committed_inputs():
    """recipes/schedule/prior.yaml is refitted by the product's own fitter from the committed
    curves and compared (as bench.trust_evidence --check does for law sets)."""
    from bench import schedule_prior

    assert schedule_prior.check() == []
    law = shipped_prior()
    assert law.law == schedule_prior.LAW and law.rho == schedule_prior.OPTIONS.rho
    assert law.lr_scale == 5e-4 and law.doc["provenance"]["identified"]
    for c in law.doc["fit"]["curves"]:
        assert (schedule_prior.INPUTS / c["source"].rsplit("/", 1)[1]).is_file()
        assert abs(c["final_rel"]) < 0.005          # it fits its own curves' ends


# ------------------------------------------------------------------ health


def test_a_spike_is_flagged_with_its_step_and_the_exit_code_says_so(tmp_path, capsys):
    spec, T = "cosine:final=0.1,warmup=200", 20000
    steps, lr, loss, _ = law_curve(spec, T, 10000, noise=0.002, seed=1)
    i = int(np.searchsorted(steps, 6000))
    loss[i:i + 2] *= 1.15
    path = write_csv(tmp_path / "run.csv", steps, lr, loss)
    code, out, err = run(["run", str(path), "--schedule", spec, "--steps", str(T), "--no-plot",
                          "--json"], capsys)
    assert code == ALARM_EXIT
    res = json.loads(out)
    f = [f for f in res["health"]["findings"] if f["kind"] == "spike"]
    assert len(f) == 1 and f[0]["start_step"] == 6000 and f[0]["recovered_at"] == 6100
    assert "clip gradients" in f[0]["remedy"]
    # a periodic job that already saw it: --since after the spike is quiet
    code, _, _ = run(["run", str(path), "--schedule", spec, "--steps", str(T), "--no-plot",
                      "--since", "7000"], capsys)
    assert code == 0


def test_divergence_stops_the_forecast(tmp_path, capsys):
    spec, T = "wsd:cooldown=0.2,warmup=200", 20000
    steps, lr, loss, _ = law_curve(spec, T, 9000, noise=0.002)
    k = steps > 8500
    loss[k] *= np.linspace(1.05, 1.4, k.sum())
    path = write_csv(tmp_path / "run.csv", steps, lr, loss)
    code, out, err = run(["run", str(path), "--schedule", spec, "--steps", str(T), "--no-plot"],
                         capsys)
    assert code == ALARM_EXIT
    assert "divergence at steps 8550-9000" in out and "not recovered" in out
    assert "diverging since step 8550" in out


# ------------------------------------------------------------------ real logs


@pytest.fixture(scope="module")
def hf_state(tmp_path_factory):
    """trainer_state.json written by Hugging Face's Trainer: a tiny GPT-2, 24 CPU steps."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    out = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=64, n_positions=32, n_embd=16, n_layer=1,
                                  n_head=2, bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(cfg)
    g = torch.Generator().manual_seed(0)
    data = [{"input_ids": ids, "labels": ids}
            for ids in torch.randint(0, 64, (256, 32), generator=g) % 8]
    args = transformers.TrainingArguments(
        output_dir=str(out), max_steps=24, per_device_train_batch_size=8, learning_rate=3e-3,
        lr_scheduler_type="cosine", warmup_steps=4, logging_steps=1, save_steps=24,
        report_to=[], use_cpu=True, disable_tqdm=True, seed=0)
    transformers.Trainer(model=model, args=args, train_dataset=data).train()
    return out / "checkpoint-24" / "trainer_state.json"


def test_reads_a_trainer_state_written_by_hf_trainer(hf_state, capsys):
    log = read_log(hf_state)
    assert log.fmt == "hf" and log.keys["max_steps"] == 24
    assert list(log.steps) == list(range(1, 25))
    assert log.lr is not None and log.grad_norm is not None and np.all(log.loss > 0)
    # HF's cosine is ours: the planned steps come from max_steps, the peak from the log
    code, out, err = run(["run", str(hf_state.parent), "--schedule", "cosine:final=0,warmup=4",
                          "--no-plot", "--json"], capsys)
    assert code in (0, ALARM_EXIT), err
    res = json.loads(out)
    assert res["total_steps"] == 24 and res["peak_lr"] == pytest.approx(3e-3, rel=0.01)
    # the same log against a schedule it did not run: refused
    code, out, err = run(["run", str(hf_state), "--schedule", "constant:warmup=4", "--no-plot"],
                         capsys)
    assert code == 2 and err.startswith("error: the log's LR contradicts the schedule")
    assert len(err.strip().splitlines()) == 1


def test_reads_a_tensorboard_event_file(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    spec, T = "cosine:final=0.1,warmup=200", 20000
    steps, lr, loss, _ = law_curve(spec, T, 10000, noise=0.001)
    w = SummaryWriter(str(tmp_path / "tb"))
    for s, a, b in zip(steps, lr, loss):
        w.add_scalar("train/loss", b, int(s))
        w.add_scalar("train/learning_rate", a, int(s))
        w.add_scalar("train/grad_norm", 0.5, int(s))
    w.close()
    log = read_log(tmp_path / "tb")
    assert log.fmt == "tensorboard" and len(log.steps) == len(steps)
    assert np.allclose(log.loss, loss, rtol=1e-6) and np.allclose(log.lr, lr, rtol=1e-6)
    code, out, err = run(["run", str(tmp_path / "tb"), "--schedule", spec, "--steps", str(T),
                          "--plot", str(tmp_path / "f.png")], capsys)
    assert code == 0, err
    assert (tmp_path / "f.png").stat().st_size > 10_000
    assert "health: ok" in out and "current plan" in out


def test_reads_text_logs_wandb_exports_and_jsonl(tmp_path):
    nano = tmp_path / "nano.log"
    nano.write_text("".join(f"iter {s}: loss {4 - s / 100:.4f}, time 10.0ms, mfu 1.0%\n"
                            + (f"step {s}: train loss 3.9, val loss 4.0\n" if s == 50 else "")
                            for s in range(10, 110, 10)))
    log = read_log(nano)
    assert log.fmt == "text" and list(log.steps) == list(range(10, 110, 10)) and log.lr is None
    titan = tmp_path / "titan.log"
    titan.write_text("".join(f"\x1b[31mstep: {s:>3}  \x1b[32mloss: {3 - s / 1000:7.4f}  "
                             f"grad_norm: 0.9  lr: 3e-4  memory: 1.2GiB\x1b[39m\n"
                             for s in range(1, 11)))
    log = read_log(titan)
    assert list(log.steps) == list(range(1, 11)) and np.allclose(log.lr, 3e-4)
    assert np.allclose(log.grad_norm, 0.9)
    wb = tmp_path / "wandb.csv"
    rows = ["Step,myrun - train/loss,myrun - train/loss__MIN,myrun - train/loss__MAX,"
            "myrun - train/learning_rate"]
    rows += [f"{s},{3 - s / 100},,,{1e-3}" if s % 2 == 0 else f"{s},,,,{1e-3}"
             for s in range(1, 21)]
    wb.write_text("\n".join(rows) + "\n")
    log = read_log(wb)
    assert log.fmt == "wandb" and list(log.steps) == list(range(2, 21, 2))
    jl = tmp_path / "log.jsonl"
    jl.write_text("".join(json.dumps({"step": s, "loss": 3 - s / 100, "lr": 1e-3}) + "\n"
                          + (json.dumps({"step": s, "eval_loss": 3.1}) + "\n" if s == 5 else "")
                          for s in range(1, 11)))
    log = read_log(jl)
    assert log.fmt == "jsonl" and list(log.steps) == list(range(1, 11))


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("case", ["non-monotone", "nan", "no-lr", "other-run", "other-horizon"])
def test_bad_logs_are_one_error_line_and_exit_2(tmp_path, capsys, case):
    spec, T = "wsd:cooldown=0.2,warmup=200", 20000
    steps, lr, loss, _ = law_curve(spec, T, 5000)
    argv = ["--schedule", spec, "--steps", str(T), "--no-plot"]
    want = {"non-monotone": "steps are not strictly increasing (step 2000 follows 2450)",
            "nan": "loss is nan at step 3000", "no-lr": "has no LR column: give the run's "
            "planned schedule", "other-run": "the log's LR contradicts the schedule",
            "other-horizon": "--steps 4000 is before the last logged step 5000"}[case]
    if case == "non-monotone":
        steps = steps.copy()
        steps[49] = 2000
    elif case == "nan":
        loss = loss.copy()
        loss[59] = math.nan
    elif case == "no-lr":
        argv = ["--no-plot"]
        path = tmp_path / "run.csv"
        path.write_text("step,loss\n" + "".join(f"{s},{y}\n" for s, y in zip(steps, loss)))
    elif case == "other-run":
        argv = ["--schedule", "cosine:final=0.1,warmup=200", "--steps", str(T), "--no-plot"]
    elif case == "other-horizon":
        argv = ["--schedule", spec, "--steps", "4000", "--no-plot"]
    if case != "no-lr":
        path = write_csv(tmp_path / "run.csv", steps, lr, loss)
    code, out, err = run(["run", str(path)] + argv, capsys)
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert want in err, err


def test_a_prior_law_from_pilot_runs_predicts_the_cooldown_of_a_constant_lr_run(tmp_path,
                                                                                capsys):
    """Pilot runs (constant and cosine, 5k steps) -> a schedule law -> the prior of a 20k-step
    WSD run seen only in its stable phase: its planned cooldown is predicted (4x longer)."""
    pilots = []
    for name, spec in (("const", "constant:warmup=200"), ("cos", "cosine:final=0.1,warmup=200")):
        steps, lr, loss, _ = law_curve(spec, 5000, 5000, every=25)
        pilots.append(write_csv(tmp_path / f"{name}.csv", steps, lr, loss))
    law = tmp_path / "law.yaml"
    code, out, err = run(["schedule", "fit", str(pilots[0]), "--curve", str(pilots[1]),
                          "--law", "valley", "--out", str(law)], capsys)
    assert code == 0, err
    spec, T = "wsd:cooldown=0.2,warmup=200", 20000
    steps, lr, loss, m = law_curve(spec, T, 8000, noise=0.001)
    path = write_csv(tmp_path / "run.csv", steps, lr, loss)
    code, out, err = run(["run", str(path), "--schedule", spec, "--steps", str(T), "--law",
                          str(law), "--no-plot", "--json"], capsys)
    assert code == 0, err
    res = json.loads(out)
    p = next(p for p in res["predictions"] if p["scenario"] == "plan")
    true = float(valley_predict(THETA, m, np.array([T]))[0])
    assert p["lo"] <= true <= p["hi"] and abs(p["loss"] / true - 1) < 0.005
    # holding the LR is worse than the plan; the chosen cooldown is as good, under the true
    # law, as the truly best of the candidates (within 0.1%)
    const = next(p for p in res["predictions"] if p["scenario"] == "constant")
    assert const["loss"] > p["loss"] + 0.01
    plan = make_plan(read_log(path), spec, T)

    def true_final(start, shape):
        lrs = sc.cooldown_lrs(plan, start, T - start, shape)
        return float(valley_predict(THETA, lrs / 3e-4, np.array([T]))[0])

    b = res["best_cooldown"]
    best_true = min(true_final(s, sh) for sh in sc.SHAPES for s in sc.cooldown_starts(8000, T))
    assert true_final(b["start"], b["shape"]) <= best_true * 1.001


def test_growing_grad_norm_and_logits_are_reported_with_remedies_but_are_no_alarm(tmp_path,
                                                                                   capsys):
    spec, T = "cosine:final=0.1,warmup=200", 20000
    steps, lr, loss, _ = law_curve(spec, T, 10000, noise=0.001)
    gn = 0.5 * np.exp(1.5 * np.clip(steps / 10000 - 0.5, 0, None) * 2)   # x4.5 by the end
    path = tmp_path / "run.csv"
    path.write_text("step,lr,loss,grad_norm,max_logit\n" + "".join(
        f"{s},{a},{b},{g},{30 * g}\n" for s, a, b, g in zip(steps, lr, loss, gn)))
    code, out, err = run(["run", str(path), "--schedule", spec, "--steps", str(T), "--no-plot"],
                         capsys)
    assert code == 0, err
    assert "grad norm growing" in out and "weight decay" in out
    assert "largest logit growing" in out and "QK-layernorm" in out
    # a flat grad norm says nothing
    path.write_text("step,lr,loss,grad_norm\n" + "".join(
        f"{s},{a},{b},0.5\n" for s, a, b in zip(steps, lr, loss)))
    code, out, err = run(["run", str(path), "--schedule", spec, "--steps", str(T), "--no-plot"],
                         capsys)
    assert code == 0 and "grad norm" not in out


def test_logit_growth_is_read_from_nanogpt_torchtitan_and_megatron_text_logs(tmp_path, capsys):
    """Text logs carry the largest logit as one more field of the step line; a growing one
    reaches the health check (a warning with remedies, not an alarm)."""
    spec, T = "cosine:final=0.1,warmup=200", 20000
    steps, lr, loss, _ = law_curve(spec, T, 10000, noise=0.001)
    logit = 20 * np.exp(3 * np.clip(steps / 10000 - 0.5, 0, None))       # x4.5 by the end
    # nanoGPT's train.py line, with the logit appended as a trainer that logs it would
    nano = tmp_path / "nano.log"
    nano.write_text("".join(f"iter {s}: loss {y:.4f}, time 101.20ms, mfu 31.52%, "
                            f"max_logit {x:.2f}\n" for s, y, x in zip(steps, loss, logit)))
    # torchtitan's metrics line (ANSI colours), with an attention-logit field
    titan = tmp_path / "titan.log"
    titan.write_text("[rank0]:[titan] 2026-12-06 06:00:00,000 - root - INFO - Training starts "
                     "at step 1, with local batch size 8, global batch size 64\n" + "".join(
        f"\x1b[31mstep: {s:>5}  \x1b[32mloss: {y:7.4f}  \x1b[33mgrad_norm:  0.9000  "
        f"\x1b[34mmax_attn_logit: {x:7.3f}  \x1b[36mmemory: 10.24GiB(25.86%)  tps: 1,024"
        f"\x1b[39m\n" for s, y, x in zip(steps, loss, logit)))
    # Megatron-LM's iteration line; the output logit is smaller, the attention one is read
    mega = tmp_path / "megatron.log"
    mega.write_text("".join(
        f" [2026-12-06 06:00:00] iteration {s:>8}/{T:>8} | consumed samples: {s * 256:>10} | "
        f"learning rate: {a:.6E} | global batch size:   256 | lm loss: {y:.6E} | "
        f"max output logit: {x / 4:.3f} | max attention logit: {x:.3f} | grad norm: 0.900 |\n"
        for s, a, y, x in zip(steps, lr, loss, logit)))
    for path in (nano, titan, mega):
        log = read_log(path)
        assert log.fmt == "text" and np.allclose(log.logit, np.round(logit, 2), atol=0.01)
        code, out, err = run(["run", str(path), "--schedule", spec, "--steps", str(T),
                              "--peak-lr", "3e-4", "--no-plot"], capsys)
        assert code == 0, err
        assert "largest logit growing" in out and "QK-layernorm" in out
        assert "grad norm growing" not in out
    assert np.allclose(read_log(mega).lr, lr, rtol=1e-5)
    # a logit that stays put says nothing
    nano.write_text("".join(f"iter {s}: loss {y:.4f}, time 101.20ms, mfu 31.52%, "
                            f"max_logit 20.00\n" for s, y in zip(steps, loss)))
    code, out, err = run(["run", str(nano), "--schedule", spec, "--steps", str(T),
                          "--peak-lr", "3e-4", "--no-plot"], capsys)
    assert code == 0 and "logit" not in out
