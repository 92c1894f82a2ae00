"""Readers decode every valid file to the payload invariants and refuse every malformed one with
a ReadError that names the file and the reason, and nothing else ever escapes."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from helpers.corpora import CLIP_SIZE, TONE_HZ, moving_square, photo
from conftest import SHARED_DATA
from sensorium import modality
from sensorium.errors import ReadError, UnsupportedFileError
from sensorium.readers import read, read_audio, read_image, read_text, read_video, sniff
from sensorium.readers import video as video_module
from sensorium.readers.payloads import (SAMPLE_RATE, AudioPayload, ImagePayload, TextPayload,
                                        VideoPayload)

PROSE_START = "Café au lait, naïve façade, Øresund, señor, déjà vu."


def dominant_hz(samples: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16))))


# ------------------------------------------------------------------------------------ good files

def test_every_good_file_reads_to_its_payload_invariants(good_corpus):
    folder, names = good_corpus
    for name in names:
        payload = read(folder / name)
        assert payload.modality == modality.modality_of(name), name
        assert payload.path == folder / name
        if isinstance(payload, ImagePayload):
            assert payload.pixels.dtype == np.uint8 and payload.pixels.ndim == 3 and payload.pixels.shape[2] == 3, name
            assert payload.pixels.flags.c_contiguous, name
        elif isinstance(payload, AudioPayload):
            assert payload.samples.dtype == np.float32 and payload.samples.ndim == 1, name
            assert payload.sample_rate == SAMPLE_RATE
            assert np.abs(payload.samples).max() <= 1.0
            assert abs(payload.duration - 1.0) < 0.05, (name, payload.duration)
            assert abs(dominant_hz(payload.samples) - TONE_HZ) < 3, name
        elif isinstance(payload, TextPayload):
            assert payload.text.strip() and "\r" not in payload.text, name
        else:
            assert isinstance(payload, VideoPayload)
            # 3 s at 1 frame/s; AVI's dts-derived times run to exactly 3.0 s, adding a 4th sample.
            assert len(payload.frames) in (3, 4) and abs(payload.duration - 3.0) < 0.1, name


def test_image_sizes_and_content(good_corpus):
    folder, _ = good_corpus
    sizes = {"astronaut.jpg": (512, 512), "coffee.png": (600, 400), "chelsea.webp": (451, 300),
             "chelsea.bmp": (451, 300), "chelsea.gif": (451, 300), "coffee.tiff": (600, 400),
             "astronaut_cmyk.jpg": (512, 512), "jpeg_named.png": (600, 400), "gray16.png": (300, 200)}
    for name, size in sizes.items():
        assert read_image(folder / name).size == size, name
    assert read_image(folder / "coffee.png").pixels.tobytes() == photo("coffee").tobytes()  # lossless
    assert mean_abs_diff(read_image(folder / "astronaut_cmyk.jpg").pixels, photo("astronaut")) < 8
    gif = read_image(folder / "chelsea.gif").pixels  # the first frame, not the flipped second one
    assert mean_abs_diff(gif, photo("chelsea")) < mean_abs_diff(gif, photo("chelsea")[::-1]) / 3


def test_exif_orientation_is_applied(good_corpus):
    folder, _ = good_corpus
    upright = read_image(folder / "chelsea_exif6.jpg")
    assert upright.size == (300, 451)  # stored 451x300, Orientation=6
    clockwise = np.rot90(photo("chelsea"), k=-1)
    assert mean_abs_diff(upright.pixels, clockwise) < 6
    assert mean_abs_diff(upright.pixels, np.rot90(photo("chelsea"), k=1)) > 30


def test_transparency_goes_white_and_16_bit_scales_down(good_corpus):
    folder, _ = good_corpus
    rgba = read_image(folder / "coffee_rgba.png").pixels
    assert (rgba[:100, :100] == 255).all()
    assert rgba[200:, 200:].tobytes() == photo("coffee")[200:, 200:].tobytes()
    gray = read_image(folder / "gray16.png").pixels
    assert gray[0, 0, 0] == 0 and gray[-1, -1, 0] == 255
    assert (gray[..., 0] == gray[..., 2]).all() and (np.diff(gray[0, :, 0].astype(int)) >= 0).all()


def test_max_side_downscales_keeping_aspect(good_corpus):
    folder, _ = good_corpus
    assert read_image(folder / "astronaut.jpg", max_side=128).size == (128, 128)  # draft + thumbnail
    small = read_image(folder / "coffee.png", max_side=150)
    assert small.size[0] == 150 and abs(small.size[1] - 100) <= 1
    assert read_image(folder / "chelsea_exif6.jpg", max_side=90).size[1] == 90
    assert read_image(folder / "coffee.png", max_side=5000).size == (600, 400)  # never enlarges


def test_pixel_limit_is_configurable(good_corpus):
    folder, _ = good_corpus
    with pytest.raises(ReadError, match="decompression bomb: 600x400 pixels exceeds limit of 1000 pixels"):
        read_image(folder / "coffee.png", max_pixels=1000)


def test_text_encodings_are_detected(good_corpus):
    folder, _ = good_corpus
    latin1 = read_text(folder / "latin1.txt")
    assert latin1.text.startswith(PROSE_START) and latin1.encoding in ("cp1252", "latin_1", "iso8859_1")
    utf16 = read_text(folder / "utf16.md")
    assert utf16.text.startswith("# Título\n\n" + PROSE_START) and utf16.encoding == "utf-16"
    bom = read_text(folder / "utf8_bom.txt")
    assert bom.text.startswith(PROSE_START) and bom.encoding == "utf-8-sig"  # BOM stripped
    assert read_text(folder / "cp1252.rst").text.startswith("\u201cQuoted\u201d words \u2014 and \u20ac5")


def test_text_size_cap(good_corpus):
    folder, _ = good_corpus
    with pytest.raises(ReadError, match="too large"):
        read_text(folder / "latin1.txt", max_bytes=100)


def test_audio_max_seconds_caps_decoding(good_corpus):
    folder, _ = good_corpus
    for name in ("tone.flac", "tone.m4a"):  # libsndfile and PyAV paths
        assert abs(read_audio(folder / name, max_seconds=0.5).duration - 0.5) < 0.01, name


def test_stereo_is_mixed_to_mono(good_corpus):
    folder, _ = good_corpus
    stereo = read_audio(folder / "tone_stereo.wav")
    assert abs(np.abs(stereo.samples).max() - 0.4) < 0.01  # mean of channels at 0.3 and 0.5 peak


def test_video_frames_sampled_at_rate_with_audio(good_corpus):
    folder, _ = good_corpus
    clip = read_video(folder / "clip.mp4")
    assert [f.time for f in clip.frames] == pytest.approx([0.0, 1.0, 2.0], abs=0.01)
    assert clip.frame_rate == 1.0 and abs(clip.duration - 3.0) < 0.05
    width, height = CLIP_SIZE
    for frame in clip.frames:
        assert frame.pixels.shape == (height, width, 3) and frame.pixels.dtype == np.uint8
    # Frame at 1 s is the 25th picture encoded: RGB order and content survive the codec.
    assert mean_abs_diff(clip.frames[1].pixels, moving_square(25)) < 6
    assert mean_abs_diff(clip.frames[1].pixels, moving_square(0)) > mean_abs_diff(clip.frames[1].pixels, moving_square(25)) + 3
    assert clip.audio is not None and clip.audio.path == clip.path
    assert abs(clip.audio.duration - 3.0) < 0.1 and abs(dominant_hz(clip.audio.samples) - TONE_HZ) < 3

    fast = read_video(folder / "clip.mp4", frame_rate=5, max_side=100)
    times = [f.time for f in fast.frames]
    assert len(times) == 15 and np.allclose(np.diff(times), 0.2, atol=0.021)
    assert all(max(f.pixels.shape[:2]) == 100 for f in fast.frames)


def test_video_formats_and_missing_or_silent_audio(good_corpus):
    folder, _ = good_corpus
    for name in ("clip.webm", "clip.avi"):
        clip = read_video(folder / name)
        assert len(clip.frames) >= 3 and clip.audio is not None, name
        assert abs(dominant_hz(clip.audio.samples) - TONE_HZ) < 3, name
    assert read_video(folder / "clip_mute.mkv").audio is None
    assert read_video(folder / "clip_silent.mov").audio is None
    assert read_video(folder / "clip.mp4", audio=False).audio is None


def test_max_frames_lowers_rate_to_span_whole_video(good_corpus):
    folder, _ = good_corpus
    clip = read_video(folder / "clip.mp4", frame_rate=25, max_frames=4)
    times = [f.time for f in clip.frames]
    assert len(times) == 4 and times[0] == 0.0 and times[-1] > 2.9
    assert clip.frame_rate < 25 and np.allclose(np.diff(times), times[-1] / 3, atol=0.05)


def test_seeking_path_matches_sequential_decoding(good_corpus, monkeypatch):
    folder, _ = good_corpus
    sequential = read_video(folder / "clip.mp4", audio=False)
    monkeypatch.setattr(video_module, "SEEK_MIN_INTERVAL", 0.5)
    seeking = read_video(folder / "clip.mp4", audio=False)
    assert [f.time for f in seeking.frames] == [f.time for f in sequential.frames]
    for a, b in zip(seeking.frames, sequential.frames):
        assert mean_abs_diff(a.pixels, b.pixels) < 1


def test_sniff_recognises_content(good_corpus, bad_corpus):
    folder, names = good_corpus
    for name in names:
        assert sniff(folder / name) == modality.modality_of(name) or name == "tone.m4a" and sniff(folder / name) == "audio", name
    bad, _ = bad_corpus
    assert sniff(bad / "text_named.jpg") == "text"
    assert sniff(bad / "jpeg_named.txt") == "image"
    assert sniff(bad / "empty.png") is None
    assert sniff(bad / "audio_only.mp4") == "video"  # an mp4 container; the reader finds no picture


# ------------------------------------------------------------------------------------ bad files

def test_every_bad_file_raises_read_error_naming_file_and_reason(bad_corpus):
    folder, expected = bad_corpus
    for name, reason in expected.items():
        path = folder / name
        with pytest.raises(ReadError) as caught:
            read(path)
        assert caught.type is ReadError, name
        assert caught.value.path == str(path) and str(path) in str(caught.value), name
        assert reason in caught.value.reason, (name, caught.value.reason)


def test_truncated_flac_is_called_truncated_on_one_core(bad_corpus):
    """On one core FFmpeg's decoder reports the cut-off last frame as an error (with threads it
    goes quiet); both must read as truncation, not as an undecodable file."""
    folder, _ = bad_corpus
    script = ("import sys; from sensorium.readers import read; from sensorium.errors import ReadError\n"
              "try:\n    read(sys.argv[1])\nexcept ReadError as error:\n    print(error.reason)\n")
    first_cpu = min(os.sched_getaffinity(0))
    done = subprocess.run([sys.executable, "-c", script, str(folder / "truncated.flac")], capture_output=True,
                          text=True, timeout=120, preexec_fn=lambda: os.sched_setaffinity(0, {first_cpu}))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("truncated audio"), done.stdout


def test_missing_file_directory_and_unknown_extension(tmp_path):
    with pytest.raises(ReadError, match="no such file"):
        read(tmp_path / "nowhere.png")
    (tmp_path / "folder.jpg").mkdir()
    with pytest.raises(ReadError, match="not a regular file"):
        read(tmp_path / "folder.jpg")
    (tmp_path / "table.xlsx").write_bytes(b"PK\x03\x04")
    with pytest.raises(UnsupportedFileError, match="unsupported file type .xlsx"):
        read(tmp_path / "table.xlsx")


def test_damaged_copies_of_good_files_only_ever_raise_read_error(good_corpus, tmp_path):
    """Cut and scramble every valid file: a reader may still decode it, or raise ReadError; nothing else."""
    folder, names = good_corpus
    rng = np.random.default_rng(1)
    for name in names:
        data = (folder / name).read_bytes()
        scrambled = bytearray(data)
        spots = rng.integers(min(64, len(data) - 1), len(data), size=max(1, len(data) // 200))
        for spot, value in zip(spots, rng.integers(0, 256, size=len(spots))):
            scrambled[spot] = int(value)
        for label, damaged in (("cut10", data[: len(data) // 10]), ("cut70", data[: len(data) * 7 // 10]),
                               ("scrambled", bytes(scrambled))):
            path = tmp_path / f"{label}_{name}"
            path.write_bytes(damaged)
            try:
                read(path)
            except ReadError as exc:
                assert str(path) in str(exc) and exc.reason


# ------------------------------------------------------------------------------------ real data

def test_real_fsdd_speech_is_resampled_to_16k_keeping_duration():
    recordings = sorted((SHARED_DATA / "fsdd").glob("*.wav"))[:5] if (SHARED_DATA / "fsdd").is_dir() else []
    if not recordings:
        pytest.skip(f"real data absent: {SHARED_DATA / 'fsdd'}")
    for path in recordings:
        info = sf.info(str(path))
        assert info.samplerate == 8000
        speech = read_audio(path)
        assert speech.sample_rate == SAMPLE_RATE and speech.samples.dtype == np.float32
        assert abs(speech.duration - info.duration) < 1e-3, path.name
        assert np.abs(speech.samples).max() > 0.01


def test_real_coco_photos_read_at_their_size():
    photos = sorted((SHARED_DATA / "coco_mini" / "images").glob("*.jpg"))[:5] if SHARED_DATA.is_dir() else []
    if not photos:
        pytest.skip(f"real data absent: {SHARED_DATA / 'coco_mini' / 'images'}")
    for path in photos:
        with Image.open(path) as img:
            size = img.size
        image = read(path)
        assert isinstance(image, ImagePayload) and image.size == size, path.name
        thumb = read_image(path, max_side=224)
        assert max(thumb.size) == 224, path.name
