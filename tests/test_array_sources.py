"""Training data held as arrays and tables (issue 22): .npz, one .npy per column (MultiBench's
layout), Parquet, and a folder written by Hugging Face `datasets`. The same bars-and-signals items
written in every form must read back as the same tensors, train, and evaluate from the config's
data.test; broken sources are errors naming the file, column and row."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sensorium.errors import ConfigError, ReadError
from sensorium.training.config import config_from_dict
from sensorium.training.data import load_datasets, open_dataset

COUNT = 64


def bars(count: int = COUNT, seed: int = 0) -> dict[str, np.ndarray]:
    """12x12 pictures of a bar up or across, with a 16x2 signal rising or falling, labels "up"/"across"."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 30, (count, 12, 12)).astype(np.uint8)
    signals = np.empty((count, 16, 2), np.float32)
    labels = []
    for i in range(count):
        up = i % 2 == 0
        at = rng.integers(2, 10)
        if up:
            images[i, :, at - 1:at + 1] = 220
        else:
            images[i, at - 1:at + 1, :] = 220
        ramp = np.linspace(-1, 1, 16, dtype=np.float32) * (1 if up else -1)
        signals[i] = np.stack([ramp, -ramp], axis=1) + 0.1 * rng.standard_normal((16, 2)).astype(np.float32)
        labels.append("up" if up else "across")
    return {"image": images, "signal": signals, "shape": np.array(labels)}


def config(train, test=None, image_kind: str = "image", extra_image: str = "", epochs: int = 8) -> dict:
    """The bars model; `train`/`test` are any data source (a path or a {column: file} table)."""
    image = {"kind": image_kind, "size": 12, "channels": 1} if image_kind == "image" else {"kind": image_kind}
    image.update(json.loads(extra_image) if extra_image else {})
    data = {"train": train, "val_fraction": 0.25, "label": "shape",
            "modalities": {"image": image, "signal": {"kind": "array"}}}
    if test is not None:
        data["test"] = test
    return {"data": data,
            "model": {"encoders": {"image": {"name": "image_cnn", "in_channels": 1, "dim": 8, "widths": [8]},
                                   "signal": {"name": "series_cnn", "in_channels": 2, "dim": 8, "depth": 1}},
                      "fusion": {"method": "late", "output_dim": 8}},
            "train": {"epochs": epochs, "batch_size": 4, "lr": 0.01, "warmup_steps": 1, "threads": 1, "progress": False}}


def write_npz(folder: Path, arrays: dict, compressed: bool) -> Path:
    path = folder / ("compressed.npz" if compressed else "stored.npz")
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def write_parquet(folder: Path, arrays: dict) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pngs = []
    for pixels in arrays["image"]:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    table = pa.table({"image": pa.array(pngs, pa.binary()),
                      "signal": pa.array([s.tolist() for s in arrays["signal"]], pa.list_(pa.list_(pa.float32()))),
                      "shape": pa.array(arrays["shape"].tolist())})
    path = folder / "bars.parquet"
    pq.write_table(table, path)
    return path


def write_hf(folder: Path, arrays: dict) -> Path:
    import datasets

    features = datasets.Features({"image": datasets.Image(), "signal": datasets.Array2D((16, 2), "float32"),
                                  "shape": datasets.ClassLabel(names=["across", "up"])})
    images = [Image.fromarray(p) for p in arrays["image"]]
    labels = [["across", "up"].index(s) for s in arrays["shape"]]
    dataset = datasets.Dataset.from_dict({"image": images, "signal": arrays["signal"], "shape": labels}, features=features)
    path = folder / "hf"
    dataset.save_to_disk(str(path))
    return path


def write_columns(folder: Path, arrays: dict) -> dict[str, str]:
    """MultiBench's layout: flat float32 0-255 pixels, the signal, integer labels, a .npy file each."""
    (folder / "image").mkdir(parents=True, exist_ok=True)
    np.save(folder / "image" / "train_data.npy", arrays["image"].reshape(len(arrays["image"]), 144).astype(np.float32))
    np.save(folder / "signal.npy", arrays["signal"])
    np.save(folder / "train_labels.npy", (arrays["shape"] == "up").astype(np.int64))
    return {"image": str(folder / "image" / "train_data.npy"), "signal": str(folder / "signal.npy"),
            "shape": str(folder / "train_labels.npy")}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("sources")
    arrays = bars()
    return {"npz stored": write_npz(folder, arrays, False), "npz compressed": write_npz(folder, arrays, True),
            "parquet": write_parquet(folder, arrays), "datasets folder": write_hf(folder, arrays)}


