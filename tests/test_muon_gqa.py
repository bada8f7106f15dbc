"""The Muon view uses the real shapes of a GQA model: key/value weights of n_kv_heads heads, so
each group's LR is what the PyTorch snippet computes from the real module's weights."""
import json
import math

import pytest

from advisor import recommend
from advisor.export.pytorch import pytorch_snippet
from advisor.recommendation.muon_view import with_muon
from advisor.specs.modelspec import spec_from_hf_config

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
if not hasattr(torch.optim, "Muon"):
    pytest.skip("torch.optim.Muon needs torch >= 2.9", allow_module_level=True)

# Llama-3-8B's attention in miniature: 32 query heads, 8 key/value heads (4:1), head_dim 16
CFG = dict(model_type="llama", hidden_size=512, num_hidden_layers=2, num_attention_heads=32,
           num_key_value_heads=8, intermediate_size=1024, vocab_size=128)


@pytest.fixture(scope="module")
def model_and_rec(tmp_path_factory):
    config = transformers.AutoConfig.for_model(**CFG)
    model = transformers.AutoModelForCausalLM.from_config(config)
    path = tmp_path_factory.mktemp("gqa") / "config.json"
    config.to_json_file(path)
    rec = recommend(model_spec=spec_from_hf_config(path), tokens=1e9)
    return model, with_muon(rec, "spectral")


def test_the_view_lists_the_real_modules_shapes(model_and_rec):
    model, rec = model_and_rec
    real = {tuple(p.shape) for n, p in model.named_parameters()
            if p.ndim == 2 and ".layers." in n}
    listed = {tuple(g.shape) for g in rec.optimizer.muon.groups}
    assert listed == real
    kv = next(g for g in rec.optimizer.muon.groups if g.matrices == "attention k, v")
    assert kv.shape == (8 * 16, 512)          # not 512 x 512


def test_each_groups_lr_is_what_the_snippet_gives_the_real_weights(model_and_rec):
    model, rec = model_and_rec
    ns = {}
    exec(compile(pytorch_snippet(rec), "snippet.py", "exec"), ns)
    muon, _ = ns["build_optimizers"](model)
    by_shape = {}
    for group in muon.param_groups:
        for p in group["params"]:
            assert group["adjust_lr_fn"] == "original"    # spectral folds into the group LR
            # torch's "original" adjustment: the step uses lr * sqrt(max(1, fan_out / fan_in))
            by_shape[tuple(p.shape)] = group["lr"] * math.sqrt(max(1.0, p.shape[0] / p.shape[1]))
    for g in rec.optimizer.muon.groups:
        # torch's "original" adjustment multiplies the group LR by sqrt(max(1, out/in))
        effective = g.torch_group_lr * (math.sqrt(max(1.0, g.shape[0] / g.shape[1]))
                                        if g.adjust_lr_fn == "original" else 1.0)
        assert by_shape[tuple(g.shape)] == pytest.approx(effective, rel=2e-3), g.matrices
    json.dumps(rec.to_dict())
