"""`--devices 8 --micro-batch 4` at 350M, 7B and 70B: a whole accumulation, and every trainer
file runs that global batch and schedule as its trainer reads it.

Readers: nanoGPT's train.py batch arithmetic (it is not on PyPI: its lines are restated);
Hugging Face's HfArgumentParser; torchtitan 0.2.2's own ConfigManager (installed with
--no-deps; its package __init__ needs triton, so the config package is loaded without it);
torchtitan 0.3.x: the Python file's AST checked against the API recorded from the 0.3.0 wheel
(tests/data/torchtitan_0_3_api.json; 0.3 needs spmd_types, torchdata and triton to import);
Megatron-LM: an argparse parser rebuilt from the options recorded from Megatron-LM's own
parser (tests/data/megatron_lm_args.json; its training package is not on PyPI), and
megatron-core's OptimizerParamScheduler (PyPI) for the LR at every step.
"""
import argparse
import ast
import importlib.util
import json
import math
import shlex
import sys
import tomllib
import types
from pathlib import Path

import pytest

from advisor import recommend
from advisor.export import export
from advisor.export.torchtitan_model import FLAVOR, torchtitan_ffn
from advisor.rules.lr_schedule import parse_schedule

DATA = Path(__file__).parent / "data"
DEVICES, MICRO = 8, 4


@pytest.fixture(scope="module", params=[3.5e8, 7e9, 7e10], ids=["350M", "7B", "70B"])
def rec(request):
    return recommend(params=request.param, devices=DEVICES, micro_batch=MICRO)


def test_the_global_batch_is_devices_x_micro_batch_x_a_whole_accumulation(rec):
    plan = rec.batch_plan
    assert (plan.devices, plan.micro_batch) == (DEVICES, MICRO)
    assert isinstance(plan.accumulation, int) and plan.accumulation >= 1
    assert DEVICES * MICRO * plan.accumulation == rec.batch_size_sequences.value
    assert rec.batch_size_tokens.value == rec.batch_size_sequences.value * rec.target.seq_len
    assert rec.total_steps.value == math.ceil(rec.target.tokens.value
                                              / rec.batch_size_tokens.value)
    assert 0 <= plan.rounding_cost_nats < 0.01        # the rounding's price, in nats


def test_nanogpt_train_py_accepts_the_file_on_that_many_processes(rec):
    g = {}
    exec(compile(export(rec, "nanogpt"), "config.py", "exec"), g)
    # nanoGPT train.py, DDP branch: assert gradient_accumulation_steps % ddp_world_size == 0;
    # gradient_accumulation_steps //= ddp_world_size; tokens_per_iter = gas * world * bs * T
    world = DEVICES
    assert g["gradient_accumulation_steps"] % world == 0
    per_rank = g["gradient_accumulation_steps"] // world
    assert per_rank * world * g["batch_size"] * g["block_size"] == rec.batch_size_tokens.value
    assert g["max_iters"] == rec.total_steps.value and g["warmup_iters"] == \
        rec.warmup_steps.value


def test_hf_training_arguments_make_the_batch_on_the_stated_world_size(rec):
    transformers = pytest.importorskip("transformers")
    d = json.loads(export(rec, "hf"))
    d.update(bf16=False, use_cpu=True)
    (args,) = transformers.HfArgumentParser(transformers.TrainingArguments).parse_dict(d)
    assert (args.per_device_train_batch_size * args.gradient_accumulation_steps * DEVICES
            == rec.batch_size_sequences.value)
    assert f"world size {DEVICES}" in args.run_name
    assert f"{rec.target.seq_len} tokens" in args.run_name
    assert args.max_steps == rec.total_steps.value


def _torchtitan_02_config_manager(monkeypatch):
    spec = importlib.util.find_spec("torchtitan")
    if spec is None:
        pytest.skip("torchtitan 0.2.2 not installed (README test command installs it)")
    from importlib.metadata import version
    if not version("torchtitan").startswith("0.2."):
        pytest.skip(f"torchtitan {version('torchtitan')} is not 0.2.x")
    pkg = types.ModuleType("torchtitan")          # its __init__ imports triton (GPU-only)
    pkg.__path__ = list(spec.submodule_search_locations)
    monkeypatch.setitem(sys.modules, "torchtitan", pkg)
    for name in [m for m in sys.modules if m.startswith("torchtitan.")]:
        monkeypatch.delitem(sys.modules, name)
    from torchtitan.config.manager import ConfigManager
    return ConfigManager


