"""Audio features for alignment: Whisper base encoder, mean-pooled over the clip's frames, on real FSDD clips."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sensorium.align.audio_features import DIM, WhisperPooler, audio_extractor, audio_features
from sensorium.align.features import FeatureCache

FSDD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fsdd"
CLIPS = ("7_jackson_0.wav", "7_jackson_1.wav", "3_jackson_0.wav")


@pytest.fixture(scope="module")
def pooler():
    if not all((FSDD / name).is_file() for name in CLIPS):
        pytest.skip(f"FSDD clips not found under {FSDD} (../shared/data is absent)")
    return WhisperPooler()  # Whisper base is a required dependency: missing, this is a failure, not a skip


def test_features_are_finite_512d_and_cached(pooler, tmp_path):
    cache = FeatureCache(tmp_path)
    paths = [FSDD / name for name in CLIPS]
    first = audio_features(cache, paths, audio_extractor(pooler))
    assert first.shape == (3, DIM) and first.dtype == np.float32
    assert np.isfinite(first).all()
    again = audio_features(cache, paths, audio_extractor(pooler))
    assert cache.stats.misses == 3 and cache.stats.hits == 3
    np.testing.assert_array_equal(first, again)


def test_two_takes_of_one_digit_are_closer_than_another_digit(pooler):
    features = audio_extractor(pooler).extract([FSDD / name for name in CLIPS])["audio"]
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    same, other = float(unit[0] @ unit[1]), float(unit[0] @ unit[2])
    assert same > other, (same, other)


def test_only_the_frames_of_the_clip_are_pooled(pooler):
    """The vector is the mean of the encoder frames that cover the clip, not of the padded window."""
    from sensorium.experts.sound import MIN_WINDOW_SECONDS, SAMPLES_PER_FRAME
    from sensorium.readers.audio import read_audio

    clip = read_audio(FSDD / CLIPS[0]).samples
    assert len(clip) < MIN_WINDOW_SECONDS * 16000  # a sub-second digit: most of the window is padding
    frames = pooler.whisper.encode([clip], MIN_WINDOW_SECONDS)[0]
    used = int(np.ceil(len(clip) / SAMPLES_PER_FRAME))
    pooled = pooler.pool([clip])[0]
    np.testing.assert_allclose(pooled, frames[:used].mean(axis=0), rtol=1e-4, atol=1e-4)
    assert not np.allclose(pooled, frames.mean(axis=0), atol=1e-2)


def test_long_clips_are_cut_into_whisper_windows():
    from sensorium.experts.sound import _window_seconds, _windows

    pieces = _windows(np.ones(65 * 16000, np.float32))
    assert [len(p) / 16000 for p in pieces] == [30.0, 30.0, 5.0]
    assert [_window_seconds(len(p)) for p in pieces] == [30, 30, 5]
    assert _window_seconds(8000) == 2  # half a second still gets the minimum window
    assert len(_windows(np.zeros(0, np.float32))) == 1  # an empty clip still yields a vector
