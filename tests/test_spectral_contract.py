"""check-spectral on the muP code people actually write (issue 25): attention found however
it is written, the readout judged from the logits wherever the multiplier sits, the contract's
adapters (outputs, layout, hooks, LR scales, seeding, cwd imports, JSON-only stdout), and
statistics that hold for self-seeding factories."""
import json
import math
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from calibration.spectral import probes
from calibration.spectral import verdict as V
from calibration.spectral.attention import AttentionRecorder
from calibration.spectral.contract import (Adapted, Contract, apply_lr_scales, detect_layout,
                                           load_callable, reseeded)

# --------------------------------------------------------------------------------------
# Attention, however written: total scale of q.k exact, logits recorded
# --------------------------------------------------------------------------------------


def _qk(d=16, heads=2, T=5, B=3):
    torch.manual_seed(0)
    return torch.randn(B, heads, T, d), torch.randn(B, heads, T, d)


@pytest.mark.parametrize("style", ["sdpa", "sdpa-prescaled", "matmul-after", "q-prescaled",
                                   "qk-quartic", "baddbmm-alpha", "einsum", "tensor-divisor"])
def test_the_scale_of_q_k_is_found_wherever_it_is_applied(style):
    q, k = _qk()
    v = torch.randn_like(q)
    s = 0.3
    rec = AttentionRecorder()
    with torch.no_grad(), rec:
        if style == "sdpa":
            F.scaled_dot_product_attention(q, k, v, scale=s)
        elif style == "sdpa-prescaled":
            F.scaled_dot_product_attention(q * s, k, v, scale=1.0)
        elif style == "matmul-after":
            att = (q @ k.transpose(-2, -1)) * s
            att = att.masked_fill(torch.ones(5, 5).tril() == 0, float("-inf"))
            F.softmax(att, dim=-1)
        elif style == "q-prescaled":
            qs = (q * s).reshape(6, 5, 16)
            torch.bmm(qs, k.reshape(6, 5, 16).transpose(1, 2)).softmax(-1)
        elif style == "qk-quartic":
            a = q / (1 / s) ** 0.5
            b = k * s ** 0.5
            torch.softmax(torch.matmul(a, b.transpose(2, 3)), dim=-1)
        elif style == "baddbmm-alpha":
            torch.baddbmm(torch.zeros(6, 5, 5), q.reshape(6, 5, 16),
                          k.reshape(6, 5, 16).transpose(1, 2), alpha=s).softmax(-1)
        elif style == "einsum":
            F.softmax(torch.einsum("bhqd,bhkd->bhqk", q, k) * s, dim=-1)
        elif style == "tensor-divisor":
            F.softmax(torch.matmul(q, k.transpose(-1, -2)) / torch.full([], 1 / s), dim=-1)
    assert len(rec.calls) == 1, rec.calls
    call = rec.calls[0]
    assert call["scale"] == pytest.approx(s, rel=1e-6) and call["d_head"] == 16
    assert probes.attention_scale_stat(call) == pytest.approx(s * 16, rel=1e-6)
    ref = (s * (q @ k.transpose(-2, -1))).reshape(call["logits"].shape)
    finite = call["logits"] != 0
    assert torch.allclose(call["logits"][finite], ref[finite], atol=1e-5)


def test_a_softmax_that_is_not_over_a_q_k_product_is_not_attention():
    rec = AttentionRecorder()
    with torch.no_grad(), rec:
        F.softmax(nn.Linear(8, 4)(torch.randn(3, 8)), dim=-1)       # a router, a classifier
    assert rec.calls == []


@pytest.mark.parametrize("heads", [2, 4])
def test_nn_multihead_attention_is_read_from_its_projections(heads):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(32, heads, batch_first=True)
    x = torch.randn(2, 6, 32)
    rec = AttentionRecorder()
    with torch.no_grad(), rec:
        mha(x, x, x, need_weights=False)
    d = 32 // heads
    assert [c["kind"] for c in rec.calls] == ["multihead"]
    assert probes.attention_scale_stat(rec.calls[0]) == pytest.approx(math.sqrt(d))
    W, b = mha.in_proj_weight, mha.in_proj_bias
    q = F.linear(x, W[:32], b[:32]).view(2, 6, heads, d).transpose(1, 2)
    k = F.linear(x, W[32:64], b[32:64]).view(2, 6, heads, d).transpose(1, 2)
    assert torch.allclose(rec.calls[0]["logits"], (q @ k.transpose(-2, -1)) / math.sqrt(d),
                          atol=1e-5)


