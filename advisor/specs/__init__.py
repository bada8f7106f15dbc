"""Specs: what is trained or targeted, as pure data (no torch).

Holds ``runspec`` (one run's settings and its id), ``proxyspec`` (the proxy model's
configuration and families), ``modelspec`` (the user's architecture from sizes or an HF
config), ``hfarch`` (a proxy family of the user's architecture from an HF config),
``shapes`` (target shapes from recipes/families), ``plan`` (sweep plans expanded into run
specs, with their memory and time bounds), ``conventions`` (what a proxy's LR and weight decay
mean: one record), ``transfer`` (base LR and weight decay -> every group at a target) and
``grouping`` (which runs belong together).
May import: ``advisor.errors``, ``advisor.common``, ``advisor.rules``.
"""
