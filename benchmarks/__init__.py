"""Benchmarks for graph-router: ``python benchmarks/run.py`` and ``python benchmarks/soak.py``."""
