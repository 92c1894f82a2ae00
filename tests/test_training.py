"""Trainer, configs, data, checkpoints, LoRA and evaluation, on small realistic image + audio data.

The data: a 16x16 grey picture with a bright blob on the left (class "left") or right ("right"),
paired with a 0.25 s tone, low (class "left") or high ("right"). Each modality alone decides the
label, so a model that learns at all reaches high accuracy in a few epochs.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from sensorium.errors import ConfigError, ReadError
from sensorium.training.averaging import warmed_up_decay, weight_average
from sensorium.training.checkpoint import load_weights
from sensorium.training.config import config_from_dict, load_config
from sensorium.training.data import ArrayDataset, Collate, load_datasets
from sensorium.training.evaluate import (EMULATED_BF16, add_noise, classification_metrics, effective_robustness,
                                         predict, relative_robustness, robustness)
from sensorium.training.model import build_model, count_parameters
from sensorium.training.schedule import warmup_cosine_factor
from sensorium.training.trainer import Trainer, drop_modalities, ogm_coefficients, seed_everything

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASSES = ("left", "right")


def picture(label: int, rng: np.random.Generator) -> np.ndarray:
    pixels = rng.integers(0, 40, (16, 16)).astype(np.uint8)
    column = rng.integers(1, 5) + (9 if label else 0)
    row = rng.integers(3, 12)
    pixels[row - 2:row + 2, column:column + 4] = 230
    return pixels


def tone(label: int, rng: np.random.Generator, rate: int = 16_000) -> np.ndarray:
    hz = (300 if label == 0 else 1800) * rng.uniform(0.9, 1.1)
    t = np.arange(int(rate * rng.uniform(0.2, 0.3))) / rate
    return (0.4 * np.sin(2 * np.pi * hz * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def write_items(folder: Path, count: int, seed: int, name: str = "train.csv", drop_every: int = 0) -> Path:
    """Images, wavs and a manifest; every `drop_every`-th row lacks its audio, the next its image."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        label = i % 2
        stem = f"{name.split('.')[0]}_{i}"
        Image.fromarray(picture(label, rng)).save(folder / f"{stem}.png")
        sf.write(folder / f"{stem}.wav", tone(label, rng), 16_000)
        image, audio = f"{stem}.png", f"{stem}.wav"
        if drop_every and i % drop_every == 0:
            audio = ""
        elif drop_every and i % drop_every == 1:
            image = ""
        rows.append({"image": image, "audio": audio, "label": CLASSES[label]})
    manifest = folder / name
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "audio", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


