"""Helpers the benchmark scripts share: photo sets, synthetic collections, the fusion table."""
