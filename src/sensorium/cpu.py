"""How many threads one process's experts may use, and which fast number formats this CPU has.

Why threads: onnxruntime, CTranslate2, OpenCV and torch each default to every core. That is right for one
indexing process, and wrong for N worker processes on the same machine (N x cores threads fight for
the cores). A worker sets SENSORIUM_THREADS to its share before it loads a model; every expert asks
`cpu_threads()` instead of `os.cpu_count()`.

Why formats: int8 and bfloat16 are speed options that pay only where the CPU has instructions for them.
Without VNNI (Intel before Cascade Lake Xeons / Ice Lake laptops, AMD before Zen 4), onnxruntime's u8 x s8
kernels add pairs of products in 16 bits, which saturate: measured on an AVX2 EPYC (Zen 3), the int8 image
expert agreed with fp32 on the top label of 0.61 of 200 COCO views (0.91 with VNNI). Without AVX-512 BF16
or AMX, bfloat16 autocast is emulated: 3.1x slower than float32 there (one epoch of the imagine test model,
31.9 s against 10.3 s).
"""
from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

THREADS_VARIABLE = "SENSORIUM_THREADS"


def cpu_threads() -> int:
    """SENSORIUM_THREADS when set to a positive integer, else every core."""
    value = os.environ.get(THREADS_VARIABLE, "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, os.cpu_count() or 1)


def limit_threads(threads: int) -> None:
    """Give this process `threads` threads from now on: for the experts it loads later (through
    SENSORIUM_THREADS) and for the libraries already imported (torch, OpenCV)."""
    os.environ[THREADS_VARIABLE] = str(max(1, threads))
    try:
        import torch

        torch.set_num_threads(max(1, threads))
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    try:
        import cv2

        cv2.setNumThreads(max(1, threads))
    except ImportError:  # pragma: no cover - OpenCV is a dependency
        pass


ARM = ("arm64", "aarch64")


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux's /proc/cpuinfo names them ("flags" on x86, "Features" on ARM);
    empty where that file is absent (macOS, Windows), so callers fall back to the safe choice."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def int8_dot_products() -> bool:
    """True where int8 matrix products are exact: x86 with AVX-512 VNNI or AVX-VNNI, or 64-bit ARM
    (its dot-product kernels accumulate in 32 bits)."""
    if platform.machine().lower() in ARM:
        return True
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni"})


def native_bf16() -> bool:
    """True where bfloat16 has instructions of its own (x86 AVX-512 BF16 or AMX; ARM's BF16)."""
    flags = cpu_flags()
    return bool(flags & {"avx512_bf16", "amx_bf16"}) or (platform.machine().lower() in ARM and "bf16" in flags)