TOML = """
[data]
train = "data/train.csv"
validation = "data/val.csv"
[data.modalities.image]
kind = "image"
size = 16
channels = 1
[data.modalities.audio]
kind = "audio"
max_seconds = 1.0
[model.encoders.image]
name = "image_cnn"
in_channels = 1
dim = 16
widths = [8, 16]
[model.encoders.audio]
name = "audio_cnn"
dim = 16
n_mels = 16
widths = [8, 8]
[model.fusion]
method = "{method}"
output_dim = 16
[train]
epochs = {epochs}
batch_size = 8
lr = 0.01
warmup_steps = 2
seed = 0
progress = false
unimodal_loss_weight = 0.5  # per-modality heads: saved, resumed and reloaded with the model
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("run")
    write_items(root / "data", 48, seed=1, drop_every=6)
    write_items(root / "data", 16, seed=2, name="val.csv")
    (root / "config.toml").write_text(TOML.format(method="late", epochs=4))
    return root


def small_config(method: str = "late", **train):
    """A tiny pooled-input model on in-memory arrays (image 1x8x8, series 6x3)."""
    return config_from_dict({
        "model": {"encoders": {"image": {"name": "image_cnn", "in_channels": 1, "dim": 8, "widths": [4]},
                               "series": {"name": "series_cnn", "in_channels": 3, "dim": 8, "depth": 1}},
                  "fusion": {"method": method, "output_dim": 8}},
        "data": {"modalities": {"image": {"kind": "array"}, "series": {"kind": "array"}}},
        "train": {"epochs": 3, "batch_size": 8, "lr": 0.01, "warmup_steps": 2, "progress": False, **train},
    })


def array_data(count: int = 40, seed: int = 0, classes: int = 3) -> ArrayDataset:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % classes
    image = torch.randn(count, 1, 8, 8, generator=generator) * 0.3 + labels.view(-1, 1, 1, 1) * 0.5
    series = torch.randn(count, 6, 3, generator=generator) * 0.3 - labels.view(-1, 1, 1) * 0.5
    return ArrayDataset({"image": image, "series": series}, {"label": labels})


def make_trainer(config, out=None, data=None):
    seed_everything(config.train.seed)
    data = data or array_data()
    model = build_model(config, {"label": 3})
    return Trainer(config, model, data, array_data(15, seed=9), Collate(), out=out)


# ---- configs ----------------------------------------------------------------------------------

def test_config_file_loads_and_resolves_data_paths(run_dir):
    config = load_config(run_dir / "config.toml")
    assert config.data.train == run_dir / "data" / "train.csv"
    assert config.data.modalities["image"].channels == 1
    assert config.model.fusion == {"method": "late", "output_dim": 16}
    assert config.tasks[0].label == "label"
    assert config_from_dict(config.to_dict()).to_dict() == config.to_dict()


@pytest.mark.parametrize("change,message", [
    (lambda r: r["model"]["fusion"].update(method="foo"),
     r"model\.fusion\.method: unknown method 'foo' \(choose from early, late"),
    (lambda r: r["model"]["encoders"]["image"].update(name="resnet"), r"model\.encoders\.image\.name: unknown encoder 'resnet'"),
    (lambda r: r["train"].update(learning_rate=0.1), r"train\.learning_rate: unknown key"),
    (lambda r: r["train"].update(epochs="ten"), r"train\.epochs: must be int, got 'ten'"),
    (lambda r: r["train"].update(batch_size=0), r"train\.batch_size: must be positive"),
    (lambda r: r["train"].update(metric="auc"), r"train\.metric: unknown metric 'auc'"),
    (lambda r: r["train"].update(tie_break="last"), r"train\.tie_break: unknown rule 'last'"),
    (lambda r: r["train"].update(ogm_ge={"alpha": -1.0}), r"train\.ogm_ge\.alpha: must not be negative"),
    (lambda r: r["train"].update(modality_dropout=1.5), r"train\.modality_dropout: must be in \[0, 1\], got 1\.5"),
    (lambda r: r["train"].update(label_smoothing=-0.1), r"train\.label_smoothing: must be in \[0, 1\), got -0\.1"),
    (lambda r: r["train"].update(ema=1.0), r"train\.ema: a decay in \[0, 1\) \(0 = no average\), got 1\.0"),
    (lambda r: r["train"].update(threads=-2), r"train\.threads: a count, 0 \(every core\) or -1 \(the idle ones\), got -2"),
    (lambda r: r["data"].update(cache_mb=-5), r"data\.cache_mb: must not be negative, got -5"),
    (lambda r: r["data"]["modalities"]["image"].update(kind="hologram"), r"data\.modalities\.image\.kind: 'hologram'"),
    (lambda r: r["data"]["modalities"].update(depth={"kind": "image"}), r"data\.modalities\.depth: no encoder"),
    (lambda r: r.pop("model"), r"model: missing section \[model\]"),
    (lambda r: r.update(tasks=[{"name": "a"}, {"name": "a"}]), r"tasks\[1\]\.name: duplicate task 'a'"),
])
def test_bad_config_fields_are_named(change, message):
    raw = small_config().to_dict()
    change(raw)
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw)


def test_bad_encoder_arguments_are_named_when_building():
    raw = small_config().to_dict()
    raw["model"]["encoders"]["image"]["wings"] = 2
    with pytest.raises(ConfigError, match=r"model\.encoders\.image.*wings"):
        build_model(config_from_dict(raw), {"label": 3})


def test_unreadable_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[train\nepochs = 3")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        load_config(path)


# ---- data -------------------------------------------------------------------------------------

def test_manifest_with_missing_cells_batches_with_presence(run_dir):
    config = load_config(run_dir / "config.toml")
    train, val = load_datasets(config)
    assert len(train) == 48 and len(val) == 16 and train.classes == {"label": ["left", "right"]}
    batch = Collate.for_specs(config.data.modalities)([train[i] for i in range(8)])
    assert batch["inputs"]["image"].shape == (8, 1, 16, 16) and batch["inputs"]["image"].dtype == torch.uint8
    assert batch["present"]["audio"].tolist() == [False, True, True, True, True, True, False, True]
    assert batch["present"]["image"].tolist() == [True, False, True, True, True, True, True, False]
    assert batch["masks"]["audio"].shape == batch["inputs"]["audio"].shape
    assert not batch["masks"]["audio"][0].any()  # the missing clip has no valid sample
    assert batch["labels"]["label"].tolist() == [0, 1] * 4


def rewrite(manifest: Path, row: int, **cells) -> None:
    rows = list(csv.DictReader(manifest.open()))
    rows[row].update(cells)
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.parametrize("cells,message", [
    ({"image": "nowhere.png"}, r"train\.csv: row 4, column 'image': file nowhere\.png does not exist"),
    ({"image": "train_0.wav"}, r"row 4, column 'image': train_0\.wav is not a image file"),
    ({"label": ""}, r"row 4, column 'label': empty label"),
    ({"image": "", "audio": ""}, r"row 4: every modality is missing"),
])
def test_bad_manifest_rows_are_named(tmp_path, cells, message):
    manifest = write_items(tmp_path, 4, seed=0)
    rewrite(manifest, 2, **cells)
    config = config_from_dict({**load_config_dict(), "data": {**load_config_dict()["data"], "train": str(manifest),
                                                                 "validation": None}})
    with pytest.raises(ReadError, match=message):
        load_datasets(config)


def load_config_dict() -> dict:
    import tomllib

    raw = tomllib.loads(TOML.format(method="late", epochs=1))
    raw["data"].pop("validation")
    return raw


def test_missing_column_and_unseen_validation_label_are_named(tmp_path):
    manifest = write_items(tmp_path, 4, seed=0)
    val = write_items(tmp_path, 2, seed=1, name="val.csv")
    rewrite(val, 1, label="middle")
    raw = load_config_dict()
    raw["data"].update(train=str(manifest), validation=str(val))
    with pytest.raises(ReadError, match=r"val\.csv row 3: label 'middle' of task 'label' was never seen"):
        load_datasets(config_from_dict(raw))
    raw["data"]["modalities"]["audio"]["column"] = "sound"
    with pytest.raises(ReadError, match=r"train\.csv: no column 'sound'"):
        load_datasets(config_from_dict(raw))


def test_folder_layout_groups_files_by_stem(tmp_path):
    rng = np.random.default_rng(0)
    for label, name in enumerate(CLASSES):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(picture(label, rng)).save(tmp_path / name / f"{i}.png")
            if i != 2:
                sf.write(tmp_path / name / f"{i}.wav", tone(label, rng), 16_000)
    raw = load_config_dict()
    raw["data"].update(train=str(tmp_path), val_fraction=0.0)
    train, val = load_datasets(config_from_dict(raw))
    assert val is None and len(train) == 6
    assert sorted(train.targets["label"].tolist()) == [0, 0, 0, 1, 1, 1]
    assert sum(item.files["audio"] is None for item in train.items) == 2


def test_each_file_is_decoded_once_then_served_from_memory(run_dir):
    from sensorium.training.data import load_file

    config = load_config(run_dir / "config.toml")
    train, val = load_datasets(config)
    assert train.cache is val.cache is not None  # one budget for both
    files = [(name, f) for item in train.items for name, f in item.files.items() if f is not None]
    first = [train[i] for i in range(len(train))]
    assert train.cache.misses == len(files) and train.cache.hits == 0
    assert 0 < train.cache.used_bytes <= config.data.cache_mb * 2**20
    again = [train[i] for i in range(len(train))]
    assert train.cache.misses == len(files) and train.cache.hits == len(files)
    for a, b in zip(first, again):
        for name, value in a["inputs"].items():
            assert (value is None) == (b["inputs"][name] is None)
            if value is not None:
                assert torch.equal(value, b["inputs"][name])
    name, path = files[0]
    assert torch.equal(train.cache.entries[(name, path)], load_file(config.data.modalities[name], path))


def test_decoded_cache_keeps_to_its_budget(run_dir):
    from sensorium.training.data import DecodedCache, decoded_bytes, load_file

    config = load_config(run_dir / "config.toml")
    train, _ = load_datasets(config)
    spec = config.data.modalities["image"]
    paths = [item.files["image"] for item in train.items if item.files["image"] is not None][:5]
    one = decoded_bytes(load_file(spec, paths[0]))  # every 16x16 grey picture decodes to the same size
    cache = DecodedCache(budget_bytes=2 * one + one // 2)
    values = [cache.get("image", spec, p) for p in paths]
    assert len(cache.entries) == 2 and cache.used_bytes == 2 * one
    assert all(torch.equal(v, load_file(spec, p)) for v, p in zip(values, paths))  # beyond it: decoded each time
    raw = load_config_dict()
    raw["data"].update(train=str(run_dir / "data" / "train.csv"), cache_mb=0)
    assert load_datasets(config_from_dict(raw))[0].cache is None


def test_thread_count_is_asked_for_every_core_or_the_idle_ones():
    import os

    from sensorium.training.trainer import threads_for

    assert threads_for(3) == 3 and threads_for(2, world_size=4) == 2
    cores = len(os.sched_getaffinity(0))
    for world in (1, 2):
        assert threads_for(0, world_size=world) == max(1, cores // world)  # the default: every core, shared out
        assert 1 <= threads_for(-1, world_size=world) <= max(1, cores // world)  # on request: the idle ones


# ---- schedule, OGM-GE ---------------------------------------------------------------------------

def test_warmup_then_cosine_to_the_floor():
    factors = [warmup_cosine_factor(s, 4, 14, 0.1) for s in range(15)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[9] == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the decay
    assert factors[14] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[3:], factors[4:]))


def test_ogm_slows_only_the_dominant_modality():
    coefficients = ogm_coefficients({"image": 30.0, "audio": 10.0}, alpha=0.5)
    assert coefficients["audio"] == 1.0
    assert coefficients["image"] == pytest.approx(1 - math.tanh(0.5 * 2.0))
    assert ogm_coefficients({"image": 5.0, "audio": 5.0}, alpha=0.5) == {"image": 1.0, "audio": 1.0}


# ---- training ---------------------------------------------------------------------------------

def test_training_from_a_config_learns_and_writes_a_run_folder(run_dir):
    from sensorium.training.runs import evaluate_run, load_run, run_training

    out = run_dir / "out"
    summary = run_training(run_dir / "config.toml", out)
    assert summary["epoch"] == 4 and not summary["interrupted"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert records[-1]["val_accuracy"] >= 0.9
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert (out / "best" / "model.safetensors").is_file() and (out / "checkpoint" / "state.json").is_file()
    _, model, classes, _ = load_run(out)
    assert classes == {"label": ["left", "right"]} and count_parameters(model) > 0
    report = evaluate_run(out, run_dir / "data" / "val.csv", levels=[0.0, 1.0, 4.0])
    task = report["tasks"]["label"]
    assert task["accuracy"] >= 0.9 and set(task["per_class"]) == {"left", "right"}
    assert report["robustness"]["noise"]["image"][0] == pytest.approx(task["accuracy"])
    assert set(report["robustness"]["missing"]) == {"image", "audio"}
    assert report["robustness"]["missing"]["image"] >= 0.75  # audio alone still knows the answer


def test_cli_train_resume_and_evaluate_meet_the_library_bar(run_dir, tmp_path):
    """Through the command line: a run stopped mid-way (as a crash would leave it) is finished with
    `train --resume`, and `evaluate` on held-out data meets the same bar as the library path."""
    from typer.testing import CliRunner

    from sensorium.cli import app
    from sensorium.training.runs import run_training

    (run_dir / "gated.toml").write_text(TOML.format(method="gated", epochs=4))
    out = tmp_path / "cli"
    assert run_training(run_dir / "gated.toml", out, stop_after_steps=3)["interrupted"]
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(run_dir / "gated.toml"), "--out", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    assert "val_accuracy" in result.output
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if "val_accuracy" in r] == [1, 2, 3, 4]  # every epoch exactly once
    result = runner.invoke(app, ["evaluate", str(out), "--data", str(run_dir / "data" / "val.csv"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["tasks"]["label"]["accuracy"] >= 0.9
    text = runner.invoke(app, ["evaluate", str(out), "--data", str(run_dir / "data" / "val.csv")])
    assert text.exit_code == 0 and "accuracy" in text.output.lower()
    bad = runner.invoke(app, ["train", str(run_dir / "nowhere.toml"), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 1 and "no such config file" in bad.output
    again = runner.invoke(app, ["train", str(run_dir / "gated.toml"), "--out", str(tmp_path / "y"), "--resume"])
    assert again.exit_code == 1 and "no run to resume" in again.output


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method,extra", [
    ("late", {"accumulate": 2, "ogm_ge": {"alpha": 0.5}}),  # OGM-GE draws noise: the RNG must resume too
    ("single_stream", {"grad_clip": 0.5, "checkpoint_every": 2, "ema": 0.9}),  # the weights' average resumes too
    ("early", {"optimizer": "sgd", "momentum": 0.9, "lr": 0.05, "mixup": 0.3}),  # SGD's momentum buffers resume too
])
def test_stopped_and_resumed_run_ends_with_the_same_weights(tmp_path, method, extra):
    config = small_config(method, **extra)
    uninterrupted = make_trainer(config, tmp_path / "a")
    uninterrupted.fit()
    stopped = make_trainer(config, tmp_path / "b")
    # 5 batches an epoch: step 5 is mid-epoch 2 with accumulate=2, the very end of epoch 1 without
    assert stopped.fit(stop_after_steps=5)["interrupted"]
    resumed = make_trainer(small_config(method, **extra), tmp_path / "b")
    torch.manual_seed(1234)  # whatever the new process did to the RNG must not matter
    resumed.fit(resume=True)
    assert resumed.progress["step"] == uninterrupted.progress["step"]
    final, expected = weights(resumed.model), weights(uninterrupted.model)
    assert final.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(final[name], expected[name], rtol=1e-6, atol=1e-7, msg=name)
    assert not torch.equal(expected["heads.label.weight"], weights(make_trainer(config).model)["heads.label.weight"])
    if config.train.ema:
        final, expected = weights(resumed.averaged), weights(uninterrupted.averaged)
        assert int(expected["n_averaged"]) == uninterrupted.progress["step"]
        for name in expected:
            torch.testing.assert_close(final[name], expected[name], rtol=1e-6, atol=1e-7, msg=name)


def test_the_moving_average_follows_the_warmed_up_decay():
    """averaged <- d * averaged + (1 - d) * current, d = min(ema, (1 + n) / (10 + n)) after n updates;
    the first update copies; integer buffers take the current value."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    averaged = weight_average(model, 0.5)
    expected = None
    for n in range(30):
        with torch.no_grad():
            model[0].weight.add_(torch.randn(2, 3))
        model(torch.randn(4, 3))  # batch norm's running statistics and step count move too
        now = model[0].weight.detach().clone()
        decay = min(0.5, (1 + n) / (10 + n))
        expected = now if expected is None else decay * expected + (1 - decay) * now
        averaged.update_parameters(model)
        assert warmed_up_decay(0.5, n) == pytest.approx(decay)
    torch.testing.assert_close(averaged.module[0].weight, expected)
    assert int(averaged.module[1].num_batches_tracked) == int(model[1].num_batches_tracked) == 30
    assert not torch.equal(averaged.module[1].running_mean, model[1].running_mean)
    with pytest.raises(ValueError, match="ema decay"):
        weight_average(model, 1.0)


