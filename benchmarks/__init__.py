"""Benchmark scripts, run as modules from the repository root.

    .venv/bin/python -m benchmarks.quality.fsdd_zeroshot --help
    .venv/bin/python -m benchmarks.speed.query_latency --help

quality/  accuracy and retrieval figures; speed/  latency, memory and throughput;
common/   helpers the scripts share. Results, with date, command and machine: BENCHMARKS.md.
"""
