"""BasicMotions: the .ts reader, the loader's documented shapes, and a fusion model learning the task.

The data ships inside the aeon wheel (`pip install --no-deps aeon==1.6.0`, the `bench` extra);
tests that need it skip when it is not installed.
"""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("basicmotions_bench", ROOT / "benchmarks" / "quality" / "basicmotions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bm = _load_benchmark()
needs_data = pytest.mark.skipif(bm.data_folder() is None,
                                reason="BasicMotions data absent: pip install --no-deps aeon==1.6.0 (the bench extra)")

from sensorium.errors import ReadError  # noqa: E402

TS_HEADER = """#A comment line
@problemName Toy
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength true
@seriesLength 3
@classLabel true Up Down
@data
"""


def test_read_ts_parses_multivariate_cases(tmp_path):
    path = tmp_path / "toy.ts"
    path.write_text(TS_HEADER + "1,2,3:4,5,6:Up\n-1,-2,-3.5:0,0,1e-1:Down\n", encoding="utf-8")
    series, labels, classes = bm.read_ts(path)
    assert series.shape == (2, 2, 3) and series.dtype == np.float32
    np.testing.assert_allclose(series[1, 0], [-1, -2, -3.5])
    np.testing.assert_allclose(series[1, 1], [0, 0, 0.1])
    assert labels == ["Up", "Down"] and classes == ["Up", "Down"]


@pytest.mark.parametrize("body, reason", [
    ("1,2,3:4,x,6:Up\n", "not numeric"),
    ("1,2,3:4,5:Up\n", "differ in length"),
    ("1,2,3:4,5,6:Sideways\n", "not among @classLabel"),
    ("?,2,3:4,5,6:Up\n", "not numeric|missing"),
])
def test_read_ts_rejects_malformed_cases_naming_the_problem(tmp_path, body, reason):
    path = tmp_path / "bad.ts"
    path.write_text(TS_HEADER + body, encoding="utf-8")
    with pytest.raises(ReadError) as caught:
        bm.read_ts(path)
    assert "bad.ts" in str(caught.value) and re.search(reason, str(caught.value))


def test_loader_names_the_missing_file(tmp_path):
    with pytest.raises(ReadError, match="BasicMotions_TRAIN.ts.*no such .ts file"):
        bm.load_basicmotions(tmp_path)


@needs_data
def test_loader_returns_the_official_split_with_documented_shapes():
    data = bm.load_basicmotions()
    assert data["x_train"].shape == (40, 100, 6) and data["x_test"].shape == (40, 100, 6)
    assert data["x_train"].dtype == np.float32 and np.isfinite(data["x_train"]).all()
    assert bm.CLASSES == ("Standing", "Running", "Walking", "Badminton")
    for split in ("train", "test"):
        assert np.bincount(data[f"y_{split}"], minlength=4).tolist() == [10, 10, 10, 10]
    # Standing barely moves, running shakes the watch: the accelerometer's spread tells them apart.
    spread = data["x_train"][:, :, :3].std(axis=1).mean(axis=1)
    standing = spread[data["y_train"] == bm.CLASSES.index("Standing")]
    running = spread[data["y_train"] == bm.CLASSES.index("Running")]
    assert standing.max() < running.min()

    train, test = bm.modality_datasets(data)
    assert set(train.inputs) == {"accelerometer", "gyroscope"}
    assert train.inputs["accelerometer"].shape == (40, 100, 3) and test.inputs["gyroscope"].shape == (40, 100, 3)
    torch.testing.assert_close(train.inputs["gyroscope"], torch.from_numpy(
        (data["x_train"][:, :, 3:] - data["x_train"][:, :, 3:].mean((0, 1))) / (data["x_train"][:, :, 3:].std((0, 1)) + 1e-6)))
    pooled = torch.cat([train.inputs[m] for m in bm.CHANNELS], dim=2).reshape(-1, 6)
    torch.testing.assert_close(pooled.mean(0), torch.zeros(6), atol=1e-4, rtol=0)

    few = bm.few_per_class(train, 1)
    assert sorted(few.targets["label"].tolist()) == [0, 1, 2, 3]
    first_running = int(np.flatnonzero(data["y_train"] == bm.CLASSES.index("Running"))[0])
    row = few.targets["label"].tolist().index(bm.CLASSES.index("Running"))
    torch.testing.assert_close(few.inputs["accelerometer"][row], train.inputs["accelerometer"][first_running])


@needs_data
def test_gated_fusion_learns_basicmotions_well_above_chance():
    from benchmarks.common import fusion_bench

    torch.set_num_threads(1)
    train, test = bm.modality_datasets(bm.load_basicmotions())
    config = bm.config_for(list(bm.CHANNELS), "gated", epochs=8, seed=0)
    run = fusion_bench.run_model("fusion: gated", list(bm.CHANNELS), config, 4, train, fusion_bench.batches_of(test), 0)
    assert run["accuracy"] >= 0.75, run["accuracy"]  # chance is 0.25 on the balanced 40-recording test set
    assert set(run["missing"]) == {"accelerometer", "gyroscope"} and len(run["noise"]["gyroscope"]) == 11


@needs_data
def test_example_config_trains_through_sensorium_train(tmp_path):
    from sensorium.training.runs import evaluate_run, run_training

    bm.export(tmp_path / "export", bm.load_basicmotions())
    with (tmp_path / "export" / "train.csv").open() as handle:
        assert handle.readline().strip() == "accelerometer,gyroscope,activity"
    assert np.load(tmp_path / "export" / "files" / "train_000_gyroscope.npy").shape == (100, 3)
    text = (ROOT / "examples" / "basicmotions.toml").read_text(encoding="utf-8")
    text = text.replace("../.benchmarks-cache/basicmotions/export/train.csv", "export/train.csv")
    text = re.sub(r"(?m)^epochs = \d+", "epochs = 12", text)
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    torch.set_num_threads(1)
    summary = run_training(tmp_path / "config.toml", tmp_path / "run")
    assert summary["epoch"] == 12
    report = evaluate_run(tmp_path / "run", tmp_path / "export" / "test.csv", levels=[0.0, 1.0])
    assert report["items"] == 40
    assert report["tasks"]["label"]["accuracy"] >= 0.6  # 32 training recordings, 12 epochs; chance 0.25
    assert set(report["robustness"]["missing"]) == {"accelerometer", "gyroscope"}
