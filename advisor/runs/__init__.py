"""Runs: what calibration measured, stored and read back.

Holds ``store`` (the SQLite results store), ``table`` (a sweep's runs as one table in one
canonical order, from a store or a Step Law-layout CSV), ``summary`` (per-width summaries)
and ``stability_data`` (the stability diagnostics of stored runs).
May import: ``advisor.errors``, ``advisor.common``, ``advisor.rules``, ``advisor.specs``,
``advisor.laws``.
"""
