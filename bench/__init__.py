"""Benchmarks and the GPU suite: run each as ``python -m bench.NAME`` from the repository root."""
