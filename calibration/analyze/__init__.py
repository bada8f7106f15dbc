"""Analysis of finished sweeps: transfer summaries per arm and size, verdicts, tables, plots.

Holds ``lr_transfer`` (curves per (arm, size) and verdicts), the depth, Muon and
weight-decay summaries, ``by`` (the summaries ``advisor results --by`` prints) and
``summary_cli`` (what they share).
May import every calibration stage below it and ``advisor``.
"""
