"""The demo's sample folder: every file decodes, the video's scenes and speech are where the
manifest says, the build is offline, deterministic and leaves unchanged files alone."""
from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
from PIL import Image, ImageOps

from sensorium.demo.sample_data import NOTES, STAMP_NAME, SampleManifest, build_sample_folder


def _refuse_network(*_args, **_kwargs):
    raise OSError("network blocked by test")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[SampleManifest, float]:
    dest = tmp_path_factory.mktemp("samples")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _refuse_network)
        patch.setattr(socket.socket, "connect_ex", _refuse_network)
        started = time.perf_counter()
        manifest = build_sample_folder(dest)
        seconds = time.perf_counter() - started
    return manifest, seconds


@pytest.fixture(scope="module")
def manifest(built) -> SampleManifest:
    return built[0]


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0


def test_offline_build_lists_every_file(built):
    manifest, _ = built  # how long it takes is a benchmark's question, not a test's
    kinds = [f.kind for f in manifest.files]
    assert kinds.count("photo") >= 8 and kinds.count("voice memo") == 3
    assert kinds.count("video") == 1 and kinds.count("note") == 4
    on_disk = {str(p.relative_to(manifest.root)) for p in manifest.root.rglob("*") if p.is_file()}
    assert on_disk == {f.path for f in manifest.files} | {STAMP_NAME}
    assert sorted(manifest.written) == sorted(f.path for f in manifest.files)
    assert {Path(f.path).suffix for f in manifest.files} >= {
        ".jpg", ".png", ".webp", ".wav", ".flac", ".ogg", ".mp4", ".md", ".txt"}
    assert all(len(f.description) > 20 for f in manifest.files)
    json.dumps(manifest.as_dict())  # the tour can save it


def test_photos_decode_and_the_cat_carries_an_exif_rotation(manifest):
    for item in manifest.by_kind("photo"):
        with Image.open(manifest.path_of(item)) as image:
            image.load()
            assert min(image.size) >= 150
    with Image.open(manifest.path_of("photos/cat.jpg")) as stored:
        assert stored.getexif().get(0x0112) == 6
        assert stored.size == (300, 451)  # stored sideways
        upright = np.asarray(ImageOps.exif_transpose(stored).convert("RGB"), dtype=np.float32)
    import skimage.data

    assert upright.shape == (300, 451, 3)
    assert np.abs(upright - skimage.data.chelsea()).mean() < 6  # only JPEG loss
    horse = np.asarray(Image.open(manifest.path_of("photos/horse_silhouette.png")).convert("L"))
    assert horse[0, 0] == 255 and 0.1 < (horse == 0).mean() < 0.6  # black horse on white


def test_voice_memos_are_speech_of_the_stated_length(manifest):
    for item in manifest.by_kind("voice memo"):
        samples, rate = soundfile.read(str(manifest.path_of(item)), dtype="float32")
        assert rate == 16_000 and samples.ndim == 1
        assert len(samples) / rate == pytest.approx(item.duration, abs=0.05)
        words = len(item.transcript.split())
        assert 0.15 * words < item.duration < 0.6 * words
        assert _rms(samples) > 0.03
    assert soundfile.info(str(manifest.path_of("voice_memos/cat_and_plant.ogg"))).subtype == "OPUS"


