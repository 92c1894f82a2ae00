"""Your own modules in a training config by import path ("module:Class"), as OpenCLIP's model
configs and MultiBench's plain modules allow: a LeNet-style image encoder that returns a plain
(B, D) tensor and a fusion of our own, both defined in a module written by this test, train
through `sensorium train`'s path and learn the task; bad paths are clear errors."""
from __future__ import annotations

import sys
import textwrap

import pytest

from sensorium.errors import ConfigError

MODULE = textwrap.dedent('''
    import torch
    from torch import nn

    from sensorium.fusion.base import Fusion


    class LeNet(nn.Module):
        """MultiBench-style: two conv blocks, global max pool, a plain (B, channels * 2) tensor out."""

        def __init__(self, in_channels, channels):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(channels, channels * 2, 3, padding=1), nn.ReLU())

        def forward(self, x):
            return self.body(x.float()).amax(dim=(2, 3))


    class SumFusion(Fusion):
        """Each present modality projected to the output, summed."""

        def __init__(self, input_dims, output_dim):
            super().__init__(input_dims, output_dim)
            self.project = nn.ModuleDict({n: nn.Linear(d, output_dim) for n, d in self.input_dims.items()})

        def fuse(self, modalities):
            return sum(self.project[n](m.pooled) * m.present.unsqueeze(1).float() for n, m in modalities.items())
''')


def test_a_config_trains_with_modules_named_by_import_path(tmp_path, monkeypatch):
    from helpers.training import CONFIG, write_data

    from sensorium.training.runs import evaluate_run, run_training

    (tmp_path / "lab_modules.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lab_modules", raising=False)  # each test imports its own file
    manifest = write_data(tmp_path / "data", 48)
    config = CONFIG.replace('name = "image_cnn"\nin_channels = 1\ndim = 8\nwidths = [8]',
                            'name = "lab_modules:LeNet"\nin_channels = 1\nchannels = 4\noutput_dim = 8')
    config = config.replace('method = "late"', 'method = "lab_modules:SumFusion"')
    assert "lab_modules:LeNet" in config and "lab_modules:SumFusion" in config
    (tmp_path / "config.toml").write_text(config)
    monkeypatch.chdir(tmp_path)
    run_training(tmp_path / "config.toml", tmp_path / "run")
    report = evaluate_run(tmp_path / "run", manifest)
    (scores,) = report["tasks"].values()
    assert scores["accuracy"] >= 0.9, report["tasks"]
    assert "robustness" not in report  # the noise sweep only when asked for


@pytest.mark.parametrize("name, message", [
    ("no_such_module_here:Net", "cannot import 'no_such_module_here'"),
    ("lab_modules:Missing", "has no 'Missing'"),
    ("lab modules:Net", "not an import path"),
    ("lab_modules:LeNetNoWidth", "output_dim = N"),
])
def test_bad_import_paths_are_named(tmp_path, monkeypatch, name, message):
    from sensorium import encoders

    (tmp_path / "lab_modules.py").write_text(MODULE + "\nclass LeNetNoWidth(LeNet):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lab_modules", raising=False)
    with pytest.raises(ConfigError, match=message):
        encoders.create(name, in_channels=1, channels=4)
