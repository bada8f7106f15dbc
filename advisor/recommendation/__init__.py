"""Recommendation: a complete training configuration for a target, with its evidence.

Holds ``core`` (``recommend`` = ``resolve_inputs`` for all reading + a pure ``compute``),
``blocks`` (the typed, frozen blocks it returns), the muP, Muon and depth views
(``mup_view``, ``muon_view``, ``depth_view``), and the trust blocks (``trust``,
``uncertainty``: intervals and expected excess loss).
May import every stage below it: ``advisor.errors``, ``common``, ``rules``, ``specs``,
``laws``, ``runs``, ``fit``, ``schedule``; not ``export`` or ``cli``.
"""
