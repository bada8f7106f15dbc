"""Sweeps: a plan's runs into a results store, resumably, on one of three executors.

Holds ``executors`` (in-process, one process per GPU, Ray; progress).
May import: ``calibration.model``, ``calibration.train``, ``advisor``.
"""
