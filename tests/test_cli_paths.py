"""`sensorium` options nothing else walks, run as a user would (a new process per command, reading
its output): index --speech-model / --space / --detach-space / --clip, search --audio / --image,
classify --space, and classifying a video and a text file."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from helpers.cli import another_view_of, cat_photo, make_media, run, shared_home, small_space, write_still_video

# ten labels: a broken model ranks the right one first 1 time in 10
LABELS = "dog,cat,car,airplane,pizza,guitar,bicycle,tree,boat,clock"


@pytest.fixture(scope="module")
def home() -> Path:
    return shared_home()


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    return make_media(tmp_path_factory.mktemp("cli-paths-media"))


@pytest.fixture(scope="module")
def whisper_dir() -> Path:
    from sensorium.experts.whisper import joined_model_dir

    return joined_model_dir()


@pytest.fixture(scope="module")
def collection(media, home, whisper_dir, tmp_path_factory) -> Path:
    """Indexed with --speech-model pointing at the joined Whisper folder (no OCR nor people: faster)."""
    directory = tmp_path_factory.mktemp("cli-paths-col")
    result = run("index", str(media), "-c", str(directory), "--speech-model", str(whisper_dir), "--no-ocr",
                 "--no-people", "--json", env_home=home)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["added"] == 5
    return directory


def info(collection: Path, home: Path) -> dict:
    result = run("info", "-c", str(collection), "--json", env_home=home)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def search(collection: Path, home: Path, *args: str) -> list[dict]:
    result = run("search", "-c", str(collection), "--json", *args, env_home=home)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# ---------------------------------------------------------------- index --speech-model


def test_speech_model_folder_is_kept_and_transcribes_the_memo(collection, home, whisper_dir):
    data = info(collection, home)
    assert data["experts"]["speech_dir"] == str(whisper_dir.resolve())
    assert data["counts"] == {"audio": 1, "image": 3, "text": 1}
    hits = search(collection, home, "what should I buy at the market", "-k", "1")
    assert Path(hits[0]["path"]).name == "memo.wav" and hits[0]["start"] is not None


def test_a_speech_model_folder_that_is_not_whisper_is_refused(media, home, tmp_path):
    """The option is honoured, not ignored: a folder without Whisper's files fails the recording,
    naming what is missing, and the images and notes are still indexed."""
    empty = tmp_path / "not-whisper"
    empty.mkdir()
    result = run("index", str(media), "-c", str(tmp_path / "col"), "--speech-model", str(empty), "--no-ocr",
                 "--no-people", "--json", env_home=home)
    assert result.returncode in (1, 3), result.stdout + result.stderr
    assert "model.bin" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- search --audio / --image


def test_spoken_query_finds_the_memo(collection, home, tmp_path):
    """A question said aloud (espeak-ng) is transcribed and finds the recording about it; among 5
    items a broken path would put it first 1 time in 5."""
    from sensorium.experts.tts import save_wav, synthesize

    query = save_wav(synthesize("What should I buy at the market?", voice="en-gb"), tmp_path / "question.wav")
    hits = search(collection, home, "--audio", str(query), "-k", "5")
    assert Path(hits[0]["path"]).name == "memo.wav", hits
    assert len(hits) == 5


def test_example_image_finds_the_same_scene(collection, home, tmp_path):
    """Another view of the cat (mirrored, cropped, halved: not the indexed file's bytes) finds the
    cat photo first among the three images, and before the notes and recordings."""
    query = tmp_path / "cat-again.png"
    Image.fromarray(another_view_of(cat_photo())).save(query)
    hits = search(collection, home, "--image", str(query), "-k", "5")
    assert Path(hits[0]["path"]).name == "kitty.jpg", hits
    images = search(collection, home, "--image", str(query), "--kind", "image", "-k", "3")
    assert [Path(h["path"]).name for h in images][0] == "kitty.jpg"
    assert images[0]["score"] > images[1]["score"] + 0.05, images


# ---------------------------------------------------------------- index --space / --detach-space


def test_space_attaches_and_detaches(collection, media, home, tmp_path):
    space = small_space(tmp_path / "space", weight=0.05)
    both = run("index", str(media), "-c", str(collection), "--space", str(space), "--detach-space", env_home=home)
    assert both.returncode == 2 and "--detach-space" in both.stderr  # one or the other

    result = run("index", str(media), "-c", str(collection), "--space", str(space), env_home=home)
    assert result.returncode == 0, result.stderr
    assert "attached space" in result.stdout and "16-d" in result.stdout
    learned = info(collection, home)["space"]
    assert learned["attached"] is True and learned["dim"] == 16 and learned["weight"] == pytest.approx(0.05)
    assert learned["vectors"] == 3  # one per photo, through the image head
    assert Path(learned["source"]).resolve() == space.resolve()
    # searches combine it with the bridge; w = 0.05 keeps the cat first
    hits = search(collection, home, "a photo of a cat", "--kind", "image", "-k", "3")
    assert Path(hits[0]["path"]).name == "kitty.jpg"

    detached = run("index", str(media), "-c", str(collection), "--detach-space", env_home=home)
    assert detached.returncode == 0, detached.stderr
    assert "detached the learned space" in detached.stdout
    assert not (info(collection, home)["space"] or {}).get("attached")


# ---------------------------------------------------------------- classify --space, video, text


def test_classify_with_a_space_says_so_and_keeps_a_clear_answer(media, home, tmp_path):
    """A learned space (random 16-d heads, seeded, w = 0.3) takes part and a clear answer stays.
    The bridge nearly saturates on the cat (p = 0.97 for "cat" among near-synonyms), so taking part
    is judged where it can show: the odds of "kitten" over "tabby cat", log 0.31 without the space,
    measured log 0.92 with it (a shift of 0.6-1.5 for three other seeds); the cat stays first among
    ten labels (chance 1 in 10) at w = 0.3 for each of four seeds measured."""
    import math

    space = small_space(tmp_path / "space", weight=0.3)

    def classify(labels: str, *options: str) -> dict:
        result = run("classify", str(media / "kitty.jpg"), "--labels", labels, "--json", *options, env_home=home)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    clear = classify(LABELS, "--space", str(space))
    assert clear["labels"][0]["label"] == "cat" and "+ 0.3 x learned space" in clear["method"], clear
    near = "cat,kitten,tabby cat"
    plain, with_space = classify(near), classify(near, "--space", str(space))
    assert "learned space" not in plain["method"]

    def odds(result: dict) -> float:
        score = {s["label"]: s["score"] for s in result["labels"]}
        return math.log(score["kitten"] / score["tabby cat"])

    assert abs(odds(with_space) - odds(plain)) > 0.2, (plain, with_space)

    missing = run("classify", str(media / "kitty.jpg"), "--labels", LABELS, "--space", str(tmp_path / "nope"),
                  env_home=home)
    assert missing.returncode == 2 and "nope" in missing.stderr and "Traceback" not in missing.stderr


def test_classify_a_video_and_a_text_file(media, home, tmp_path):
    """A video of the cat (frames only) and the hiking note, ranked over the same ten labels plus
    "hiking" (chance 1 in 11 each)."""
    video = write_still_video(tmp_path / "cat.mp4", cat_photo())
    labels = LABELS + ",hiking"
    result = run("classify", str(video), str(media / "note.md"), "--labels", labels, "--json", env_home=home)
    assert result.returncode == 0, result.stderr
    batch = json.loads(result.stdout)
    assert batch["failures"] == []
    by_file = {Path(r["path"]).name: r for r in batch["results"]}
    assert by_file["cat.mp4"]["modality"] == "video" and by_file["cat.mp4"]["labels"][0]["label"] == "cat"
    assert by_file["note.md"]["modality"] == "text" and by_file["note.md"]["labels"][0]["label"] == "hiking"
    assert by_file["note.md"]["method"] == "text embedding" and "frames" in by_file["cat.mp4"]["method"]
    for result in batch["results"]:
        assert len(result["labels"]) == 11
        assert sum(s["score"] for s in result["labels"]) == pytest.approx(1.0, abs=1e-3)


# ---------------------------------------------------------------- index --clip


def test_clip_checkpoint_adds_a_clip_space(media, home, tmp_path):
    """A tiny randomly initialised CLIP checkpoint written offline (as tests/test_clip_backend.py
    does): indexing with --clip records the folder and stores one CLIP vector per photo, and text
    and image searches run through it. (Random weights: what it ranks is not judged here.)"""
    from helpers.clip import write_checkpoint as _write_checkpoint

    from sensorium.collection import Collection
    from sensorium.space.segments import CLIP

    checkpoint = tmp_path / "tiny-clip"
    checkpoint.mkdir()
    _write_checkpoint(checkpoint)
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("kitty.jpg", "mug.png", "rocket.png"):
        (photos / name).write_bytes((media / name).read_bytes())
    col = tmp_path / "col"
    result = run("index", str(photos), "-c", str(col), "--clip", str(checkpoint), "--no-ocr", "--no-people",
                 "--json", env_home=home)
    assert result.returncode == 0, result.stderr
    assert info(col, home)["experts"]["clip_dir"] == str(checkpoint.resolve())
    with Collection(col) as collection:
        assert collection.spaces()[CLIP] == 16  # the checkpoint's projection_dim
        assert len(collection.store(CLIP)) == 3
    assert len(search(col, home, "a cat", "-k", "3")) == 3
    query = tmp_path / "cat-again.png"
    Image.fromarray(another_view_of(cat_photo())).save(query)
    assert Path(search(col, home, "--image", str(query), "-k", "1")[0]["path"]).name == "kitty.jpg"

    not_clip = tmp_path / "not-clip"
    not_clip.mkdir()
    refused = run("index", str(photos), "-c", str(tmp_path / "col2"), "--clip", str(not_clip), env_home=home)
    assert refused.returncode == 1 and "config.json" in refused.stderr and "Traceback" not in refused.stderr
