"""Benchmark suite: `python -m bench.run [--smoke]` (see bench/README.md)."""
