"""`torchrun ... -m sensorium.cli train` end to end: two gloo replicas on CPU through the command line.

tests/test_distributed.py checks the library path (replicas equal one process on the joint batch);
this one checks what a user types: the CLI joins the process group torchrun prepared, each rank
trains on its half of the data, rank 0 alone writes the run folder and reports, and `sensorium
evaluate` reads the result back.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SRC = Path(__file__).resolve().parents[1] / "src"

from helpers.training import CONFIG, write_data  # noqa: E402


def test_torchrun_cli_train_then_evaluate(tmp_path):
    manifest = write_data(tmp_path / "data", 48)
    (tmp_path / "config.toml").write_text(CONFIG)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SRC)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "sensorium.cli", "train", str(tmp_path / "config.toml"), "--out", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert done.stdout.count("trained ") == 1, done.stdout  # rank 0 reports, rank 1 stays quiet

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, 9))  # one line per epoch: rank 1 wrote none
    # 36 training items (12 held out) split over 2 ranks = 18 each, batch 4 -> 5 steps an epoch;
    # one process alone would take 9, so this proves both replicas shared the data
    assert [r["step"] for r in records] == list(range(5, 41, 5))
    assert all(r["threads"] == 1 for r in records)
    assert records[-1]["val_accuracy"] >= 0.9  # the held-out quarter: the same bar as the library path
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert "best/model.safetensors" in written and "checkpoint/model.safetensors" in written
    assert not [p for p in written if "rank" in p or p.endswith(".tmp")], written

    from typer.testing import CliRunner

    from sensorium.cli import app

    result = CliRunner().invoke(app, ["evaluate", str(out), "--data", str(manifest), "--noise", "0,1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["items"] == 48
    assert report["tasks"]["label"]["accuracy"] >= 0.9
    assert set(report["tasks"]["label"]["per_class"]) == {"up", "across"}  # task "label" reads column "shape"
    assert set(report["robustness"]["noise"]) == {"image", "signal"}
    assert report["robustness"]["levels"] == [0.0, 1.0]
