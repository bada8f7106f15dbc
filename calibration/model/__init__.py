"""The proxy model: a small decoder-only transformer in muP or standard parameterisation.

Holds ``proxy`` (the model and its optimizer groups; rules from ``advisor.rules``).
May import: torch, ``advisor`` (any stage below the CLI).
"""
