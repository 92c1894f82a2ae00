"""`sensorium embed DIR -o vectors.parquet`: a folder's vectors as a table, in this process or in
worker processes (Ray actors: tests/test_workers_ray.py), with the same rows either way."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pq = pytest.importorskip("pyarrow.parquet", reason="writing Parquet needs pyarrow: pip install 'sensorium[tables]'")

from helpers.cli import run, shared_home  # noqa: E402
from helpers.workers import PHOTOS  # noqa: E402

from sensorium.export import COLUMNS, export_vectors  # noqa: E402


def read_rows(path: Path, folder: Path) -> dict:
    """{(file name, segment, space): (modality, source, text, vector)} from an exported table."""
    table = pq.read_table(path).to_pylist()
    return {(Path(r["path"]).relative_to(folder).as_posix(), r["segment"], r["space"]):
            (r["modality"], r["source"], r["text"], np.asarray(r["vector"], np.float32)) for r in table}


def assert_same_rows(ours: dict, theirs: dict) -> None:
    assert sorted(ours) == sorted(theirs)
    for key, (modality, source, text, vector) in theirs.items():
        assert ours[key][:3] == (modality, source, text), key
        np.testing.assert_allclose(ours[key][3], vector, atol=2e-4, err_msg=str(key))


@pytest.fixture(scope="module")
def exported(worker_media, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("export") / "vectors.parquet"
    return out, export_vectors(worker_media, out)


def test_every_file_becomes_rows(worker_media, exported):
    out, report = exported
    assert report.files == PHOTOS + 6 and [Path(p).name for p, _ in report.failed] == ["broken.png"]
    table = pq.read_table(out)
    assert table.column_names == list(COLUMNS) and table.num_rows == report.rows
    rows = read_rows(out, worker_media)
    photo = {space for (name, segment, space) in rows if name == "kitty.jpg"}
    assert photo == {"shared", "image"}
    assert {space for (name, _, space) in rows if name == "memo.wav"} == {"shared", "audio"}
    assert any("market" in text.lower() for (name, _, _), (_, _, text, _) in rows.items() if name == "memo.wav")
    for key, (_, _, _, vector) in rows.items():
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-3, key
    assert not list(out.parent.glob(".*partial")), "the partial file was left behind"


def test_workers_write_the_same_rows(worker_media, exported, tmp_path):
    out = tmp_path / "vectors.parquet"
    report = export_vectors(worker_media, out, workers=2)
    assert report.rows == exported[1].rows and [Path(p).name for p, _ in report.failed] == ["broken.png"]
    assert_same_rows(read_rows(out, worker_media), read_rows(exported[0], worker_media))


def test_a_stopped_export_leaves_no_table(worker_media, tmp_path):
    out = tmp_path / "vectors.parquet"
    report = export_vectors(worker_media, out, should_stop=lambda: True)
    assert report.cancelled and not out.exists() and not list(tmp_path.iterdir())


def test_cli_embed(worker_media, tmp_path):
    out = tmp_path / "v.parquet"
    done = run("embed", str(worker_media), "-o", str(out), "--no-ocr", "--json", env_home=shared_home())
    assert done.returncode == 3, done.stderr  # broken.png failed
    report = json.loads(done.stdout)
    assert report["rows"] == pq.read_table(out).num_rows > 0
    wrong = run("embed", str(worker_media), "-o", str(tmp_path / "v.csv"), env_home=shared_home())
    assert wrong.returncode == 2 and ".parquet" in wrong.stderr