def test_label_smoothing_caps_the_confidence_training_reaches_and_leaves_validation_loss_plain():
    """train.label_smoothing = 0.3 over 3 classes makes 0.8 the best probability to give the true class,
    so a model trained long on separable data stays near it, where one trained without goes to ~1;
    validation still reports the plain cross-entropy."""
    confidence = {}
    for smoothing in (0.0, 0.3):
        trainer = make_trainer(small_config("late", epochs=30, lr=0.02, label_smoothing=smoothing), data=array_data(60))
        trainer.fit()
        loss = trainer.validate()["loss"]
        logits, labels = trainer.last_validation
        confidence[smoothing] = float(logits.softmax(1).max(1).values.mean())
        assert loss == pytest.approx(float(torch.nn.functional.cross_entropy(logits, labels)), rel=1e-5)
    assert confidence[0.0] > 0.95 and 0.7 < confidence[0.3] < 0.88, confidence


def test_a_run_begun_without_ema_resumes_with_it_and_averages_from_the_resumed_weights(tmp_path):
    """Turning train.ema on when resuming a run that had none: a warning, then an average that starts
    at the resumed weights and counts only the steps taken after the resume."""
    stopped = make_trainer(small_config("late"), tmp_path)
    assert stopped.fit(stop_after_steps=5)["interrupted"]
    resumed = make_trainer(small_config("late", ema=0.9), tmp_path)
    with pytest.warns(UserWarning, match="no weight average"):
        resumed.fit(resume=True)
    assert int(resumed.averaged.n_averaged) == resumed.progress["step"] - 5 > 0
    average, last = weights(resumed.averaged.module), weights(resumed.model)
    assert not torch.equal(average["heads.label.weight"], last["heads.label.weight"])


