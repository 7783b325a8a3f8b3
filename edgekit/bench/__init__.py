"""Benchmarking: the harness (artifacts, eval set, float reference, scoring, report assembly), tiling, parity comparison."""
