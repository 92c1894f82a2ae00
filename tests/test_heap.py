"""Freed heap memory goes back to the OS when the indexer asks (glibc's malloc_trim)."""
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent("""
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
    released = release_free_memory()
    print(released, held, rss_mb())
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim and /proc are Linux/glibc")
def test_freed_heap_blocks_are_returned_to_the_os():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    released, held, after = out.split()
    if released == "False":
        pytest.skip("this C library has no malloc_trim (not glibc)")
    assert float(held) - float(after) > 100, f"RSS {held} MB -> {after} MB: the free blocks stayed resident"
