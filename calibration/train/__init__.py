"""Training: one run, many runs stacked as one model, and what both share.

Holds ``data`` (the corpus and the user's tokens), ``runtime`` (a run's result, LR
multipliers, device), ``single`` (one run), ``stacked`` and ``stacked_optim`` (many same-shape
runs as one vmapped model and its AdamW/Muon), ``muon_float32``, ``group`` (a group of
runs, stacked where possible), ``tokenize`` (the user's text through a real tokenizer) and
``stability_probe`` (attention logits, log-partition, update and gradient RMS per eval).
May import: ``calibration.model``, ``advisor``.
"""