def test_training_with_ema_validates_and_keeps_the_averaged_weights(tmp_path):
    """train.ema: the weights in RUN/best and those validation scores are the average, not the last
    step's; off by default (no copy kept)."""
    assert make_trainer(small_config("late")).averaged is None
    config = small_config("late", ema=0.9, epochs=1, lr=0.05)  # one epoch: it is the one kept
    trainer = make_trainer(config, tmp_path)
    assert trainer.fit()["best_epoch"] == 0
    kept = make_trainer(config).model
    load_weights(kept, tmp_path / "best" / "model.safetensors")
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    last, average = weights(trainer.model), weights(trainer.averaged.module)
    assert not torch.equal(last["heads.label.weight"], average["heads.label.weight"])
    for name, value in weights(kept).items():
        torch.testing.assert_close(value, average[name], msg=name)
    ours = trainer.validate()
    assert ours["loss"] == pytest.approx(records[-1]["val_loss"], rel=1e-6)
    trainer.averaged = None  # the last step's weights score differently
    assert trainer.validate()["loss"] != pytest.approx(ours["loss"], rel=1e-6)


def test_early_stopping_and_bf16(tmp_path, monkeypatch):
    monkeypatch.setenv(EMULATED_BF16, "1")  # bfloat16 on every CPU, emulated or not
    config = small_config("early", epochs=30, patience=2, bf16=True, lr=0.02)
    trainer = make_trainer(config, tmp_path)
    summary = trainer.fit()
    assert summary["bf16"] is True
    assert summary["epoch"] < 30 and summary["best_epoch"] == summary["epoch"] - 3
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[-1].get("early_stop") and records[summary["best_epoch"]]["val_accuracy"] >= 0.9


