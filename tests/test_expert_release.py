"""Releasing the shared experts frees Whisper's threads, and with them torch's speed.

CTranslate2 runs Whisper on worker threads whose OpenMP calls land in the OpenMP runtime torch loaded
for the whole process. While those threads live, the runtime counts more threads than cores and its
threads sleep between parallel regions instead of spinning: each small torch step then waits on
wake-ups (voluntary context switches), and small trainings ran up to 1.8x slower.

Measured in a fresh process on every core of the run: a pytest-xdist worker is pinned to one core, where
torch has no second thread to wait for, and this module's own process may hold other modules' state."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers.cores import all_cores

from sensorium.cpu import THREADS_VARIABLE
from sensorium.workers.ray_actors import OPENMP_THREADS

TASK_STATUS = Path("/proc/self/task")

MEASURE = textwrap.dedent("""
    import json, os, sys, threading, time
    os.sched_setaffinity(0, json.loads(sys.argv[1]))  # before torch and CTranslate2 count the cores
    import numpy as np
    import torch
    from sensorium.experts import default_experts, release_default_experts

    def sleeps_between_parallel_regions():
        # this thread's voluntary context switches over 50 small convolutions forward and backward
        status = f"/proc/self/task/{threading.get_native_id()}/status"

        def switches():
            with open(status) as handle:
                return int(next(line for line in handle if line.startswith("voluntary_ctxt_switches")).split()[1])

        conv, images = torch.nn.Conv2d(16, 32, 3, padding=1), torch.randn(64, 16, 16, 16)
        conv(images).sum().backward()  # the team of threads exists before counting
        before = switches()
        for _ in range(50):
            conv(images).sum().backward()
        return switches() - before

    whisper = default_experts().whisper
    encoded = whisper.encode([np.zeros(16000, np.float32)], window_seconds=30)  # Whisper's threads run
    held = sleeps_between_parallel_regions()
    if sys.argv[2] == "release":
        release_default_experts()
    else:  # left unused until it frees itself
        whisper.idle_seconds = 0.5
        deadline = time.monotonic() + 30
        while whisper.loaded and time.monotonic() < deadline:
            time.sleep(0.05)
    print(json.dumps({"threads": torch.get_num_threads(), "encoded": encoded.shape[0], "held": held,
                      "loaded": whisper.loaded, "freed": sleeps_between_parallel_regions()}))
""")


@pytest.mark.skipif(not TASK_STATUS.is_dir(), reason="reads per-thread context switches from Linux's /proc")
@pytest.mark.skipif(len(all_cores()) < 2, reason="one core: torch has no second thread to wait for")
@pytest.mark.parametrize("how", ["release", "idle"])
def test_releasing_the_shared_experts_lets_torch_threads_spin_again(how):
    env = {key: value for key, value in os.environ.items() if key not in (THREADS_VARIABLE, OPENMP_THREADS)}
    run = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(sorted(all_cores())), how], capture_output=True,
                         text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    measured = json.loads(run.stdout.strip().splitlines()[-1])
    assert measured["threads"] >= 2 and measured["encoded"] == 1 and not measured["loaded"], measured
    assert measured["held"] >= 50 and measured["freed"] * 4 < measured["held"], measured
