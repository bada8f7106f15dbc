"""``advisor recommend`` at a terminal: a short table of the values, their 95% intervals and
the warnings, before anything else; the full record is ``--format yaml`` (or ``json``)."""
from __future__ import annotations

import textwrap

TABLE_FORMAT = "table"


def _num(x, digits: int = 3) -> str:
    """A value as a person reads it: whole counts with thousands separators, the rest to
    ``digits`` significant digits."""
    if isinstance(x, bool) or x is None:
        return "-" if x is None else str(x)
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) >= 100):
        return f"{int(x):,}"
    return f"{x:.{digits}g}"


def _interval(v: dict) -> str:
    iv = v.get("interval_95")
    return f"{_num(iv[0])} - {_num(iv[1])}" if iv else ""


def recommendation_table(rec, width: int = 100) -> str:
    """The recommendation ``rec`` (advisor.recommendation.core.Recommendation) as a short
    text table: target, the values with units and 95% intervals, the warnings, and where the
    full record is."""
    d = rec.to_dict()
    t, m = d["target"], d["model"]
    lines = [f"{_num(t['params_total'])} parameters ({m['n_layers']} layers x d_model "
             f"{m['d_model']}), {_num(t['tokens']['value'])} tokens ({t['tokens_per_param']:.4g} "
             f"per parameter), seq_len {t['seq_len']}; law set {d['law']['name']}", ""]
    opt = d["optimizer"]
    rows = [("peak LR", d["learning_rate"], d["learning_rate"]["unit"]),
            ("batch", d["batch_size_tokens"],
             f"tokens per step ({_num(d['batch_size_sequences']['value'])} "
             f"{d['batch_size_sequences']['unit']})"),
            ("weight decay", d["weight_decay"], d["weight_decay"]["unit"]),
            ("warmup", d["warmup_steps"], "optimizer steps"),
            ("total steps", d["total_steps"], "optimizer steps"),
            ("predicted loss", d["predicted_loss"], d["predicted_loss"]["unit"])]
    muon = opt.get("muon")
    if isinstance(muon, dict) and isinstance(muon.get("lr"), dict):
        rows.insert(1, ("Muon LR", muon["lr"], muon["lr"]["unit"]))
    if d.get("expected_excess_loss"):
        rows.append(("expected excess loss", d["expected_excess_loss"], "nats per token, "
                     "over the intervals"))
    lines.append(f"{'':<21} {'value':>12}  {'95% interval':<22} unit")
    for name, v, unit in rows:
        value = _num(v["value"], 4 if name == "predicted loss" else 3)
        lines.append(f"{name:<21} {value:>12}  {_interval(v):<22} {unit}")
    betas = ", ".join(f"{k} {_num(opt[k])}" for k in ("beta1", "beta2", "eps",
                                                        "grad_clip_norm") if k in opt)
    lines.append(f"{'optimizer':<21} {opt.get('name', ''):>12}  {betas}")
    lines.append(f"{'schedule':<21} {d['schedule']['spec']}")
    warns = d.get("warnings") or []
    if warns:
        lines += ["", f"warnings ({len(warns)}):"]
        for w in warns:
            lines += textwrap.wrap(w, width=width, initial_indent="  - ",
                                   subsequent_indent="    ")
    lines += ["", "every value's source, the muP, depth and Muon views: --format yaml (or "
              "json); trainer configs: --format nanogpt, hf, torchtitan"]
    return "\n".join(lines) + "\n"
