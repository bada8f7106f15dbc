"""The proxy model: a small decoder-only transformer in muP or standard parameterisation.

Holds ``proxy`` (the model and its optimizer groups; rules from ``advisor.rules``),
``groups`` (which group a parameter is in: the one classifier) and ``factory`` (the user's
own ``--factory`` model: the one loader).
May import: torch, ``advisor`` (any stage below the CLI).
"""