def test_torchtitan_02_reads_the_toml_with_its_own_config_manager(rec, tmp_path, monkeypatch):
    ConfigManager = _torchtitan_02_config_manager(monkeypatch)
    path = tmp_path / "job.toml"
    path.write_text(export(rec, "torchtitan-0.2"))
    job = ConfigManager().parse_args(["--job.config_file", str(path)])
    t, p = job.training, job.parallelism
    # torchtitan's train.py: global % (local * dp) == 0, accumulation = global / (local * dp)
    assert t.global_batch_size % (t.local_batch_size * p.data_parallel_shard_degree) == 0
    assert t.global_batch_size // (t.local_batch_size * p.data_parallel_shard_degree) == \
        rec.batch_plan.accumulation
    assert (t.global_batch_size, t.seq_len, t.steps) == (
        rec.batch_size_sequences.value, rec.target.seq_len, rec.total_steps.value)
    assert t.dataset != "c4_test"
    assert job.optimizer.lr == rec.learning_rate.value
    assert job.lr_scheduler.warmup_steps == rec.warmup_steps.value
    assert job.model.name == "llama3" and job.model.flavor != "debugmodel"
    if job.model.flavor == FLAVOR:            # a new shape: registered by the custom import
        assert job.experimental.custom_import
        module = "\n".join(line[4:] for line in path.read_text().splitlines()
                           if line.startswith("#   "))
        tree = ast.parse(module)
        kw = {k.arg: ast.literal_eval(k.value) for node in ast.walk(tree)
              if isinstance(node, ast.Call) for k in node.keywords}
        m = rec.model
        assert (kw["dim"], kw["n_layers"], kw["n_heads"], kw["n_kv_heads"],
                kw["vocab_size"]) == (m.d_model, m.n_layers, m.n_heads, m.n_kv_heads,
                                      m.vocab_size)
        assert torchtitan_ffn(kw["dim"], kw["multiple_of"], kw["ffn_dim_multiplier"]) == \
            m.ffn_hidden


def _calls(tree):
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            if isinstance(f, ast.Attribute) and f.attr == "Config":
                name = f"{f.value.attr if isinstance(f.value, ast.Attribute) else f.value.id}.Config"
            out.setdefault(name, []).append({k.arg: k.value for k in node.keywords})
    return out


def test_torchtitan_03_python_config_uses_only_the_recorded_03_api(rec):
    api = json.loads((DATA / "torchtitan_0_3_api.json").read_text())
    text = export(rec, "torchtitan")
    tree = ast.parse(text)
    modules = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"        # a submodule imported as a name
                assert alias.name in api["names"].get(node.module, ()) or sub in api["names"], \
                    sub
                if sub in api["names"]:
                    modules[alias.asname or alias.name] = sub
    for node in ast.walk(tree):       # _llama3.X, L.X (L = _llama3), _recipes.X: recorded names
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = modules.get("_llama3" if node.value.id == "L" else node.value.id)
            if module is not None:
                assert node.attr in api["names"][module], (module, node.attr)
    calls = _calls(tree)
    checked = {"TrainingConfig": "TrainingConfig",
               "LRSchedulersContainer.Config": "LRSchedulersContainer.Config",
               "_build_llama3_layers": "_build_llama3_layers",
               "model_registry": "model_registry"}
    for call, key in checked.items():
        for kw in calls.get(call, []):
            assert set(kw) <= set(api["params"][key]), (call, set(kw) - set(api["params"][key]))
    training = {k: ast.literal_eval(v) for k, v in calls["TrainingConfig"][0].items()}
    dp = next(ast.literal_eval(n.value) for n in ast.walk(tree) if isinstance(n, ast.Assign)
              and ast.unparse(n.targets[0]) == "config.parallelism.data_parallel_shard_degree")
    assert training["global_batch_size"] == rec.batch_size_sequences.value
    assert training["global_batch_size"] // (training["local_batch_size"] * dp) == \
        rec.batch_plan.accumulation
    assert training["global_batch_size"] % (training["local_batch_size"] * dp) == 0
    # the same schedule as the 0.2 TOML
    toml = tomllib.loads(export(rec, "torchtitan-0.2"))
    sched = {k: ast.literal_eval(v) for k, v in calls["LRSchedulersContainer.Config"][0].items()}
    assert sched == toml["lr_scheduler"]
    flavor = ast.literal_eval(calls["model_registry"][0]["flavor"] if "flavor" in
                              calls["model_registry"][0] else
                              next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                                   and getattr(n.func, "attr", "") == "model_registry").args[0])
    assert flavor in api["llama3_configs"] or flavor == FLAVOR