def test_an_attention_the_check_cannot_see_is_reported_not_passed_silently():
    from calibration.spectral.invariance import run_check

    class LinearAttention(nn.Module):          # no softmax of a q.k product, no SDPA
        def __init__(self, w):
            super().__init__()
            self.qkv, self.o = nn.Linear(w, 3 * w), nn.Linear(w, w)

        def forward(self, x):
            q, k, v = self.qkv(x).chunk(3, -1)
            kv = torch.cumsum(F.elu(k) + 1, dim=1) * v
            return self.o(torch.sigmoid(q) * kv)

    class M(nn.Module):
        def __init__(self, w):
            super().__init__()
            self.emb, self.attn, self.out = nn.Embedding(256, w), LinearAttention(w), nn.Linear(w, 256)

        def forward(self, idx):
            return self.out(self.attn(self.emb(idx)))

    res = run_check(M, (8, 16, 32), steps=2, seeds=1, seq_len=8)
    assert res.attention == []
    assert any("attention NOT measured" in n and "attn" in n for n in res.notes)
    assert "note: attention NOT measured" in res.report()


# --------------------------------------------------------------------------------------
# The readout, judged from the logits
# --------------------------------------------------------------------------------------

class Readout(nn.Module):
    """Final hidden state (Theta(1)) -> logits with muP's 1/m placed in three ways."""

    def __init__(self, width, where):
        super().__init__()
        from mup import MuReadout
        self.where, self.m = where, width / 64
        self.lm_head = (MuReadout(width, 10, bias=False) if where == "mureadout"
                        else nn.Linear(width, 10, bias=True))

    def forward(self, h):
        if self.where == "before":
            return self.lm_head(h / self.m)
        if self.where == "after":
            return self.lm_head(h) / self.m
        return self.lm_head(h)


@pytest.mark.parametrize("where", ["mureadout", "before", "after", "none"])
def test_the_readout_multiplier_is_measured_wherever_it_sits(where):
    pytest.importorskip("mup")
    from mup import set_base_shapes
    torch.manual_seed(0)
    model = Readout(256, where)
    if where == "mureadout":
        set_base_shapes(model, Readout(64, where), delta=Readout(128, where))
    rec = probes.record(model, torch.randn(4, 7, 256))
    c_act, c_w = probes.readout_scales(model, rec)["lm_head"]
    expect = 1.0 if where == "none" else 0.25                     # m = 4
    assert c_w == pytest.approx(expect, rel=0.05)                 # rms(h) = 1 up to sampling
    assert c_act == pytest.approx(0.25 if where == "after" else 1.0, rel=1e-6)


def test_a_hidden_layer_that_happens_to_have_the_logits_shape_is_no_readout():
    torch.manual_seed(0)
    fc, head = nn.Linear(16, 10), nn.Linear(10, 10)
    model = nn.Sequential(fc, nn.GELU(), nn.LayerNorm(10), head)
    rec = probes.record(model, torch.randn(4, 7, 16))
    assert set(probes.readout_scales(model, rec)) == {"3"}


def test_spectral_multiplier_overrides_the_measured_one():
    from calibration.spectral.invariance import _effective
    wts = {"w0": {"head": torch.ones(2, 4)}, "w1": {"head": torch.ones(2, 4) * 2},
           "readout": {"head": 0.5}, "declared": {"head": 0.1}, "overrides": {"head"}}
    w0, w1 = _effective(wts, lambda n: "readout")
    assert float(w1["head"][0, 0]) == pytest.approx(0.2)          # declared, not measured
    wts["overrides"] = set()
    w0, w1 = _effective(wts, lambda n: "readout")
    assert float(w1["head"][0, 0]) == pytest.approx(1.0)


# --------------------------------------------------------------------------------------
# The contract's adapters
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("wrap", [lambda t: t, lambda t: (t, None), lambda t: {"logits": t},
                                  lambda t: {"loss": None, "out": t}, lambda t: [t]])
def test_logits_are_found_in_every_output_form(wrap):
    t = torch.randn(2, 3, 4)
    assert probes.logits_of(wrap(t)) is t


def test_a_model_output_like_dict_with_attributes():
    from calibration.spectral.zoo_styles import CausalLMOutput
    t = torch.randn(2, 3, 4)
    assert probes.logits_of(CausalLMOutput(loss=torch.tensor(1.0), logits=t)) is t


def test_layout_is_detected_and_adapted():
    from calibration.spectral import zoo_styles as zs
    torch.manual_seed(0)
    x = torch.randint(0, 256, (4, 12))
    pytest.importorskip("mup")
    seq_first, _ = zs.seq_first()(64)
    batch_first, _ = zs.nanogpt()(64)
    assert detect_layout(seq_first, x, 256) == "seq-first"
    assert detect_layout(batch_first, x, 256) == "batch-first"       # zero-init readout too
    out = Adapted(seq_first, "seq-first")(x)
    assert out.shape == (4, 12, 256)
    assert torch.allclose(out, seq_first(x.T).transpose(0, 1))


