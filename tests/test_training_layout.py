"""Convolutional encoders trained channels-last (`training.layout`, `train.layout`): the same numbers, the
same weights file, the encoder put back as it came, and a resumed run laid out as the one it continues."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from sensorium.errors import ConfigError
from sensorium.training import layout as layout_module
from sensorium.training.config import config_from_dict
from sensorium.training.data import ArrayDataset, Collate
from sensorium.training.layout import EncoderLayout, choose_layout, lay_out
from sensorium.training.model import build_model
from sensorium.training.trainer import Trainer, seed_everything

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Blocks(nn.Module):
    """MultiBench's LeNet shape: conv -> batch norm -> ReLU -> 2x2 max pool, narrow then wide."""

    def __init__(self, widths=(6, 12, 24, 48)):
        super().__init__()
        layers, previous = [], 1
        for width in widths:
            layers += [nn.Conv2d(previous, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                       nn.MaxPool2d(2)]
            previous = width
        self.body = nn.Sequential(*layers)
        self.output_dim = previous

    def forward(self, value, mask=None):
        return self.body(value).mean(dim=(2, 3))


class Viewing(Blocks):
    """Code that does not survive a channels-last map: `.view` needs NCHW strides."""

    def forward(self, value, mask=None):
        maps = self.body(value)
        return maps.view(len(maps), -1).view(*maps.shape[:2], -1).mean(-1)


def plain():
    return torch.autocast("cpu", enabled=False)


def norms(encoder: nn.Module) -> dict[str, nn.BatchNorm2d]:
    return {name: m for name, m in encoder.named_modules() if isinstance(m, nn.BatchNorm2d)}


def state(encoder: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in encoder.state_dict().items()}


def test_a_laid_out_encoder_computes_the_same_and_is_put_back_as_it_came():
    torch.manual_seed(0)
    encoder, value = Blocks(), torch.randn(8, 1, 32, 32)
    before, expected = state(encoder), encoder(value)
    laid = lay_out(encoder, EncoderLayout(True, ("body.1", "body.5")))
    assert encoder.body[4].weight.is_contiguous(memory_format=torch.channels_last)
    assert not encoder.body[4].weight.is_contiguous()  # (the first's single input channel fits both layouts)
    seen = {}

    def note(key, check):
        def hook(module, args):
            seen.setdefault(key, check(args[0]))  # returns nothing: the input goes on unchanged
        return hook

    encoder.body[1].register_forward_pre_hook(note("narrow", lambda x: x.is_contiguous()))
    encoder.body[9].register_forward_pre_hook(
        note("wide", lambda x: x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()))
    torch.testing.assert_close(encoder(value), expected, rtol=1e-4, atol=1e-5)
    assert seen == {"narrow": True, "wide": True}  # the named norm ran channels-first, the others channels-last
    seen.clear()
    encoder.eval()  # scoring: a norm is a scale and shift, fastest on the NHWC map it is given
    torch.testing.assert_close(encoder(value), copy.deepcopy(encoder).to(memory_format=torch.contiguous_format)(value),
                               rtol=1e-4, atol=1e-5)
    assert seen == {"narrow": False, "wide": True}
    encoder.train()
    loss = encoder(value).square().sum()
    loss.backward()  # gradients flow through the conversions
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in encoder.parameters())
    laid.restore()
    assert all(p.is_contiguous() for p in encoder.parameters())
    assert len(norms(encoder)["body.1"]._forward_pre_hooks) == 1  # only this test's own hook is left
    assert state(encoder).keys() == before.keys()


def test_choosing_leaves_the_encoder_and_the_random_state_untouched(monkeypatch):
    monkeypatch.setattr(layout_module, "MIN_PASS_SECONDS", 0.0)  # measure however small the model
    torch.manual_seed(0)
    encoder, value = Blocks(), torch.randn(16, 1, 64, 64)
    before, random_state = state(encoder), torch.get_rng_state()
    chosen = choose_layout(encoder, value, None, plain, keep_ratio=float("inf"))
    assert chosen.channels_last and chosen.speedup > 0
    assert set(chosen.channels_first_norms) <= set(norms(encoder))
    after = state(encoder)
    assert all(torch.equal(after[k], before[k]) for k in before)  # running statistics did not move
    assert all(p.is_contiguous() for p in encoder.parameters())
    assert torch.equal(torch.get_rng_state(), random_state)
    assert EncoderLayout.from_dict(chosen.as_dict()).channels_first_norms == chosen.channels_first_norms


