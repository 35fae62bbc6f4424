"""Benchmark and evaluation entry points (run as scripts: python eval/<name>.py)."""
