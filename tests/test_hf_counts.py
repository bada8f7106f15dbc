"""--hf-config counts what transformers builds: a tiny real model of each model type called
exact has exactly the parameters the advisor counts; other types are not called exact."""
import json

import pytest

from advisor.laws.published import shape_from_spec
from advisor.recommendation.core import _target_shape
from advisor.specs.modelspec import EXACT_MODEL_TYPES, spec_from_hf_config, spec_from_options

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

SMALL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=8, vocab_size=101)
CONFIGS = {
    "llama": dict(SMALL, model_type="llama", num_key_value_heads=2, intermediate_size=96),
    "llama-biased": dict(SMALL, model_type="llama", num_key_value_heads=4,
                         intermediate_size=96, attention_bias=True, mlp_bias=True,
                         tie_word_embeddings=True),
    "mistral": dict(SMALL, model_type="mistral", num_key_value_heads=2, intermediate_size=96),
    "qwen2": dict(SMALL, model_type="qwen2", num_key_value_heads=2, intermediate_size=96),
    "qwen3": dict(SMALL, model_type="qwen3", num_key_value_heads=2, intermediate_size=96,
                  head_dim=16),
    "gpt2": dict(model_type="gpt2", n_embd=64, n_layer=2, n_head=4, vocab_size=101,
                 n_positions=128),
    "gpt_neox": dict(model_type="gpt_neox", hidden_size=64, num_hidden_layers=2,
                     num_attention_heads=4, intermediate_size=256, vocab_size=101),
}


def _real_count(cfg: dict) -> int:
    config = transformers.AutoConfig.for_model(**cfg)
    model = transformers.AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters()), config   # tied weights once


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_a_real_model_has_exactly_the_parameters_counted(name, tmp_path):
    real, config = _real_count(CONFIGS[name])
    path = tmp_path / "config.json"
    config.to_json_file(path)                    # the file as a user would pass it
    spec = spec_from_hf_config(path)
    shape, _, source = _target_shape(None, "llama", spec)
    assert shape.params_total == real
    assert "exact counts" in source
    assert json.loads(path.read_text())["model_type"] in EXACT_MODEL_TYPES


def test_command_line_sizes_count_a_real_llama_exactly():
    spec = spec_from_options(64, 2, 8, 2, 96, 101)
    real, _ = _real_count(dict(model_type="llama", hidden_size=64, num_hidden_layers=2,
                               num_attention_heads=8, num_key_value_heads=2,
                               intermediate_size=96, vocab_size=101))
    assert shape_from_spec(spec).params_total == real


def test_an_unverified_model_type_is_not_called_exact(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(dict(SMALL, model_type="phi3", intermediate_size=96)))
    shape, _, source = _target_shape(None, "llama", spec_from_hf_config(path))
    assert "not exact" in source and "exact counts" not in source
