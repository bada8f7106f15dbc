"""The run's curve, the law's fit and its forecast with the band, the LR on a second axis."""
from __future__ import annotations

import numpy as np


def plot_run(result: dict, plan, model_lrs: dict, path) -> None:
    """``model_lrs``: {label: (steps, predicted loss, lo, hi)} of forecasts to draw."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from advisor.common.outputs import save_figure

    f = result["fitted"]
    st, y, law = np.array(f["steps"]), np.array(f["loss"]), np.array(f["law"])
    fig, ax = plt.subplots(figsize=(8, 4.6))
    ax.plot(st, y, "o", color="k", ms=1.5, label="logged loss")
    ax.plot(st, law, color="C0", lw=1.0, label="law fitted so far")
    for i, (label, (s, p, lo, hi)) in enumerate(model_lrs.items()):
        ax.plot(s, p, color=f"C{i + 1}", lw=1.2, ls="--", label=label)
        ax.fill_between(s, lo, hi, color=f"C{i + 1}", alpha=0.2, lw=0)
    for fd in result["health"]["findings"]:
        if fd["kind"] in ("spike", "divergence"):
            ax.axvspan(fd["start_step"], fd["last_step"] + 1, color="red", alpha=0.25)
    settle = y[len(y) // 10:]
    lo_y = min(float(settle.min()), *(float(v[2].min()) for v in model_lrs.values())) \
        if model_lrs else float(settle.min())
    hi_y = float(np.percentile(settle, 99))
    pad = 0.1 * (hi_y - lo_y)
    ax.set_ylim(lo_y - pad, hi_y + pad)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (nats)")
    ax2 = ax.twinx()
    ax2.plot(np.arange(len(plan.curve.lrs)), plan.curve.lrs, color="C2", lw=0.8, alpha=0.5)
    if plan.planned_lrs is not None:
        ax2.plot(np.arange(len(plan.planned_lrs)), plan.planned_lrs, color="C2", lw=0.8,
                 ls=":", alpha=0.5)
    ax2.set_ylabel("learning rate (green; dotted: plan)")
    ax2.set_ylim(0, None)
    ax.set_zorder(ax2.get_zorder() + 1)         # the loss in front of the LR
    ax.patch.set_visible(False)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(f"{result['model']['law']}; step {result['now']}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
