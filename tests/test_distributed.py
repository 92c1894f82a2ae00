"""DDP through torchrun: 2 CPU processes on gloo train the same model as one process on the joint batch.

With a DistributedSampler each rank takes every other sample of the same shuffled order, and DDP
averages the two ranks' gradients, so 2 ranks x batch 4 must equal 1 process x batch 8 (the model
has no dropout or batch statistics). Only rank 0 may write the checkpoint and the metrics.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WORKER = textwrap.dedent('''
    import sys
    import torch
    from safetensors.torch import save_file
    from sensorium.training.config import config_from_dict
    from sensorium.training.data import ArrayDataset, Collate
    from sensorium.training.distributed import setup, teardown
    from sensorium.training.model import build_model
    from sensorium.training.trainer import Trainer, seed_everything

    torch.set_num_threads(1)

    def data(count, seed):
        generator = torch.Generator().manual_seed(seed)
        labels = torch.arange(count) % 3
        image = torch.randn(count, 1, 8, 8, generator=generator) * 0.3 + labels.view(-1, 1, 1, 1) * 0.5
        series = torch.randn(count, 6, 3, generator=generator) * 0.3 - labels.view(-1, 1, 1) * 0.5
        return ArrayDataset({"image": image, "series": series}, {"label": labels})

    def config(batch_size):
        return config_from_dict({
            "model": {"encoders": {"image": {"name": "image_cnn", "in_channels": 1, "dim": 8, "widths": [4]},
                                   "series": {"name": "series_cnn", "in_channels": 3, "dim": 8, "depth": 1}},
                      "fusion": {"method": "gated", "output_dim": 8}},
            "data": {"modalities": {"image": {"kind": "array"}, "series": {"kind": "array"}}},
            "train": {"epochs": 2, "batch_size": batch_size, "lr": 0.01, "warmup_steps": 2, "progress": False},
        })

    def train(out, batch_size):
        context = setup()
        seed_everything(0)
        model = build_model(config(batch_size), {"label": 3})
        trainer = Trainer(config(batch_size), model, data(48, 0), data(12, 1), Collate(), out=out, context=context)
        summary = trainer.fit()
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{out}/rank{context.rank}.safetensors")
        teardown(context)
        return summary

    if __name__ == "__main__":
        train(sys.argv[1], int(sys.argv[2]))
''')


def test_two_gloo_ranks_match_one_process_on_the_joint_batch(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    ddp_out = tmp_path / "ddp"
    ddp_out.mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(script), str(ddp_out), "4"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    rank0, rank1 = load_file(str(ddp_out / "rank0.safetensors")), load_file(str(ddp_out / "rank1.safetensors"))
    for name in rank0:
        torch.testing.assert_close(rank0[name], rank1[name], rtol=0, atol=0, msg=name)  # replicas stay identical

    single_out = tmp_path / "single"
    single_out.mkdir()
    namespace: dict = {}
    exec(compile(WORKER, str(script), "exec"), namespace)
    namespace["train"](str(single_out), 8)
    single = load_file(str(single_out / "rank0.safetensors"))
    # A conv bias just before a one-channel-per-group GroupNorm is removed by the norm: its true
    # gradient is 0, so Adam turns rounding noise into steps and it alone may differ.
    inert = {"encoders.image.body.0.bias"}
    assert set(single) > inert
    for name in set(single) - inert:
        torch.testing.assert_close(rank0[name], single[name], rtol=1e-4, atol=1e-6, msg=name)

    checkpoint = load_file(str(ddp_out / "checkpoint" / "model.safetensors"))
    for name in checkpoint:
        torch.testing.assert_close(checkpoint[name], rank0[name], rtol=0, atol=0, msg=name)
    records = [json.loads(line) for line in (ddp_out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]  # rank 0 alone logs: one line per epoch, not two
    assert records[-1]["step"] == 2 * 6  # 24 samples per rank / batch 4 = 6 steps an epoch
