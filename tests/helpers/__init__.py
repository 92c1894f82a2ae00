"""Shared test helpers: generated corpora, CLI runs, pairs, tiny checkpoints, training data."""