@pytest.mark.parametrize("name", ["npz stored", "npz compressed", "parquet", "datasets folder"])
def test_every_source_reads_back_the_same_items(sources, name):
    arrays = bars()
    dataset = open_dataset(sources[name], config_from_dict(config(str(sources[name]))))
    assert len(dataset) == COUNT
    assert dataset.classes == {"label": ["across", "up"]}
    for i in (0, 1, 17, COUNT - 1):
        sample = dataset[i]
        assert torch.equal(sample["inputs"]["image"], torch.from_numpy(arrays["image"][i])[None])
        assert torch.allclose(sample["inputs"]["signal"], torch.from_numpy(arrays["signal"][i]))
        assert dataset.classes["label"][sample["labels"]["label"]] == arrays["shape"][i]


def test_stored_npz_members_are_read_in_place_and_compressed_ones_loaded(sources):
    from sensorium.training.sources import NpyColumn, npz_columns

    assert all(isinstance(c, NpyColumn) for c in npz_columns(sources["npz stored"]).values())
    assert all(isinstance(c, np.ndarray) for c in npz_columns(sources["npz compressed"]).values())


def test_multibench_layout_of_one_npy_per_column_trains_and_evaluates_from_data_test(tmp_path):
    """Flat 0-255 pixels become (1, 12, 12) in [0, 1] through `shape` and `divide`; `sensorium
    evaluate RUN` with no --data scores the config's data.test."""
    train = write_columns(tmp_path / "train", bars(96, seed=1))
    test = write_columns(tmp_path / "test", bars(48, seed=2))
    raw = config(train, test, image_kind="array", extra_image='{"shape": [1, 12, 12], "divide": 255}')
    raw["model"]["encoders"]["image"] = {"name": "image_cnn", "in_channels": 1, "dim": 8, "widths": [8]}
    parsed = config_from_dict(raw)
    first = load_datasets(parsed)[0][0]["inputs"]["image"]
    assert first.shape == (1, 12, 12) and first.dtype == torch.float32 and 0.0 <= float(first.min()) and float(first.max()) <= 1.0
    assert parsed.data.train["image"] == Path(train["image"])
    relative = {"train": {k: str(Path(v).relative_to(tmp_path)) for k, v in train.items()},
                "test": {k: str(Path(v).relative_to(tmp_path)) for k, v in test.items()}}
    toml = _toml({**raw, "data": {**raw["data"], **relative}})  # paths relative to the config's folder
    (tmp_path / "config.toml").write_text(toml)
    cli = [sys.executable, "-m", "sensorium.cli"]
    subprocess.run([*cli, "train", str(tmp_path / "config.toml"), "--out", str(tmp_path / "run")], check=True,
                   capture_output=True, cwd="/")
    done = subprocess.run([*cli, "evaluate", str(tmp_path / "run"), "--json"], check=True, capture_output=True,
                          text=True, cwd="/")
    report = json.loads(done.stdout)
    assert report["items"] == 48
    assert report["tasks"]["label"]["accuracy"] >= 0.9
    assert set(report["tasks"]["label"]["per_class"]) == {"0", "1"}