def test_a_saturated_validation_accuracy_keeps_the_epoch_of_lowest_validation_loss(tmp_path):
    """Validation accuracy that reaches 1.000 early ties every later epoch; the kept weights are then those
    of the lowest validation loss among the tied epochs, not the first epoch to reach the ceiling."""
    config = small_config("late", epochs=10, lr=0.02)
    trainer = make_trainer(config, tmp_path, data=array_data(60))
    summary = trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    top = max(r["val_accuracy"] for r in records)
    tied = [i for i, r in enumerate(records) if r["val_accuracy"] == top]
    assert top == 1.0 and len(tied) >= 3, "the task should saturate validation early"
    assert summary["best_epoch"] == min(tied, key=lambda i: records[i]["val_loss"]) != tied[0]
    kept = make_trainer(config, data=array_data(60))
    load_weights(kept.model, tmp_path / "best" / "model.safetensors")
    assert kept.validate()["loss"] == pytest.approx(records[summary["best_epoch"]]["val_loss"], rel=1e-5)


def test_tie_break_first_keeps_the_first_epoch_to_reach_a_saturated_validation_accuracy(tmp_path):
    """train.tie_break = "first" (MultiBench's rule: only a strict gain saves) keeps the earliest of
    the tied epochs, and its weights are what RUN/best holds."""
    config = small_config("late", epochs=10, lr=0.02, tie_break="first")
    summary = make_trainer(config, tmp_path, data=array_data(60)).fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    tied = [i for i, r in enumerate(records) if r["val_accuracy"] == 1.0]
    assert len(tied) >= 3 and summary["best_epoch"] == tied[0]
    assert min(records[i]["val_loss"] for i in tied) < records[tied[0]]["val_loss"], "the rules should differ here"
    kept = make_trainer(config, data=array_data(60))
    load_weights(kept.model, tmp_path / "best" / "model.safetensors")
    assert kept.validate()["loss"] == pytest.approx(records[tied[0]]["val_loss"], rel=1e-5)


