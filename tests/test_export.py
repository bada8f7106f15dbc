"""Each trainer format is read back by that trainer's own parser and means the same run."""
import json
import tomllib

import numpy as np
import pytest
import yaml

from advisor import recommend
from advisor.export import FORMATS, export
from advisor.rules.lr_schedule import parse_schedule


@pytest.fixture(scope="module")
def rec():
    # a small target keeps the schedule loops below short
    return recommend(params=3e8, tokens=3e9, seq_len=2048)


def test_yaml_and_json_hold_the_same_recommendation(rec):
    assert yaml.safe_load(export(rec, "yaml")) == json.loads(export(rec, "json"))


def test_nanogpt_config_is_read_as_nanogpt_reads_it(rec):
    # nanoGPT's configurator.py exec()s the config file into train.py's globals
    globs = {}
    exec(compile(export(rec, "nanogpt"), "config.py", "exec"), globs)
    assert globs["learning_rate"] == rec.learning_rate.value
    assert globs["weight_decay"] == rec.weight_decay.value
    assert (globs["batch_size"] * globs["gradient_accumulation_steps"]
            == rec.batch_size_sequences.value)
    assert globs["block_size"] == 2048 and globs["max_iters"] == rec.total_steps.value
    assert globs["n_embd"] == rec.model["d_model"] and globs["n_layer"] == rec.model["n_layers"]


def test_torchtitan_02_toml_parses_and_carries_the_wsd_schedule(rec):
    cfg = tomllib.loads(export(rec, "torchtitan-0.2"))
    assert cfg["optimizer"]["lr"] == rec.learning_rate.value
    assert cfg["training"]["global_batch_size"] == rec.batch_size_sequences.value
    assert cfg["training"]["steps"] == rec.total_steps.value
    assert cfg["lr_scheduler"]["decay_type"] == "sqrt"          # torchtitan's name for 1-sqrt
    assert cfg["lr_scheduler"]["decay_ratio"] == pytest.approx(0.2, abs=1e-3)
    assert cfg["lr_scheduler"]["warmup_steps"] == rec.warmup_steps.value


def test_hf_training_arguments_parse_and_give_our_schedule(rec):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    d = json.loads(export(rec, "hf"))
    d.update(bf16=False, use_cpu=True)          # CI has no GPU; the rest is parsed as written
    (args,) = transformers.HfArgumentParser(transformers.TrainingArguments).parse_dict(d)
    assert args.learning_rate == rec.learning_rate.value
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == \
        rec.batch_size_sequences.value
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=args.learning_rate)
    sched = transformers.get_scheduler(args.lr_scheduler_type, opt,
                                       num_warmup_steps=args.warmup_steps,
                                       num_training_steps=args.max_steps,
                                       scheduler_specific_kwargs=args.lr_scheduler_kwargs)
    hf = []
    for _ in range(args.max_steps):
        hf.append(opt.param_groups[0]["lr"] / args.learning_rate)
        opt.step()
        sched.step()
    ours = parse_schedule(rec.schedule["spec"]).multipliers(args.max_steps)
    # HF counts steps from 0, we from 1: compare the stable phase and the cooldown's shape
    hf = np.array(hf)
    decay = rec.schedule["decay_start_step"]
    assert np.allclose(hf[args.warmup_steps:decay], 1.0)
    assert np.allclose(hf[decay + 1:], ours[decay:-1], atol=0.02)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_is_nonempty_text(rec, fmt):
    assert export(rec, fmt).strip()
