"""How many threads one process's experts may use.

Why: onnxruntime, CTranslate2, OpenCV and torch each default to every core. That is right for one
indexing process, and wrong for N worker processes on the same machine (N x cores threads fight for
the cores). A worker sets SENSORIUM_THREADS to its share before it loads a model; every expert asks
`cpu_threads()` instead of `os.cpu_count()`.
"""
from __future__ import annotations

import os

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