@pytest.mark.parametrize("native", [True, False])
def test_bf16_runs_where_the_cpu_has_bfloat16_instructions_and_float32_elsewhere(monkeypatch, native):
    """Emulated bfloat16 is slower than float32 (3.1x on an AVX2 EPYC): there train.bf16 warns and trains in
    float32, and the summary says which precision ran; SENSORIUM_EMULATED_BF16=1 keeps bfloat16."""
    from sensorium.training import evaluate

    monkeypatch.setattr(evaluate, "native_bf16", lambda: native)
    monkeypatch.delenv(EMULATED_BF16, raising=False)
    config = small_config("early", epochs=1, bf16=True, lr=0.02)
    if native:
        assert make_trainer(config).fit()["bf16"] is True
    else:
        with pytest.warns(RuntimeWarning, match="train.bf16: this CPU has no bfloat16 instructions"):
            trainer = make_trainer(config)
        assert trainer.fit()["bf16"] is False
        monkeypatch.setenv(EMULATED_BF16, "1")
        assert make_trainer(config).fit()["bf16"] is True
    assert make_trainer(small_config("early", epochs=1, lr=0.02)).fit()["bf16"] is False  # not asked


def test_scoring_in_bf16_runs_in_bfloat16_and_agrees_with_float32():
    """bf16 scoring is real (the logits differ from float32 ones, by bfloat16's rounding only) and
    changes no decision the float32 model makes with a clear margin."""
    config = small_config("early", epochs=6, lr=0.02)
    trainer = make_trainer(config)
    trainer.fit()
    batches = list(torch.utils.data.DataLoader(array_data(60, seed=4), batch_size=16, collate_fn=Collate()))
    full, labels = predict(trainer.model, batches)
    half, same_labels = predict(trainer.model, batches, bf16=True)
    assert torch.equal(labels["label"], same_labels["label"]) and full["label"].dtype == half["label"].dtype == torch.float32
    assert not torch.equal(full["label"], half["label"])
    spread = float(full["label"].abs().max())
    assert float((full["label"] - half["label"]).abs().max()) <= 0.05 * spread + 0.05
    top2 = full["label"].topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 0.1 * spread
    assert clear.sum() >= 15 and torch.equal(full["label"][clear].argmax(1), half["label"][clear].argmax(1))


