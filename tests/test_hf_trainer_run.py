"""Hugging Face's Trainer trains a tiny real Llama with the exported TrainingArguments: it takes
the exported global batch per optimizer step and the exported schedule, read back at every
step. Data: random token ids (the schedule and the batch, not the loss, are under test)."""
import json

import numpy as np
import pytest

from advisor import recommend
from advisor.export import export
from advisor.rules.lr_schedule import parse_schedule

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
from hf_ddp_worker import CountingDataset, LrRecorder  # noqa: E402  (beside this file)

SEQ_LEN = 64


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)          # a tiny model: threads only contend
    yield
    torch.set_num_threads(n)


def test_trainer_runs_the_exported_batch_and_schedule(tmp_path, one_thread):
    # a target small enough for a CPU: ~100 optimizer steps of ~850 sequences, 2 micro-steps
    rec = recommend(params=3e7, tokens=6e6, seq_len=SEQ_LEN, devices=1, micro_batch=424)
    assert rec.batch_plan.accumulation == 2
    d = json.loads(export(rec, "hf"))
    assert d["per_device_train_batch_size"] * d["gradient_accumulation_steps"] == \
        rec.batch_size_sequences.value
    d.update(bf16=False, use_cpu=True, output_dir=str(tmp_path), report_to=[],
             save_strategy="no", logging_strategy="no", dataloader_drop_last=True,
             disable_tqdm=True)        # CPU and no files; the batch and schedule as exported
    (args,) = transformers.HfArgumentParser(transformers.TrainingArguments).parse_dict(d)
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=32,
                                      max_position_embeddings=SEQ_LEN)
    model = transformers.LlamaForCausalLM(config)
    steps, global_batch = args.max_steps, rec.batch_size_sequences.value
    data = CountingDataset(steps * global_batch)
    rec_cb = LrRecorder()
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data,
                                   callbacks=[rec_cb])
    out = trainer.train()
    assert out.global_step == rec.total_steps.value
    assert data.seen == steps * global_batch        # every step took the exported batch
    ours = parse_schedule(rec.schedule.spec).multipliers(steps)
    theirs = np.array(rec_cb.lrs) / args.learning_rate
    assert len(theirs) == steps
    # HF counts steps from 0, the advisor from 1 (as tests/test_export.py)
    decay = rec.schedule.decay_start_step
    assert np.allclose(theirs[args.warmup_steps:decay], 1.0)
    assert np.allclose(theirs[decay + 1:], ours[decay:-1], atol=0.02)
    assert np.all(np.diff(theirs[:args.warmup_steps]) > 0)           # the linear warmup


def test_two_processes_take_the_exported_global_batch_not_twice_it(tmp_path):
    """The issue's failure: accumulation written for one device doubled the batch on two.
    torchrun starts two CPU ranks (gloo); together they draw exactly the global batch."""
    import subprocess
    import sys
    from pathlib import Path
    rec = recommend(params=3e7, tokens=6e6, seq_len=SEQ_LEN, devices=2, micro_batch=212)
    assert rec.batch_plan.accumulation == 2
    d = json.loads(export(rec, "hf"))
    assert "world size 2" in d["run_name"]
    d.update(bf16=False, use_cpu=True, output_dir=str(tmp_path), report_to=[],
             save_strategy="no", logging_strategy="no", disable_tqdm=True,
             ddp_backend="gloo", dataloader_drop_last=True)
    path = tmp_path / "args.json"
    path.write_text(json.dumps(d))
    steps, global_batch = rec.total_steps.value, rec.batch_size_sequences.value
    worker = Path(__file__).with_name("hf_ddp_worker.py")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                        "--standalone", str(worker), str(path), str(tmp_path / "out"),
                        str(steps * global_batch)], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"out.{i}.json").read_text()) for i in (0, 1)]
    assert all(x["world_size"] == 2 and x["steps"] == steps for x in ranks)
    assert sum(x["seen"] for x in ranks) == steps * global_batch
    ours = parse_schedule(rec.schedule.spec).multipliers(steps)
    theirs = np.array(ranks[0]["lrs"]) / d["learning_rate"]
    decay = rec.schedule.decay_start_step
    assert np.allclose(theirs[decay + 1:], ours[decay:-1], atol=0.02)