def test_video_has_both_streams_the_scenes_and_speech_at_the_stated_times(manifest):
    (item,) = manifest.by_kind("video")
    assert [s.start for s in item.scenes] == [0.0, 4.5] and item.scenes[-1].end == item.duration
    for sentence, scene in zip(item.speech, item.scenes):
        assert scene.start <= sentence.start < sentence.end <= scene.end

    with av.open(str(manifest.path_of(item))) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name in ("h264", "mpeg4")
        assert (video.codec_context.width, video.codec_context.height) == (320, 240)
        assert audio.codec_context.name == "aac"
        assert container.duration / 1e6 == pytest.approx(item.duration, abs=0.15)
        frames = [(float(f.time), f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
        container.seek(0)
        sound = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
        rate = audio.codec_context.sample_rate
    assert 10 <= len(frames) / item.duration <= 25
    assert frames[-1][0] == pytest.approx(item.duration, abs=0.2)
    # the cat (warm, orange) fills the first scene, the dusk rocket (blue) the second
    for t, pixels in frames[::5]:
        red, blue = pixels[..., 0].mean(), pixels[..., 2].mean()
        assert (red > blue) if t < item.scenes[1].start else (blue > red), t

    def loudness(start: float, end: float) -> float:
        return _rms(sound[int(start * rate):int(end * rate)])

    spoken = [loudness(sentence.start + 0.1, sentence.end - 0.1) for sentence in item.speech]
    assert min(spoken) > 0.03
    first, second = item.speech  # the pauses are quiet next to the speech (AAC leaves a little noise)
    assert loudness(first.end + 0.2, second.start - 0.2) < 0.1 * min(spoken)
    assert loudness(0, first.start - 0.2) < 0.1 * min(spoken)


def test_notes_are_the_written_texts(manifest):
    notes = manifest.by_kind("note")
    for item in notes:
        assert manifest.path_of(item).read_text(encoding="utf-8") == NOTES[item.path][1]
    assert "flour" in manifest.path_of("notes/pancake_recipe.md").read_text()
    assert "Lisbon" in manifest.path_of("notes/lisbon_trip.txt").read_text()


def test_project_readers_accept_every_sample(manifest):
    readers = pytest.importorskip("sensorium.readers")
    for item in manifest.files:
        payload = readers.read(manifest.path_of(item))
        assert payload.modality == item.modality, item.path
    cat = readers.read(manifest.path_of("photos/cat.jpg"))
    assert cat.pixels.shape == (300, 451, 3)  # EXIF rotation applied


def test_rebuild_is_idempotent_and_repairs_only_what_changed(manifest):
    root = manifest.root
    past = int(time.time()) - 3600  # whole seconds: st_mtime compares exactly
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (past, past))
    before = _digests(root)
    again = build_sample_folder(root)
    assert again.written == [] and again.files == manifest.files
    assert all(p.stat().st_mtime == past for p in root.rglob("*") if p.is_file())

    (root / "notes/cat_care.md").write_text("scribbled over", encoding="utf-8")
    (root / "photos/coffee.png").unlink()
    repaired = build_sample_folder(root)
    assert sorted(repaired.written) == ["notes/cat_care.md", "photos/coffee.png"]
    assert _digests(root) == before
    assert (root / "photos/astronaut.jpg").stat().st_mtime == past


def _decoded(path: Path) -> np.ndarray:
    """What a person sees or hears in a sample file, as numbers (encoded bytes may differ by machine)."""
    suffix = path.suffix
    if suffix in (".jpg", ".png", ".webp"):
        return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    if suffix in (".wav", ".flac", ".ogg"):
        return soundfile.read(str(path), dtype="float32")[0]
    with av.open(str(path)) as container:  # every 10th frame, small
        return np.stack([f.to_ndarray(format="rgb24")[::8, ::8].astype(np.float32)
                         for n, f in enumerate(container.decode(video=0)) if n % 10 == 0])


def test_a_second_build_elsewhere_describes_and_shows_the_same_samples(manifest, tmp_path):
    """Same manifest, same notes, and the media decode to the same pictures and sound within codec
    tolerance; encoded bytes are not compared (a video encoder's threads may order its output
    differently from one run to the next, which no user sees)."""
    other = build_sample_folder(tmp_path)
    assert other.files == manifest.files
    for item in manifest.files:
        mine, theirs = manifest.path_of(item), other.path_of(item)
        if item.modality == "text":
            assert mine.read_bytes() == theirs.read_bytes()
            continue
        a, b = _decoded(mine), _decoded(theirs)
        assert a.shape == b.shape, item.path
        scale = 255.0 if item.modality in ("image", "video") else 1.0
        assert np.abs(a - b).mean() / scale < 0.01, item.path
