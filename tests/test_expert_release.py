"""Releasing the shared experts frees Whisper's threads, and with them torch's speed.

CTranslate2 runs Whisper on worker threads whose OpenMP calls land in the OpenMP runtime torch loaded
for the whole process. While those threads live, the runtime counts more threads than cores and its
threads sleep between parallel regions instead of spinning: each small torch step then waits on
wake-ups (voluntary context switches), and small trainings ran up to 1.8x slower."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from sensorium.experts import default_experts, release_default_experts

TASK_STATUS = Path("/proc/self/task")


def sleeps_between_parallel_regions() -> int:
    """This thread's voluntary context switches over 50 small convolutions forward and backward:
    near 0 while torch's threads spin between regions, hundreds or more while they sleep."""
    status = TASK_STATUS / str(threading.get_native_id()) / "status"

    def switches() -> int:
        line = next(line for line in status.read_text().splitlines() if line.startswith("voluntary_ctxt_switches"))
        return int(line.split()[1])

    conv = torch.nn.Conv2d(16, 32, 3, padding=1)
    images = torch.randn(64, 16, 16, 16)
    conv(images).sum().backward()  # the team of threads exists before counting
    before = switches()
    for _ in range(50):
        conv(images).sum().backward()
    return switches() - before


@pytest.mark.skipif(not TASK_STATUS.is_dir(), reason="reads per-thread context switches from Linux's /proc")
@pytest.mark.skipif(torch.get_num_threads() < 2, reason="one torch thread has no parallel regions to wait in")
def test_releasing_the_shared_experts_lets_torch_threads_spin_again():
    release_default_experts()
    whisper = default_experts().whisper
    encoded = whisper.encode([np.zeros(16000, np.float32)], window_seconds=30)  # Whisper's threads run
    assert encoded.shape[0] == 1
    held = sleeps_between_parallel_regions()
    del whisper
    release_default_experts()
    freed = sleeps_between_parallel_regions()
    assert held >= 50 and freed * 4 < held, (held, freed)
