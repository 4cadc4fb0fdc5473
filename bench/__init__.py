"""Benchmarks: one module each (`python -m bench.NAME`), one JSON line out."""
