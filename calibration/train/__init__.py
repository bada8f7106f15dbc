"""Training: one run, many runs stacked as one model, and what both share.

Holds ``data`` (the corpus and the user's tokens), ``runtime`` (a run's result, LR
multipliers, device), ``single`` (one run), ``stacked`` and ``stacked_optim`` (many same-shape
runs as one vmapped model and its AdamW/Muon), ``muon_float32`` and ``group`` (a group of
runs, stacked where possible).
May import: ``calibration.model``, ``advisor``.
"""