def test_lr_scales_in_param_groups_are_applied_once():
    p, q = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([{"params": [p], "lr": 0.1, "lr_scale": 0.25}, {"params": [q]}],
                            lr=0.1)
    assert apply_lr_scales(opt, "lr_scale") == 1
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(0.025), 0.1]


def test_a_self_seeding_factory_is_offset_per_replicate():
    def factory():
        torch.manual_seed(7)
        return torch.randn(3)

    with reseeded(0) as asked0:
        a = factory()
    with reseeded(1) as asked1:
        b = factory()
    with reseeded(0):
        c = factory()
    assert asked0 == asked1 == [7]
    assert not torch.equal(a, b) and torch.equal(a, c)
    assert torch.manual_seed.__name__ == "manual_seed"                # restored


def test_deterministic_rows_are_exact_and_training_replicates_never_merge():
    w = [64, 128, 256]
    same = np.array([[4.0] * 4, [4.1] * 4, [4.0] * 4])
    fit = V.fit_slope(w, same)
    assert fit.exact and fit.lo == fit.hi == fit.slope
    assert V.judge(fit, 0.3, False) == "pass"                         # not [-0.32, +0.39]
    differ = same * np.array([1.0, 1.01, 0.99, 1.02])
    assert not V.fit_slope(w, differ).exact and V.fit_slope(w, differ).n_replicates == 4


def test_the_seeds_advised_settle_the_row_when_followed():
    """Simulated rows (true slope 0.12, log scatter 0.25 per point): at 4 replicates many are
    inconclusive; rerun with the advised count, the row settles in most cases."""
    rng = np.random.default_rng(3)
    w = np.array([64, 128, 256])

    def draw(n):
        return np.exp(0.12 * np.log(w)[:, None] + rng.normal(0, 0.25, size=(3, n)))

    advised, settled = 0, 0
    for _ in range(200):
        fit = V.fit_slope(w, draw(4))
        if V.judge(fit, 0.3, False) != "inconclusive":
            continue
        n = V.seeds_to_settle(fit, 0.3, False)
        if n is None:
            continue
        advised += 1
        settled += V.judge(V.fit_slope(w, draw(n)), 0.3, False) != "inconclusive"
    assert advised >= 20
    assert settled / advised >= 0.85, (settled, advised)


def test_a_factory_in_the_current_directory_is_importable_and_prints_stay_off_stdout(
        tmp_path, monkeypatch, capsys):
    (tmp_path / "my_muP_model.py").write_text(textwrap.dedent("""
        import torch, torch.nn as nn
        class M(nn.Module):
            def __init__(self, w):
                super().__init__()
                self.emb, self.out = nn.Embedding(256, w), nn.Linear(w, 256)
            def forward(self, idx):
                print("forward!")                     # a chatty model
                return self.out(self.emb(idx)) * (16 / self.out.in_features), None
        def build(width):
            print("building", width)
            return M(width)
    """))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert callable(load_callable("my_muP_model:build"))
    from advisor.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["check-spectral", "--factory", "my_muP_model:build", "--widths", "16,32,64",
              "--steps", "3", "--seeds", "2", "--seq-len", "8", "--format", "json"])
    out = capsys.readouterr()
    doc = json.loads(out.out)                             # nothing but JSON on stdout
    assert exc.value.code == doc["exit_code"] and "forward!" in out.err
    assert doc["layout"] == "batch-first" and any(r["layer"] == "logits" for r in doc["rows"])


def test_cli_hooks_for_a_model_that_is_not_a_language_model(capsys):
    pytest.importorskip("mup")
    from advisor.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["check-spectral", "--factory", "calibration.spectral.zoo:mlp", "--widths",
              "32,64,128", "--steps", "5", "--seeds", "2", "--format", "json",
              "--batch-hook", "calibration.spectral.zoo_styles:mlp_batch",
              "--loss", "calibration.spectral.zoo_styles:mlp_loss"])
    doc = json.loads(capsys.readouterr().out)
    assert exc.value.code == doc["exit_code"]
    assert {"fc1", "fc2", "fc3", "readout"} <= {r["layer"] for r in doc["rows"]}


@pytest.mark.parametrize("args", [["--layout", "sideways"], ["--vocab", "1"],
                                  ["--loss", "no_such_module:f"], ["--data", "/no/such/file.npy"]])
def test_contract_bad_input_exits_2(args, capsys):
    from advisor.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["check-spectral", "--factory", "calibration.spectral.example_factory:mup_gpt",
              *args])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: ")


def test_contract_validates_its_settings():
    from advisor.errors import AdvisorError
    with pytest.raises(AdvisorError):
        Contract(layout="diagonal")
    with pytest.raises(AdvisorError):
        Contract(seq_len=0)
