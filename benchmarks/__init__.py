"""Benchmark suite for tinygrad_mlp: `python -m benchmarks --help` (see benchmarks/run.py).

Importing this package imports nothing else, so `python -m benchmarks --threads N` can still set
the BLAS thread variables before numpy is loaded.
"""
