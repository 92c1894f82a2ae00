"""Freed heap memory goes back to the OS when the indexer asks (glibc's malloc_trim)."""
import os
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent("""
    import sys
    import numpy as np
    from pathlib import Path
    from sensorium.heap import release_free_memory

    def rss_mb():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

    blocks = [np.ones(60_000, np.uint8) for _ in range(3000)]  # ~180 MB of heap blocks, each below
    newest = blocks[-1]                                        # the mmap threshold; the newest stays,
    del blocks                                                 # so free() cannot shrink the heap's top
    held = rss_mb()
    released = release_free_memory() if sys.argv[1] == "trim" else None
    print(released, held, rss_mb())
""")
# glibc's thresholds pinned, so the test does not depend on its adaptive defaults: blocks this size
# always come from the heap (never mmap), and free() never trims by itself
GLIBC_FIXED = {"MALLOC_MMAP_THRESHOLD_": str(1 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 40), "MALLOC_ARENA_MAX": "1"}


def _probe(mode: str) -> tuple[str, float, float]:
    env = {**os.environ, **GLIBC_FIXED}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env=env).stdout
    released, held, after = out.split()
    return released, float(held), float(after)


def _glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _glibc(),
                    reason="malloc_trim and its thresholds are glibc's (not musl, not macOS)")
def test_freed_heap_blocks_are_returned_to_the_os_only_when_asked():
    released, held, after = _probe("trim")
    assert released == "True"
    assert held - after > 100, f"RSS {held} MB -> {after} MB: the free blocks stayed resident"
    _, held, after = _probe("keep")  # the same frees without the call: nothing goes back by itself
    assert held - after < 20, f"RSS {held} MB -> {after} MB"
