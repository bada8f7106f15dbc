"""Recommendation: a complete training configuration for a target, with its evidence.

Holds ``core`` (``recommend`` = ``resolve_inputs`` for all reading + a pure ``compute``),
``blocks`` (the typed, frozen blocks it returns), the muP, Muon and depth views
(``mup_view``, ``muon_view``, ``depth_view``), the trust blocks (``trust``,
``uncertainty``: intervals and expected excess loss), ``conditional`` (the optimum given the
user's fixed choices), ``batch_plan`` (a batch the devices can run), ``stability`` (the
margin to the largest stable LR) and ``plan_value`` (what a calibration plan buys: the
expected excess loss at its target before and after).
May import every stage below it: ``advisor.errors``, ``common``, ``rules``, ``specs``,
``laws``, ``runs``, ``fit``, ``schedule``; not ``export`` or ``cli``.
"""
