"""Specs: what is trained or targeted, as pure data (no torch).

Holds ``runspec`` (one run's settings and its id), ``proxyspec`` (the proxy model's
configuration and families), ``modelspec`` (the user's architecture from sizes or an HF
config), ``shapes`` (target shapes from recipes/families) and ``plan`` (sweep plans expanded
into run specs, with their memory and time bounds).
May import: ``advisor.errors``, ``advisor.common``, ``advisor.rules``.
"""
