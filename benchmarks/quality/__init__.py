"""Accuracy and retrieval benchmarks (results in BENCHMARKS.md)."""
