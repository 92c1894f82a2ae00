"""Latency, memory and throughput benchmarks (results in BENCHMARKS.md)."""
