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

SEQ_LEN = 64


class _Recorder(transformers.TrainerCallback):
    def __init__(self):
        self.lrs = []

    def on_step_begin(self, args, state, control, optimizer=None, **kw):
        self.lrs.append(optimizer.param_groups[0]["lr"])


class _CountingDataset(torch.utils.data.Dataset):
    def __init__(self, n):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, 64, (n, SEQ_LEN), generator=g)
        self.seen = 0

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        self.seen += 1
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)          # a tiny model: threads only contend
    yield
    torch.set_num_threads(n)


def test_trainer_runs_the_exported_batch_and_schedule(tmp_path, one_thread):
    # a target small enough for a CPU: 102 optimizer steps of 464 sequences = 116 x 4 accum
    rec = recommend(params=3e7, tokens=3e6, seq_len=SEQ_LEN, devices=1, micro_batch=116)
    assert rec.batch_plan.accumulation == 4
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
    data = _CountingDataset(steps * global_batch)
    rec_cb = _Recorder()
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