def test_a_parquet_table_trains_and_its_nulls_are_missing_modalities(tmp_path, sources, monkeypatch):
    from sensorium.training.evaluate import EMULATED_BF16

    monkeypatch.setenv(EMULATED_BF16, "1")  # scoring in bf16 is asked below, on any CPU
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sensorium.training.runs import evaluate_run, run_training

    table = pq.read_table(sources["parquet"])
    signal = table.column("signal").to_pylist()
    signal[3] = None
    pq.write_table(table.set_column(1, "signal", pa.array(signal, pa.list_(pa.list_(pa.float32())))), tmp_path / "holes.parquet")
    dataset = open_dataset(tmp_path / "holes.parquet", config_from_dict(config(str(tmp_path / "holes.parquet"))))
    assert dataset[3]["inputs"]["signal"] is None and dataset[4]["inputs"]["signal"] is not None
    (tmp_path / "config.toml").write_text(_toml(config(str(sources["datasets folder"]), str(sources["parquet"]))))
    run_training(tmp_path / "config.toml", tmp_path / "run")
    report = evaluate_run(tmp_path / "run")
    assert report["tasks"]["label"]["accuracy"] >= 0.9 and report["bf16"] is False  # scored as trained
    trained_batch = config_from_dict(config(str(sources["parquet"]))).train.batch_size
    assert report["batch_size"] == trained_batch  # in the batches it trained in
    as_trained = evaluate_run(tmp_path / "run", as_trained=True)  # no rewritten encoder: the same scores
    assert as_trained["encoders"] == {} and set(report["encoders"]) == {"image", "signal"}
    assert as_trained["tasks"]["label"] == report["tasks"]["label"]
    one_by_one = evaluate_run(tmp_path / "run", batch_size=1)
    assert one_by_one["batch_size"] == 1
    assert one_by_one["tasks"]["label"]["accuracy"] == report["tasks"]["label"]["accuracy"]
    with pytest.raises(ConfigError, match="batch size must be at least 1"):
        evaluate_run(tmp_path / "run", batch_size=-2)
    in_bf16 = evaluate_run(tmp_path / "run", bf16=True)
    assert in_bf16["bf16"] is True and in_bf16["tasks"]["label"]["accuracy"] >= 0.9
    holes = evaluate_run(tmp_path / "run", tmp_path / "holes.parquet")
    assert holes["items"] == COUNT
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    record["config"]["train"]["bf16"] = True  # a run trained in bf16 is scored in bf16 unless told otherwise
    (tmp_path / "run" / "run.json").write_text(json.dumps(record))
    assert evaluate_run(tmp_path / "run")["bf16"] is True and evaluate_run(tmp_path / "run", bf16=False)["bf16"] is False
    record["config"]["data"]["test"] = None
    (tmp_path / "run" / "run.json").write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="evaluate: give --data, or name the test data as data.test"):
        evaluate_run(tmp_path / "run")


@pytest.mark.parametrize("indices", [[0, 1, 2, 3], [5, 9, 10, 11, 3, 40], []])
def test_a_batch_read_at_once_holds_the_tensors_read_row_by_row(sources, tmp_path, indices):
    columns = write_columns(tmp_path, bars())
    flat_pixels = {"image_kind": "array", "extra_image": '{"shape": [1, 12, 12], "divide": 255}'}
    for source, extra in ((str(sources["npz stored"]), {}), (columns, flat_pixels)):
        dataset = open_dataset(source, config_from_dict(config(source, **extra)))
        together, one_by_one = dataset.__getitems__(indices), [dataset[i] for i in indices]
        assert len(together) == len(one_by_one)
        for a, b in zip(together, one_by_one):
            assert a["labels"] == b["labels"] and set(a["inputs"]) == set(b["inputs"])
            assert all(torch.equal(a["inputs"][m], b["inputs"][m]) for m in a["inputs"])


def test_rows_read_inside_dataloader_workers(sources):
    from torch.utils.data import DataLoader

    from sensorium.training.data import Collate

    dataset = open_dataset(sources["npz stored"], config_from_dict(config(str(sources["npz stored"]))))
    batches = list(DataLoader(dataset, batch_size=16, num_workers=2, collate_fn=Collate()))
    assert sum(len(b["labels"]["label"]) for b in batches) == COUNT
    assert torch.equal(batches[0]["inputs"]["image"][0], dataset[0]["inputs"]["image"])


def test_broken_sources_name_the_file_column_and_row(tmp_path, sources):
    parsed = config_from_dict(config("x.npz"))
    arrays = bars()
    np.savez(tmp_path / "no_signal.npz", image=arrays["image"], shape=arrays["shape"])
    with pytest.raises(ReadError, match=r"no_signal\.npz.*no column 'signal'.*columns: image, shape"):
        open_dataset(tmp_path / "no_signal.npz", parsed)
    np.savez(tmp_path / "short.npz", image=arrays["image"], signal=arrays["signal"][:10], shape=arrays["shape"])
    with pytest.raises(ReadError, match="columns differ in length"):
        open_dataset(tmp_path / "short.npz", parsed)
    bad = arrays["signal"].copy()
    bad[5, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", image=arrays["image"], signal=bad, shape=arrays["shape"])
    with pytest.raises(ReadError, match=r"nan\.npz row 5, column 'signal'.*NaN"):
        open_dataset(tmp_path / "nan.npz", parsed)[5]
    with pytest.raises(ReadError, match=r"nan\.npz row 5, column 'signal'.*NaN"):  # a batch names its bad row too
        open_dataset(tmp_path / "nan.npz", parsed).__getitems__([3, 4, 5, 6])
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
    with pytest.raises(ReadError, match="pickled"):
        open_dataset({"image": tmp_path / "objects.npy", "signal": tmp_path / "objects.npy",
                      "shape": tmp_path / "objects.npy"}, parsed)
    columns = write_columns(tmp_path / "cut", arrays)
    whole = Path(columns["signal"]).read_bytes()
    Path(columns["signal"]).write_bytes(whole[: len(whole) - 200])
    cut = open_dataset({k: Path(v) for k, v in columns.items()},
                       config_from_dict(config(columns, image_kind="array", extra_image='{"shape": [1, 12, 12]}')))
    with pytest.raises(ReadError, match="truncated"):
        cut[COUNT - 1]
    with pytest.raises(ReadError, match=f"row {COUNT - 2}: the file ends early"):
        cut.__getitems__(list(range(COUNT - 4, COUNT)))
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ReadError, match=r"junk\.parquet.*not a readable table"):
        open_dataset(tmp_path / "junk.parquet", parsed)
    with pytest.raises(ReadError, match="no such data file"):
        open_dataset(tmp_path / "absent.npz", parsed)


