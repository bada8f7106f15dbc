"""Analysis of finished sweeps: transfer summaries per arm and size, verdicts, tables, plots.

Holds ``lr_transfer`` (curves per (arm, size) and verdicts), the depth, Muon and
weight-decay summaries, and ``summary_cli`` (their shared command line).
May import every calibration stage below it and ``advisor``.
"""
