"""Coordinate check: do activation sizes and their updates stay put as width grows?

The test from Tensor Programs V (Yang et al. 2022, section 6 / Fig. 5), written here
without ``mup.coord_check`` (which needs pandas). For each width, train the proxy for a few
Adam steps at one LR on real batches and, before each step, measure on a fixed batch the
mean absolute entry of every layer's output (``act``) and of its change since step 0
(``delta``). Under muP both are flat in width; under standard parameterisation the updates
(and with them the logits) grow with width: with Adam, a hidden layer's change after one
step grows like width, since every entry moves by about LR regardless of width.

Flatness is summarised by the slope of log(size) against log(width), fitted by least squares
over the widths, at the last measured step.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        layers = list(self.delta)
        fig, axes = plt.subplots(2, self.steps - 1, figsize=(3.2 * (self.steps - 1), 6),
                                 squeeze=False)
        for j, t in enumerate(range(1, self.steps)):
            for i, (kind, table) in enumerate((("activation", self.act), ("change since step 0", self.delta))):
                ax = axes[i][j]
                for layer in layers:
                    ax.plot(self.widths, table[layer][:, t], "o-", ms=3, label=layer)
                ax.set_xscale("log", base=2)
                ax.set_yscale("log")
                ax.set_title(f"{self.parameterization}: {kind}, step {t}", fontsize=9)
                ax.set_xlabel("width")
        axes[0][0].legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def _layer_modules(model):
    mods = {"embed": model.embed}
    for i, b in enumerate(model.blocks):
        mods[f"block{i}.attn"] = b.attn
        mods[f"block{i}.mlp"] = b.mlp
        mods[f"block{i}.out"] = b
    mods["logits"] = model.readout
    return mods


def coord_check(parameterization: str, widths=(32, 64, 128, 256), steps: int = 4,
                lr: float = 2 ** -6, depth: int = 2, head_dim: int = 16, base_width: int = 32,
                seq_len: int = 32, batch_size: int = 8, seeds=(0, 1), data=None,
                family: str = "proxy-llama", optimizer: str = "muadamw",
                **model_overrides) -> CoordCheck:
    """Measure per-layer sizes over the first ``steps`` Adam steps at each width.

    ``lr`` is the base-width LR (muP divides it for hidden matrices); sizes are averaged
    over ``seeds``. ``data`` defaults to the embedded stdlib corpus.
    """
    import torch

    from calibration.data import BatchSampler, load_data
    from calibration.model import ProxyConfig, build_model, build_optimizer, compute_loss

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
            fixed_x, _ = sampler.next("cpu")
            outputs: dict = {}
            hooks = [m.register_forward_hook(
                lambda mod, inp, out, name=name: outputs.__setitem__(name, out.detach().float()))
                for name, m in _layer_modules(model).items()]
            first: dict = {}
            for t in range(steps):
                with torch.no_grad():
                    model(fixed_x)
                for name, out in outputs.items():
                    if t == 0:
                        first[name] = out.clone()
                    a = acc_act.setdefault(name, np.zeros((len(widths), steps)))
                    d = acc_delta.setdefault(name, np.zeros((len(widths), steps)))
                    a[wi, t] += out.abs().mean().item() / len(seeds)
                    d[wi, t] += (out - first[name]).abs().mean().item() / len(seeds)
                x, y = sampler.next("cpu")
                loss, _ = compute_loss(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                for g in opt.param_groups:
                    g["lr"] = g["initial_lr"]
                opt.step()
            for h in hooks:
                h.remove()
    result.act, result.delta = acc_act, acc_delta
    return result


def main(argv=None) -> None:
    """``python -m calibration.coordcheck --out DIR``: run the check for muP and SP, print
    each layer's slope and write coordcheck_<param>.png."""
    import argparse
    from pathlib import Path

    ap = argparse.ArgumentParser(description="muP coordinate check on the proxy family")
    ap.add_argument("--out", default=".", help="folder for the PNGs")
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128, 256, 512])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2 ** -6)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for par in ("mup", "sp"):
        cc = coord_check(par, widths=tuple(args.widths), steps=args.steps, lr=args.lr)
        slopes = cc.slopes("delta")
        print(f"{par}: slope of log|change since step 0| against log(width), step {args.steps - 1}")
        print("   " + "  ".join(f"{k} {v:+.2f}" for k, v in slopes.items()))
        cc.plot(out / f"coordcheck_{par}.png")
    print(f"plots in {out}")


if __name__ == "__main__":
    main()