def test_config_checks_tables_shapes_and_normalisation():
    with pytest.raises(ConfigError, match="data.train: an empty table"):
        config_from_dict(config({}))
    with pytest.raises(ConfigError, match=r"data.modalities.image.shape: must be a list of positive ints"):
        config_from_dict(config("x.npz", image_kind="array", extra_image='{"shape": [1, 0]}'))
    with pytest.raises(ConfigError, match=r"normalise: 'speaker' is not one of none, item"):
        config_from_dict(config("x.npz", image_kind="array", extra_image='{"normalise": "speaker"}'))


def test_item_normalisation_gives_each_row_mean_zero_and_unit_spread(sources):
    parsed = config_from_dict(config(str(sources["npz stored"]), image_kind="array",
                                     extra_image='{"normalise": "item", "shape": [1, 12, 12]}'))
    image = open_dataset(sources["npz stored"], parsed)[0]["inputs"]["image"]
    assert torch.allclose(image.mean(dim=-1), torch.zeros(1, 12), atol=1e-4)
    assert torch.allclose(image.std(dim=-1, unbiased=False), torch.ones(1, 12), atol=1e-3)


def test_group_normalisation_centres_each_group_with_its_own_statistics(tmp_path):
    """Two "speakers" whose signals differ by an offset and a scale: after per-group normalisation
    each group's rows have mean 0 and spread 1 over its items, so the offset is gone."""
    arrays = bars()
    speakers = np.array(["a", "b"] * (COUNT // 2))
    shifted = arrays["signal"].copy()
    shifted[speakers == "b"] = shifted[speakers == "b"] * 3 + 10
    np.savez(tmp_path / "voices.npz", image=arrays["image"], signal=shifted, shape=arrays["shape"], speaker=speakers)
    raw = config(str(tmp_path / "voices.npz"))
    raw["data"]["modalities"]["signal"] = {"kind": "array", "normalise": "group", "group": "speaker"}
    dataset = open_dataset(tmp_path / "voices.npz", config_from_dict(raw))
    for group in ("a", "b"):
        rows = np.flatnonzero(speakers == group)
        values = torch.stack([dataset[int(i)]["inputs"]["signal"] for i in rows])  # (items, 16, 2)
        assert torch.allclose(values.mean(dim=(0, 2)), torch.zeros(16), atol=1e-4)
        assert torch.allclose(values.std(dim=(0, 2), unbiased=False), torch.ones(16), atol=1e-3)
    raw["data"]["modalities"]["signal"]["group"] = "accent"
    with pytest.raises(ReadError, match="no column 'accent'"):
        open_dataset(tmp_path / "voices.npz", config_from_dict(raw))
    raw["data"]["modalities"]["signal"]["group"] = ""
    with pytest.raises(ConfigError, match="name the group column exactly when"):
        config_from_dict(raw)
    raw["data"]["modalities"]["signal"]["group"] = "speaker"
    with pytest.raises(ConfigError, match="reads its groups from an array or table source"):
        open_dataset(tmp_path / "manifest.csv", config_from_dict(raw))


def _toml(raw: dict) -> str:
    """A config dict as TOML (enough of TOML for these configs)."""
    lines = []

    def table(prefix, value):
        scalars = {k: v for k, v in value.items() if not isinstance(v, dict)}
        if prefix:
            lines.append(f"[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{k} = {json.dumps(v)}")
        for k, v in value.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}" if prefix else k, v)

    table("", raw)
    return "\n".join(lines) + "\n"
