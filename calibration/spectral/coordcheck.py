"""Coordinate checks: do activation sizes and their updates stay put as width (or depth) grows?

The test from Tensor Programs V (Yang et al. 2022, section 6 / Fig. 5), written here
without ``mup.coord_check`` (which needs pandas). For each width, train the proxy for a few
Adam steps at one LR on real batches and, before each step, measure on a fixed batch the
mean absolute entry of every layer's output (``act``) and of its change since step 0
(``delta``). Under muP both are flat in width; under standard parameterisation the updates
(and with them the logits) grow with width: with Adam, a hidden layer's change after one
step grows like width, since every entry moves by about LR regardless of width.

Flatness is summarised by the slope of log(size) against log(width), fitted by least squares
over the widths, at the last measured step.

The check in depth (:func:`depth_coord_check`) does the same at one width for depths 2-16 and
a depth exponent alpha (``advisor.rules.optim_rules``), per block index: the residual stream after
each block and its change since step 0, summarised by the slope against log(depth).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from advisor.cli import plots


@dataclass
class CoordCheck:
    parameterization: str
    widths: list
    steps: int
    act: dict = field(default_factory=dict)     # layer -> array (n_widths, steps)
    delta: dict = field(default_factory=dict)   # layer -> array (n_widths, steps); step 0 is 0

    def slopes(self, kind: str = "delta", step: int = -1) -> dict:
        """layer -> d log(size) / d log(width) at ``step`` (default: the last)."""
        table = self.delta if kind == "delta" else self.act
        lw = np.log(np.asarray(self.widths, dtype=float))
        out = {}
        for layer, arr in table.items():
            y = np.log(np.maximum(arr[:, step], 1e-30))
            out[layer] = float(np.polyfit(lw, y, 1)[0])
        return out

    def worst(self, kind: str = "delta") -> tuple[str, float]:
        """The layer whose size moves most with width, and its slope."""
        s = self.slopes(kind)
        layer = max(s, key=lambda k: abs(s[k]))
        return layer, s[layer]

    def plot(self, path) -> None:
        plots.coord_check_width(self, path)

def _layer_modules(model):
    mods = {"embed": model.embed}
    for i, b in enumerate(model.blocks):
        mods[f"block{i}.attn"] = b.attn
        mods[f"block{i}.mlp"] = b.mlp
        mods[f"block{i}.out"] = b
    mods["logits"] = model.readout
    return mods


def _probe_and_train(model, opt, sampler, modules: dict, steps: int):
    """The coordinate checks' loop. Draws a fixed probe batch from ``sampler``, then for t in
    0..steps-1: runs the probe through ``model`` with forward hooks on ``modules`` ({key:
    nn.Module}) and yields (t, {key: output}, {key: output at step 0}), then takes one
    optimizer step on the sampler's next batch. Hooks are removed when the loop ends."""
    import torch

    from calibration.model.proxy import compute_loss

    fixed_x, _ = sampler.next("cpu")
    outputs: dict = {}
    hooks = [m.register_forward_hook(
        lambda mod, inp, out, key=key: outputs.__setitem__(key, out.detach().float()))
        for key, m in modules.items()]
    first: dict = {}
    try:
        for t in range(steps):
            with torch.no_grad():
                model(fixed_x)
            if t == 0:
                first = {k: v.clone() for k, v in outputs.items()}
            yield t, outputs, first
            x, y = sampler.next("cpu")
            loss, _ = compute_loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    finally:
        for h in hooks:
            h.remove()


def coord_check(parameterization: str, widths=(32, 64, 128, 256), steps: int = 4,
                lr: float = 2 ** -6, depth: int = 2, head_dim: int = 16, base_width: int = 32,
                seq_len: int = 32, batch_size: int = 8, seeds=(0, 1), data=None,
                family: str = "proxy-llama", optimizer: str = "muadamw",
                **model_overrides) -> CoordCheck:
    """Measure per-layer sizes over the first ``steps`` Adam steps at each width.

    ``lr`` is the base-width LR (muP divides it for hidden matrices); sizes are averaged
    over ``seeds``. ``data`` defaults to the embedded stdlib corpus.
    """
    from calibration.train.data import BatchSampler, load_data
    from calibration.model.proxy import ProxyConfig, build_model, build_optimizer

    data = data if data is not None else load_data("stdlib")
    result = CoordCheck(parameterization, list(widths), steps)
    acc_act: dict = {}
    acc_delta: dict = {}
    for wi, width in enumerate(widths):
        for seed in seeds:
            cfg = ProxyConfig.from_family(
                family, width=width, depth=depth, head_dim=head_dim, base_width=base_width,
                seq_len=seq_len, parameterization=parameterization,
                vocab_size=data.vocab_size, **model_overrides)
            model = build_model(cfg, seed=seed)
            opt = build_optimizer(model, cfg, lr, 0.0, kind=optimizer)
            sampler = BatchSampler(data, batch_size, seq_len, seed=seed)
            for t, outputs, first in _probe_and_train(model, opt, sampler,
                                                      _layer_modules(model), steps):
                for name, out in outputs.items():
                    a = acc_act.setdefault(name, np.zeros((len(widths), steps)))
                    d = acc_delta.setdefault(name, np.zeros((len(widths), steps)))
                    a[wi, t] += out.abs().mean().item() / len(seeds)
                    d[wi, t] += (out - first[name]).abs().mean().item() / len(seeds)
    result.act, result.delta = acc_act, acc_delta
    return result


