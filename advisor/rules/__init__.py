"""Rules: how hyperparameters scale and what values are plausible, as pure functions and data.

Holds ``optim_rules`` (muP width, depth and Muon per-group rules: the one home), ``lr_schedule``
(schedule spec strings and the per-step LR multiplier) and ``plausibility`` (the ranges every
recommended value must lie in).
May import: ``advisor.errors``, ``advisor.common``.
"""
