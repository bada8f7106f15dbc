"""Runs: what calibration measured, stored and read back.

Holds ``store`` (the SQLite results store), ``table`` (a sweep's runs as one table in one
canonical order, from a store or a Step Law-layout CSV) and ``summary`` (per-width summaries).
May import: ``advisor.errors``, ``advisor.common``, ``advisor.rules``, ``advisor.specs``,
``advisor.laws``.
"""