def _megatron_parser():
    rec_opts = json.loads((DATA / "megatron_lm_args.json").read_text())["options"]
    p = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    types_ = {"int": int, "float": float, "str": str}
    for o in rec_opts:
        kw = {"dest": o["dest"]}
        if o["action"] in ("_StoreTrueAction", "_StoreFalseAction"):
            kw["action"] = "store_true" if o["action"] == "_StoreTrueAction" else "store_false"
        elif o["action"] == "_StoreAction":
            kw["type"] = types_.get(o["type"], str)
            if o["nargs"] is not None:
                kw["nargs"] = int(o["nargs"]) if str(o["nargs"]).isdigit() else o["nargs"]
            if o["choices"] is not None and o["type"] == "str":
                kw["choices"] = o["choices"]
        else:
            continue
        p.add_argument(*o["flags"], **kw)
    return p


def _megatron_args(text):
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return _megatron_parser().parse_args(shlex.split(" ".join(lines)))


def test_megatron_args_parse_with_megatron_lms_options(rec):
    a = _megatron_args(export(rec, "megatron"))
    dp = DEVICES // (a.tensor_model_parallel_size * a.pipeline_model_parallel_size)
    # Megatron: num_micro_batches = global / (micro * dp), which must divide exactly
    assert a.global_batch_size % (a.micro_batch_size * dp) == 0
    assert a.global_batch_size // (a.micro_batch_size * dp) == rec.batch_plan.accumulation
    assert a.seq_length == rec.target.seq_len and a.train_iters == rec.total_steps.value
    assert a.lr == rec.learning_rate.value and a.weight_decay == rec.weight_decay.value
    assert a.adam_beta2 == rec.optimizer.beta2
    m = rec.model
    assert (a.num_layers, a.hidden_size, a.ffn_hidden_size, a.num_attention_heads) == (
        m.n_layers, m.d_model, m.ffn_hidden, m.n_heads)


def test_megatron_core_scheduler_gives_our_schedule_step_by_step():
    pytest.importorskip("megatron.core")
    torch = pytest.importorskip("torch")
    from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler
    rec = recommend(params=3e8, tokens=3e9, seq_len=2048, devices=DEVICES, micro_batch=MICRO)
    a = _megatron_args(export(rec, "megatron"))
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=a.lr)
    gbs = a.global_batch_size        # Megatron's training.get_optimizer_param_scheduler:
    sched = OptimizerParamScheduler(  # iteration counts x global batch, stepped by the batch
        opt, init_lr=0.0, max_lr=a.lr, min_lr=a.min_lr,
        lr_warmup_steps=a.lr_warmup_iters * gbs, lr_decay_steps=a.lr_decay_iters * gbs,
        lr_decay_style=a.lr_decay_style, start_wd=a.weight_decay, end_wd=a.weight_decay,
        wd_incr_steps=a.train_iters * gbs, wd_incr_style="constant",
        wsd_decay_steps=a.lr_wsd_decay_iters * gbs, lr_wsd_decay_style=a.lr_wsd_decay_style)
    theirs = []
    for _ in range(a.train_iters):
        sched.step(increment=gbs)
        theirs.append(opt.param_groups[0]["lr"] / a.lr)
    ours = parse_schedule(rec.schedule.spec).multipliers(a.train_iters)
    assert len(ours) == len(theirs)
    assert max(abs(x - y) for x, y in zip(ours, theirs)) < 0.02


def test_llama_3_8b_is_torchtitans_own_8b_flavor(tmp_path, monkeypatch):
    from advisor.specs.modelspec import spec_from_hf_config
    path = tmp_path / "config.json"
    path.write_text(json.dumps(dict(
        model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
        tie_word_embeddings=False, hidden_act="silu")))
    rec = recommend(model_spec=spec_from_hf_config(path), devices=DEVICES, micro_batch=MICRO)
    toml = tomllib.loads(export(rec, "torchtitan-0.2"))
    assert toml["model"]["flavor"] == "8B" and "experimental" not in toml
    assert '_llama3.model_registry("8B")' in export(rec, "torchtitan")
    a = _megatron_args(export(rec, "megatron"))
    assert a.group_query_attention and a.num_query_groups == 8