@dataclass
class DepthCoordCheck:
    """Sizes per block index at several depths, one width (the depth analogue of CoordCheck).

    ``act[L]`` and ``delta[L]``: arrays (L, steps), mean |entry| of the residual stream after
    each block and of its change since step 0; ``logits_delta[L]``: (steps,) the same for the
    logits. Averaged over seeds.
    """

    alpha: float
    depths: list
    steps: int
    act: dict = field(default_factory=dict)
    delta: dict = field(default_factory=dict)
    logits_delta: dict = field(default_factory=dict)

    def series(self, kind: str = "delta", where: str = "last", step: int = -1) -> np.ndarray:
        """One size per depth: the stream after the ``last`` block, or at ``mid`` (block
        L/2), or the ``logits`` change; ``kind`` ``act`` or ``delta``."""
        if where == "logits":
            return np.array([self.logits_delta[L][step] for L in self.depths])
        table = self.delta if kind == "delta" else self.act
        idx = (lambda L: L - 1) if where == "last" else (lambda L: L // 2 - 1)
        return np.array([table[L][idx(L), step] for L in self.depths])

    def slope(self, kind: str = "delta", where: str = "last", step: int = -1) -> float:
        """d log(size) / d log(depth), least squares over the depths."""
        y = np.log(np.maximum(self.series(kind, where, step), 1e-30))
        return float(np.polyfit(np.log(np.asarray(self.depths, dtype=float)), y, 1)[0])

    def plot(self, path) -> None:
        plots.coord_check_depth(self, path)

def depth_coord_check(alpha: float, depths=(2, 4, 8, 16), steps: int = 4, lr: float = 2 ** -6,
                      width: int = 32, base_depth: int = 2, head_dim: int = 16,
                      seq_len: int = 32, batch_size: int = 8, seeds=(0, 1), data=None,
                      family: str = "proxy-llama", parameterization: str = "mup",
                      **model_overrides) -> DepthCoordCheck:
    """Measure the residual stream after every block over the first ``steps`` Adam steps.

    One width (``width`` = the base width, so the width rules are all 1), depths ``depths``
    relative to ``base_depth``, depth exponent ``alpha`` (``advisor.rules.optim_rules``: 0 = no
    depth scaling). ``lr`` is the base LR. Theory (Yang et al. 2023; Dey et al. 2025): with
    alpha = 0 every block moves the stream by about as much as at any depth, so the change of
    the last block's output after a few Adam steps grows like depth; with alpha = 0.5 (LR x
    L^-1/2) or 1 it stays put.
    """
    from calibration.train.data import BatchSampler, load_data
    from calibration.model.proxy import ProxyConfig, build_model, build_optimizer

    data = data if data is not None else load_data("stdlib")
    out = DepthCoordCheck(float(alpha), list(depths), steps)
    for L in depths:
        act = np.zeros((L, steps))
        delta = np.zeros((L, steps))
        ldelta = np.zeros(steps)
        for seed in seeds:
            cfg = ProxyConfig.from_family(
                family, width=width, depth=L, head_dim=head_dim, base_width=width,
                base_depth=base_depth, seq_len=seq_len, parameterization=parameterization,
                vocab_size=data.vocab_size, depth_alpha=float(alpha), **model_overrides)
            model = build_model(cfg, seed=seed)
            opt = build_optimizer(model, cfg, lr, 0.0)
            sampler = BatchSampler(data, batch_size, seq_len, seed=seed)
            modules = dict(enumerate(model.blocks))
            modules["logits"] = model.readout
            for t, outs, first in _probe_and_train(model, opt, sampler, modules, steps):
                for key, o in outs.items():
                    d = (o - first[key]).abs().mean().item() / len(seeds)
                    if key == "logits":
                        ldelta[t] += d
                    else:
                        act[key, t] += o.abs().mean().item() / len(seeds)
                        delta[key, t] += d
        out.act[L], out.delta[L], out.logits_delta[L] = act, delta, ldelta
    return out


def main(argv=None) -> None:
    """``python -m calibration.spectral.coordcheck --out DIR``: run the check for muP and SP, print
    each layer's slope and write coordcheck_<param>.png."""
    import argparse
    from pathlib import Path

    ap = argparse.ArgumentParser(description="muP coordinate check on the proxy family")
    ap.add_argument("--out", default=".", help="folder for the PNGs")
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128, 256, 512])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2 ** -6)
    ap.add_argument("--depth", action="store_true",
                    help="the check in depth instead: depths 2-16 at width 32, alpha 0, 0.5, 1; "
                         "writes depth_coordcheck_alpha<a>.png")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.depth:
        for alpha in (0.0, 0.5, 1.0):
            cc = depth_coord_check(alpha, steps=args.steps, lr=args.lr)
            print(f"alpha {alpha:g}: slope of log|change since step 0| against log(depth), "
                  f"step {args.steps - 1}: last block {cc.slope('delta', 'last'):+.2f}, "
                  f"middle block {cc.slope('delta', 'mid'):+.2f}; per depth (last block): "
                  + ", ".join(f"{L}: {v:.3g}" for L, v in zip(cc.depths, cc.series())))
            cc.plot(out / f"depth_coordcheck_alpha{alpha:g}.png")
        print(f"plots in {out}")
        return
    for par in ("mup", "sp"):
        cc = coord_check(par, widths=tuple(args.widths), steps=args.steps, lr=args.lr)
        slopes = cc.slopes("delta")
        print(f"{par}: slope of log|change since step 0| against log(width), step {args.steps - 1}")
        print("   " + "  ".join(f"{k} {v:+.2f}" for k, v in slopes.items()))
        cc.plot(out / f"coordcheck_{par}.png")
    print(f"plots in {out}")


if __name__ == "__main__":
    main()
