"""The command line's parts beyond `sensorium.cli` itself: shared console helpers and command groups."""
