"""Analysis of finished sweeps: transfer summaries per arm and size, verdicts, tables, plots.

Holds ``lr_transfer`` (curves per (arm, size) and verdicts), the depth, Muon,
weight-decay and stability summaries, ``zloss_trajectory`` (log Z over training per z-loss
coefficient), ``by`` (the summaries ``advisor results --by``
prints), ``summary_cli`` (what they share) and ``validate`` (``advisor validate``: the
held-out-width transfer check).
May import every calibration stage below it and ``advisor``.
"""
