"""`advisor recommend --optimizer muon`: the Muon + AdamW config, its exports and snippet."""
import json
import math
import subprocess
import sys
import tomllib

import pytest

from advisor import recommend
from advisor.export.pytorch import pytorch_snippet
from advisor.recommendation.muon_view import CONVERSION_WARNING, muon_block, with_muon


def cli(*args):
    return subprocess.run([sys.executable, "-m", "advisor.cli", *args], capture_output=True,
                          text=True)


@pytest.fixture(scope="module")
def rec7b():
    return recommend(7e9)


def _finite_numbers(x):
    if isinstance(x, dict):
        return all(_finite_numbers(v) for v in x.values())
    if isinstance(x, list):
        return all(_finite_numbers(v) for v in x)
    return not isinstance(x, float) or math.isfinite(x)


def test_cli_json_has_muon_and_adamw_groups_and_the_conversion_warning():
    r = cli("recommend", "--params", "7e9", "--optimizer", "muon", "--format", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    opt = d["optimizer"]
    mu = opt["muon"]
    assert opt["name"] == "Muon + AdamW" and mu["convention"] == "match_rms_adamw"
    assert mu["lr"]["value"] == d["learning_rate"]["value"]       # Moonlight: reuse AdamW's
    assert mu["weight_decay"]["value"] == d["weight_decay"]["value"]
    assert (mu["momentum"], mu["nesterov"], mu["ns_steps"]) == (0.95, True, 5)
    assert mu["ns_coefficients"] == [3.4445, -4.775, 2.0315]
    shapes = {g["matrices"]: g["shape"] for g in mu["groups"]}
    assert shapes["MLP down"] == [d["model"]["d_model"], d["model"]["ffn_hidden"]]
    assert {g["group"] for g in opt["adamw"]["groups"]} >= {"embedding", "readout (unembedding)"}
    assert CONVERSION_WARNING in d["warnings"] and "not a fit" in mu["lr"]["note"]
    assert _finite_numbers(d)


def test_spectral_convention_matches_moonlight_on_square_matrices(rec7b):
    spec = muon_block(rec7b, "spectral")["muon"]
    rms = muon_block(rec7b, "match_rms_adamw")["muon"]
    d = rec7b.model["d_model"]
    assert spec["lr"]["value"] == pytest.approx(rec7b.learning_rate.value * 0.2 * d ** 0.5,
                                                rel=1e-3)
    sq_s = next(g for g in spec["groups"] if g["matrices"] == "attention q, o")
    sq_r = next(g for g in rms["groups"] if g["matrices"] == "attention q, o")
    assert sq_s["torch_group_lr"] * sq_s["update_scale"] == pytest.approx(
        sq_r["torch_group_lr"] * sq_r["update_scale"], rel=1e-3)
    assert sq_s["mup_update_multiplier_vs_base_width"] == 1.0       # spectral transfers
    assert sq_r["mup_update_multiplier_vs_base_width"] == pytest.approx(
        (d / rec7b.mup["base_width"]) ** 0.5, rel=1e-3)


@pytest.mark.parametrize("fmt", ["nanogpt", "hf", "torchtitan-0.2", "torchtitan"])
def test_trainer_exports_say_they_cannot_express_muon_and_still_parse(fmt):
    r = cli("recommend", "--params", "7e9", "--optimizer", "muon", "--format", fmt)
    assert r.returncode == 0, r.stderr
    assert f"note: Muon not expressible in {fmt}" in r.stderr
    if fmt == "torchtitan-0.2":
        assert tomllib.loads(r.stdout)["optimizer"]["name"] == "AdamW"
    elif fmt == "torchtitan":
        compile(r.stdout, "torchtitan_config.py", "exec")
    elif fmt == "hf":
        assert json.loads(r.stdout)["learning_rate"] > 0
    else:
        compile(r.stdout, "nanogpt_config.py", "exec")
    plain = cli("recommend", "--params", "7e9", "--format", fmt)
    assert "Muon" not in plain.stderr


def test_pytorch_format_needs_muon():
    r = cli("recommend", "--params", "7e9", "--format", "pytorch")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("convention", ["match_rms_adamw", "spectral"])
def test_pytorch_snippet_builds_and_steps_the_two_optimizers(rec7b, convention):
    torch = pytest.importorskip("torch")
    if not hasattr(torch.optim, "Muon"):
        pytest.skip("torch.optim.Muon needs torch >= 2.9")
    code = pytorch_snippet(with_muon(rec7b, convention))
    ns = {}
    exec(compile(code, "muon_snippet.py", "exec"), ns)

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(16, 8)
            self.up = torch.nn.Linear(8, 24, bias=False)
            self.down = torch.nn.Linear(24, 8, bias=False)
            self.norm = torch.nn.LayerNorm(8)
            self.lm_head = torch.nn.Linear(8, 16, bias=False)

        def forward(self, x):
            h = self.embed(x)
            h = h + self.down(torch.relu(self.up(self.norm(h))))
            return self.lm_head(h)

    torch.manual_seed(0)
    model = Tiny()
    muon, adamw = ns["build_optimizers"](model)
    on_muon = {id(p) for g in muon.param_groups for p in g["params"]}
    assert on_muon == {id(model.up.weight), id(model.down.weight)}
    n_adam = sum(len(g["params"]) for g in adamw.param_groups)
    assert n_adam == 4                       # embedding, lm_head, norm weight and bias
    lr = rec7b.learning_rate.value * (1 if convention == "match_rms_adamw"
                                      else 0.2 * rec7b.model["d_model"] ** 0.5)
    down = next(g for g in muon.param_groups
                if any(p is model.down.weight for p in g["params"]))
    if convention == "spectral":             # 8 x 24: torch's "original" gives 1, spectral 1/sqrt(3)
        assert down["lr"] == pytest.approx(float(f"{lr:.4g}") / math.sqrt(3), rel=1e-9)
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.randint(0, 16, (4, 6))
    torch.nn.functional.cross_entropy(model(x).reshape(-1, 16), x.reshape(-1)).backward()
    muon.step()
    adamw.step()
    after = list(model.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    assert all((a - b).abs().max() > 0 for a, b in zip(after, before))
