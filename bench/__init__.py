"""Benchmarks on real processes over loopback.

Results are ratios to a baseline measured in the same run, never absolute timings.
"""
