"""Training-time augmentation (issue 22): SpecAugment masks, speed and frequency-warp perturbation,
mixup; geometry checked on known inputs, the trainer still learns with all of them on, resumes
exactly, and the config refuses impossible settings."""
from __future__ import annotations

import pytest
import torch

from sensorium.errors import ConfigError
from sensorium.training.augment import AugmentConfig, augment_batch, mixed_targets, mixup, stretch


def test_stretch_slows_or_speeds_an_item_along_one_axis():
    ramp = torch.arange(10.0).repeat(2, 1, 3, 1)  # (B, C, F, T): T = 0..9
    out = stretch(ramp, torch.tensor([2.0, 0.5]), axis=-1)
    assert torch.allclose(out[0, 0, 0], torch.arange(10.0) / 2)  # twice as slow: half the distance per step
    assert torch.allclose(out[1, 0, 0, :5], torch.arange(0.0, 10.0, 2.0))  # twice as fast, then
    assert torch.all(out[1, 0, 0, 5:] == 0)  # padded with the item's lowest value (silence)
    rows = torch.arange(8.0)[:, None].expand(8, 5).repeat(2, 1, 1, 1)  # frequency on the second-last axis
    warped = stretch(rows, torch.tensor([1.0, 2.0]), axis=-2)
    assert torch.equal(warped[0], rows[0])
    assert torch.allclose(warped[1, 0, :, 0], torch.arange(8.0) / 2)


def test_masks_hide_bands_and_spans_with_the_item_mean_and_leave_the_input_alone():
    torch.manual_seed(0)
    value = torch.randn(64, 1, 20, 30) + 5
    batch = {"inputs": {"audio": value, "ids": torch.ones(64, 4, dtype=torch.long)}, "labels": {"t": torch.zeros(64)}}
    out = augment_batch(batch, {"audio": AugmentConfig(freq_masks=2, freq_mask_width=4, time_masks=1, time_mask_width=6),
                                "ids": AugmentConfig(time_masks=3)})
    assert torch.equal(batch["inputs"]["audio"], value)  # the caller's batch is untouched
    assert torch.equal(out["inputs"]["ids"], batch["inputs"]["ids"])  # token ids are never masked
    changed = out["inputs"]["audio"] != value
    means = value.reshape(64, -1).mean(dim=1)
    for i in range(64):
        assert torch.allclose(out["inputs"]["audio"][i][changed[i]], means[i].expand(int(changed[i].sum())))
        rows = changed[i, 0].all(dim=1).sum()  # whole bands hidden
        assert rows <= 8
    assert changed.any(dim=(1, 2, 3)).float().mean() > 0.8  # almost every item got some mask


def test_mixup_mixes_present_values_and_keeps_a_lone_one():
    torch.manual_seed(3)
    a = torch.arange(8.0)[:, None].expand(8, 3).clone()
    present = torch.tensor([True] * 6 + [False] * 2)
    batch = {"inputs": {"x": a * present[:, None]}, "present": {"x": present}, "masks": {},
             "labels": {"t": torch.arange(8)}}
    mixed, order, weight = mixup(batch, alpha=0.4)
    assert 0.5 <= weight <= 1.0
    for i in range(8):
        j = int(order[i])
        if present[i] and present[j]:
            expected = weight * a[i] + (1 - weight) * a[j]
        elif present[i]:
            expected = a[i]
        elif present[j]:
            expected = a[j]
        else:
            expected = torch.zeros(3)
        assert torch.allclose(mixed["inputs"]["x"][i], expected)
        assert bool(mixed["present"]["x"][i]) == bool(present[i] or present[j])
    assert torch.equal(mixed_targets(batch["labels"], order)["t"], order)


def _bars_config(tmp_path, augment: str):
    from helpers.training import CONFIG, write_data

    write_data(tmp_path / "data", 64)
    text = CONFIG.replace("[data.modalities.signal]\nkind = \"array\"",
                          "[data.modalities.signal]\nkind = \"array\"\nshape = [1, 16, 2]")
    text = text.replace('name = "series_cnn"\nin_channels = 2\ndim = 8\ndepth = 1',
                        'name = "image_cnn"\nin_channels = 1\ndim = 8\nwidths = [8]')
    text += augment
    (tmp_path / "config.toml").write_text(text)
    return tmp_path / "config.toml"


AUGMENT = """mixup = 0.2
[train.augment.signal]
freq_masks = 1
freq_mask_width = 2
time_masks = 1
time_mask_width = 1
time_stretch = 0.1
freq_warp = 0.1
"""


def test_training_with_augmentation_learns_and_resumes_exactly(tmp_path, monkeypatch):
    from sensorium.training.checkpoint import load_weights  # noqa: F401 - weights compared below
    from sensorium.training.runs import evaluate_run, run_training

    config = _bars_config(tmp_path, AUGMENT)
    monkeypatch.chdir(tmp_path)
    whole = run_training(config, tmp_path / "whole")
    assert not whole["interrupted"]
    report = evaluate_run(tmp_path / "whole", tmp_path / "data" / "train.csv")
    assert report["tasks"]["label"]["accuracy"] >= 0.9
    run_training(config, tmp_path / "halves", stop_after_steps=37)
    run_training(config, tmp_path / "halves", resume=True)
    from safetensors.torch import load_file

    one = load_file(tmp_path / "whole" / "checkpoint" / "model.safetensors")
    two = load_file(tmp_path / "halves" / "checkpoint" / "model.safetensors")
    assert one.keys() == two.keys()
    assert all(torch.equal(one[k], two[k]) for k in one)


@pytest.mark.parametrize("table, message", [
    ("[train.augment.video]\ntime_masks = 1\n", r"train.augment.video: no encoder for 'video'"),
    ("[train.augment.signal]\ntime_masks = -1\n", r"train.augment.signal.time_masks: must not be negative"),
    ("[train.augment.signal]\nfreq_warp = 1.5\n", r"train.augment.signal.freq_warp: must be in \[0, 1\)"),
    ("[train.augment.signal]\nwarp = 0.1\n", r"train.augment.signal.warp: unknown key"),
    ("mixup = -0.2\n", r"train.mixup: must not be negative"),
])
def test_config_refuses_impossible_augmentation(tmp_path, table, message):
    from sensorium.training.config import load_config

    with pytest.raises(ConfigError, match=message):
        load_config(_bars_config(tmp_path, table))