def test_an_encoder_that_cannot_run_channels_last_or_has_nothing_to_gain_trains_as_is(monkeypatch):
    monkeypatch.setattr(layout_module, "MIN_PASS_SECONDS", 0.0)
    refused = choose_layout(Viewing(), torch.randn(4, 1, 32, 32), None, plain, keep_ratio=float("inf"))
    assert not refused.channels_last and "RuntimeError" in refused.reason
    linear = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    assert "no 2-D convolution" in choose_layout(linear, torch.randn(4, 1, 4, 4), None, plain).reason
    monkeypatch.setattr(layout_module, "MIN_PASS_SECONDS", 10.0)
    assert "too small" in choose_layout(Blocks(), torch.randn(4, 1, 32, 32), None, plain).reason


def lenet_config(layout: str, **train):
    return config_from_dict({
        "model": {"encoders": {"image": {"name": "tests.test_training_layout:Blocks", "widths": [6, 12, 24]}},
                  "fusion": {"method": "late", "output_dim": 8}},
        "data": {"modalities": {"image": {"kind": "array"}}},
        "train": {"epochs": 4, "batch_size": 16, "lr": 0.01, "progress": False, "layout": layout, **train},
    })


def pictures(count: int = 96, seed: int = 0) -> ArrayDataset:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 3
    image = torch.randn(count, 1, 32, 32, generator=generator) * 0.3
    for i, label in enumerate(labels.tolist()):
        image[i, 0, 4 + 8 * label:12 + 8 * label, 8:24] += 1.0  # a bar whose height gives the class
    return ArrayDataset({"image": image}, {"label": labels})


def trainer(config, out=None) -> Trainer:
    seed_everything(config.train.seed)
    return Trainer(config, build_model(config, {"label": 3}), pictures(), pictures(30, seed=1), Collate(), out=out)


def test_training_channels_last_learns_as_training_as_is_and_resumes_exactly(tmp_path, monkeypatch):
    monkeypatch.setattr(layout_module, "MIN_PASS_SECONDS", 0.0)
    # which norms run channels-first is timed; fixed here so that every run below lays out alike
    monkeypatch.setattr(layout_module, "channels_first_norms", lambda encoder, *a: tuple(norms(encoder))[:1])
    as_is = trainer(lenet_config("as-is"))
    as_is_summary = as_is.fit()
    assert "layouts" not in as_is_summary
    last = trainer(lenet_config("channels-last"), tmp_path / "a")
    summary = last.fit()
    assert summary["layouts"]["image"]["channels_last"], summary["layouts"]
    # float re-association only: the same training, to the precision two runs of it can share
    np.testing.assert_allclose(summary["best"], as_is_summary["best"], atol=0.07)
    for name, weight in last.model.state_dict().items():
        assert weight.is_contiguous(), name
        torch.testing.assert_close(weight, as_is.model.state_dict()[name], rtol=0.05, atol=0.02, msg=name)
    assert not any(m._forward_hooks for m in last.model.modules())
    assert last.validate()["accuracy"] > 0.8

    stopped = trainer(lenet_config("channels-last"), tmp_path / "b")
    assert stopped.fit(stop_after_steps=7)["interrupted"]
    recorded = stopped.progress["layouts"]
    monkeypatch.setattr(layout_module, "choose_layout", lambda *a, **k: pytest.fail("a resumed run chose again"))
    resumed = trainer(lenet_config("channels-last"), tmp_path / "b")
    resumed.fit(resume=True)
    assert resumed.progress["layouts"] == recorded
    final, expected = resumed.model.state_dict(), last.model.state_dict()
    for name in expected:
        torch.testing.assert_close(final[name], expected[name], rtol=1e-6, atol=1e-7, msg=name)


def test_an_unknown_layout_is_named():
    with pytest.raises(ConfigError, match="train.layout"):
        lenet_config("sideways")