def test_multi_task_losses_are_weighted(tmp_path):
    raw = small_config().to_dict()
    raw["tasks"] = [{"name": "label", "weight": 1.0}, {"name": "parity", "weight": 0.0}]
    config = config_from_dict(raw)
    data = array_data()
    data.targets["parity"] = data.targets["label"] % 2
    seed_everything(0)
    model = build_model(config, {"label": 3, "parity": 2})
    head_before = model.heads["parity"].weight.detach().clone()
    Trainer(config, model, data, None, Collate()).fit()
    # weight 0: the parity head gets no gradient, and AdamW's decay alone moves it only slightly
    assert torch.allclose(model.heads["parity"].weight, head_before * (1 - 0.01 * 0.01) ** 15, atol=1e-3)


# ---- LoRA -------------------------------------------------------------------------------------

def test_lora_trains_only_the_adapters(tmp_path):
    from sensorium.training.lora import apply_lora

    config = small_config("late", epochs=2)
    trainer = make_trainer(config)
    trainer.fit()
    base = trainer.model
    before = weights(base)
    adapted, report = apply_lora(base, rank=2, train_heads=False)
    assert 0 < report.trainable < 0.5 * report.total and "trainable" in str(report)
    trainable = [n for n, p in adapted.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    optimiser = torch.optim.AdamW([p for p in adapted.parameters() if p.requires_grad], lr=0.05)
    batch = Collate()([array_data(16, seed=5)[i] for i in range(16)])
    for _ in range(3):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(adapted(batch)["label"], batch["labels"]["label"]).backward()
        optimiser.step()
    moved = [n for n, p in adapted.named_parameters() if "lora_B" in n and p.abs().sum() > 0]
    assert moved  # lora_B starts at zero: it has trained
    for name, value in adapted.get_base_model().state_dict().items():
        if "lora_" in name:
            continue
        original = name.replace(".base_layer", "")
        torch.testing.assert_close(value, before[original], msg=name)  # frozen base


# ---- evaluation -------------------------------------------------------------------------------

def test_metrics_and_robustness_definitions():
    metrics = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(0.6)
    assert metrics["per_class"]["b"]["recall"] == 1.0 and metrics["per_class"]["c"]["support"] == 1
    assert metrics["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    levels = [0.0, 0.5, 1.0]
    assert relative_robustness([0.8, 0.8, 0.8], levels) == pytest.approx(0.8)
    assert relative_robustness([1.0, 0.5, 0.0], levels) == pytest.approx(0.5)
    assert effective_robustness([0.9, 0.7, 0.5], [0.8, 0.6, 0.4]) == pytest.approx(0.0)
    assert effective_robustness([0.9, 0.8, 0.7], [0.8, 0.6, 0.4]) == pytest.approx(0.3)


def test_noise_degrades_a_trained_model_and_missing_modalities_are_scored():
    trainer = make_trainer(small_config("late", epochs=8, lr=0.02))
    trainer.fit()
    batches = [Collate()([array_data(30, seed=7)[i] for i in range(30)])]
    result = robustness(trainer.model, batches, ["image", "series"], "label", levels=[0.0, 2.0, 8.0])
    image, series = result["noise"]["image"], result["noise"]["series"]
    assert image[0] == series[0] >= 0.9  # level 0 is the clean model
    assert series[-1] < series[1] < series[0]  # more noise, less accuracy
    # the image's class signal is a mean brightness that iid noise averages out: it barely moves
    assert min(image) >= image[0] - 0.1
    assert result["missing"]["series"] < series[0] and result["missing"]["image"] < series[0]
    noisy = add_noise(batches[0], "image", 1.0, torch.Generator().manual_seed(0))
    assert noisy["inputs"]["series"] is batches[0]["inputs"]["series"]
    assert not torch.equal(noisy["inputs"]["image"], batches[0]["inputs"]["image"])


def test_gradient_accumulation_equals_the_larger_batch():
    """2 micro-batches of 4 with accumulate=2 take the same steps as batches of 8."""
    accumulated = make_trainer(small_config("early", batch_size=4, accumulate=2, epochs=2))
    accumulated.fit()
    whole = make_trainer(small_config("early", batch_size=8, epochs=2))
    whole.fit()
    assert accumulated.progress["step"] == whole.progress["step"] == 10
    a, b = weights(accumulated.model), weights(whole.model)
    # the first conv's bias feeds a one-channel-per-group GroupNorm that removes it: zero true gradient
    for name in set(a) - {"encoders.image.body.0.bias"}:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-6, msg=name)


# ---- modality dropout -------------------------------------------------------------------------

def test_modality_dropout_hides_one_modality_never_the_last():
    size = 4000
    batch = {"inputs": {"image": torch.zeros(size, 1, 8, 8), "series": torch.zeros(size, 6, 3)},
             "present": {"series": torch.arange(size) % 10 != 0}}  # every 10th sample has the image only
    dropped = drop_modalities(batch, 0.3, torch.Generator().manual_seed(0))
    image, series = dropped["present"]["image"], dropped["present"]["series"]
    assert (image | series).all()  # nobody is left with nothing
    assert image[::10].all()  # a lone modality is never dropped
    both = torch.arange(size) % 10 != 0
    lost = (~image | ~series)[both].float().mean()
    assert abs(float(lost) - 0.3) < 0.03
    assert abs(float((~image[both]).float().mean()) - float((~series[both]).float().mean())) < 0.04  # either one
    assert torch.equal(batch["present"]["series"], torch.arange(size) % 10 != 0)  # the input batch is untouched
    assert drop_modalities(batch, 0.0) is batch


def shape_coded_data(count: int = 48, seed: int = 0) -> ArrayDataset:
    """array_data's series plus an image whose shape (not brightness, which GroupNorm removes) codes the class."""
    data = array_data(count, seed)
    generator = torch.Generator().manual_seed(seed + 100)
    image = torch.randn(count, 1, 8, 8, generator=generator) * 0.3
    for i, label in enumerate(data.targets["label"].tolist()):
        if label == 0:
            image[i, 0, 3:5, :] += 1.5  # horizontal bar
        elif label == 1:
            image[i, 0, :, 3:5] += 1.5  # vertical bar
        else:
            image[i, 0, ::2, ::2] += 1.5  # dots
    return ArrayDataset({"image": image, "series": data.inputs["series"]}, data.targets)


def test_modality_dropout_trains_a_model_that_copes_with_a_missing_modality():
    """Tensor fusion trained on both modalities only fails when one is missing; with dropout it copes."""
    test = [Collate()([shape_coded_data(60, seed=7)[i] for i in range(60)])]
    scores = {}
    for rate in (0.0, 0.5):
        trainer = make_trainer(small_config("tensor", epochs=8, lr=0.02, modality_dropout=rate), data=shape_coded_data())
        trainer.fit()
        scores[rate] = robustness(trainer.model, test, ["image", "series"], "label", levels=[0.0])
    assert scores[0.5]["noise"]["image"][0] >= 0.9  # still right with both modalities
    assert min(scores[0.5]["missing"].values()) >= 0.85
    assert min(scores[0.0]["missing"].values()) < 0.75


# ---- unimodal (Gradient-Blending) losses ------------------------------------------------------

def test_unimodal_loss_adds_each_present_modality_heads_cross_entropy():
    import torch.nn.functional as F

    config = small_config("tensor", unimodal_loss_weight=0.5)
    trainer = make_trainer(config)
    model = trainer.model
    assert set(model.unimodal_heads) == {"image", "series"}
    assert build_model(small_config("tensor"), {"label": 3}).unimodal_heads is None  # off by default
    batch = Collate()([array_data(8, seed=3)[i] for i in range(8)])
    batch["present"] = {"series": torch.tensor([True] * 6 + [False] * 2)}  # two samples have no series
    logits, outputs, present = model(batch, return_parts=True)
    labels = batch["labels"]["label"]
    fused = F.cross_entropy(logits["label"], labels)
    image_only = F.cross_entropy(model.unimodal_heads["image"]["label"](outputs["image"].pooled), labels)
    series_here = present["series"]
    series_only = F.cross_entropy(model.unimodal_heads["series"]["label"](outputs["series"].pooled)[series_here],
                                  labels[series_here])  # an absent modality's head has nothing to learn from
    expected = fused + 0.5 * (image_only + series_only)
    torch.testing.assert_close(trainer._loss(logits, batch["labels"], outputs, present), expected)
    torch.testing.assert_close(trainer._loss(logits, batch["labels"]), fused)  # validation: the fused loss only


def test_unimodal_loss_is_configured_not_negative_and_resumes_exactly(tmp_path):
    with pytest.raises(ConfigError, match="train.unimodal_loss_weight"):
        small_config(unimodal_loss_weight=-1.0)
    config = small_config("gated", unimodal_loss_weight=1.0)
    uninterrupted = make_trainer(config, tmp_path / "a")
    uninterrupted.fit()
    stopped = make_trainer(config, tmp_path / "b")
    assert stopped.fit(stop_after_steps=7)["interrupted"]
    resumed = make_trainer(config, tmp_path / "b")
    resumed.fit(resume=True)
    final, expected = weights(resumed.model), weights(uninterrupted.model)
    assert any(name.startswith("unimodal_heads.") for name in expected)
    for name in expected:
        torch.testing.assert_close(final[name], expected[name], rtol=1e-6, atol=1e-7, msg=name)

