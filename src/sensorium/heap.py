"""Hand memory that the process has freed back to the operating system.

glibc's malloc keeps freed blocks in its heaps for reuse, and a long job whose allocations vary in
size (OCR: RapidOCR runs onnxruntime without its memory arena, so every photo's tensors, sized by
the photo, come from malloc) leaves the heaps full of free holes that still count as resident
memory and slowly grow. `malloc_trim(0)` returns them (the top of each heap, and whole free pages
inside it). It is cheap (measured here: 1 ms on a fragmented heap, 50 ms when it hands back 180 MB),
so the indexer calls it after every batch.

Measured (BENCHMARKS.md "Memory while indexing"): `benchmarks/speed/index_memory.py --photos
3000` with and without `--no-trim`, ~410 MB resident instead of ~600 MB; 10,000 photos, RSS flat
(420 MB at photo 1,007, 383 MB at 10,000) where it grew 5.3 KB/photo before.
"""
from __future__ import annotations

import ctypes
import ctypes.util

_UNSET = object()
_malloc_trim = _UNSET


def release_free_memory() -> bool:
    """Give freed heap memory back to the OS; False where the C library has no `malloc_trim`."""
    global _malloc_trim
    if _malloc_trim is _UNSET:
        _malloc_trim = _find_malloc_trim()
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True


def _find_malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        trim = getattr(ctypes.CDLL(name), "malloc_trim")  # glibc only (not musl, not macOS)
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim
