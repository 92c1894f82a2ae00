"""Speech synthesis through the packaged libespeak-ng: real audio, real timing, real errors."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile

from sensorium.errors import ModelError
from sensorium.experts import tts
from sensorium.readers.payloads import AudioPayload

SENTENCE = "Remember to buy milk, eggs and coffee beans on the way home."


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def _dominant_pitch(samples: np.ndarray, rate: int) -> float:
    """Median autocorrelation pitch (Hz) over voiced 40 ms frames, searched in 60..400 Hz."""
    frame, hop = int(0.04 * rate), int(0.02 * rate)
    loudness = [_rms(samples[i:i + frame]) for i in range(0, len(samples) - frame, hop)]
    threshold = 0.3 * max(loudness)
    pitches = []
    for k, start in enumerate(range(0, len(samples) - frame, hop)):
        if loudness[k] < threshold:
            continue
        chunk = samples[start:start + frame] - samples[start:start + frame].mean()
        corr = np.correlate(chunk, chunk, mode="full")[frame - 1:]
        lo, hi = rate // 400, rate // 60
        pitches.append(rate / (lo + int(np.argmax(corr[lo:hi]))))
    return float(np.median(pitches))


@pytest.fixture(scope="module")
def memo() -> AudioPayload:
    return tts.synthesize(SENTENCE)


def test_sentence_is_16k_mono_float_of_plausible_length(memo):
    assert memo.sample_rate == 16_000
    assert memo.samples.dtype == np.float32 and memo.samples.ndim == 1
    assert memo.path == Path("<tts>")
    words = len(SENTENCE.split())
    expected = words / 160 * 60  # 12 words at 160 wpm ~ 4.5 s
    assert 0.5 * expected < memo.duration < 1.6 * expected
    assert np.abs(memo.samples).max() <= 1.0


def test_speech_is_loud_with_pauses(memo):
    assert _rms(memo.samples) > 0.03
    frames = memo.samples[: len(memo.samples) // 320 * 320].reshape(-1, 320)  # 20 ms frames
    energy = np.sqrt((frames ** 2).mean(axis=1))
    assert (energy > 0.05).mean() > 0.4  # mostly voiced
    assert (energy < 0.01).sum() >= 2  # but with gaps between words / at the ends


def test_rate_changes_duration():
    text = "The team meeting moved to Thursday at ten."
    slow = tts.synthesize(text, rate_wpm=100).duration
    normal = tts.synthesize(text, rate_wpm=160).duration
    fast = tts.synthesize(text, rate_wpm=300).duration
    assert slow > normal * 1.25 > fast * 1.25


def test_pitch_parameter_raises_the_voice():
    text = "My cat knocked the plant off the window sill again."
    low = tts.synthesize(text, pitch=10)
    high = tts.synthesize(text, pitch=90)
    assert _dominant_pitch(high.samples, 16_000) > 1.2 * _dominant_pitch(low.samples, 16_000)


def test_voices_differ_and_language_codes_resolve():
    names = tts.voices()
    assert {"en-us", "en-gb", "fr-fr", "de"} <= set(names)
    text = "Good morning, how are you today?"
    american = tts.synthesize(text, voice="en-us").samples
    british = tts.synthesize(text, voice="en-gb").samples
    female = tts.synthesize(text, voice="en-us+f3").samples
    for a, b in [(american, british), (american, female)]:
        n = min(len(a), len(b))
        assert len(a) != len(b) or not np.allclose(a[:n], b[:n], atol=1e-3)
    assert _dominant_pitch(female, 16_000) > _dominant_pitch(american, 16_000)


def test_concurrent_requests_do_not_mix_voices_or_settings():
    # libespeak-ng is one global synthesiser; the module lock must keep each request whole.
    # (Its pitch "flutter" phase carries over between calls, so repeats match closely, not bitwise.)
    text = "The rocket launch was loud."
    requests = [("en-us", 100), ("en-gb", 300)] * 3
    serial = {req: tts.synthesize(text, voice=req[0], rate_wpm=req[1]).duration for req in requests[:2]}
    with ThreadPoolExecutor(max_workers=4) as pool:
        durations = list(pool.map(lambda r: tts.synthesize(text, voice=r[0], rate_wpm=r[1]).duration, requests))
    for request, duration in zip(requests, durations):
        assert duration == pytest.approx(serial[request], rel=0.03)


def test_save_wav_round_trips(memo, tmp_path):
    path = tts.save_wav(memo, tmp_path / "memo.wav")
    data, rate = soundfile.read(str(path), dtype="float32")
    info = soundfile.info(str(path))
    assert rate == 16_000 and info.subtype == "PCM_16" and info.channels == 1
    assert len(data) == len(memo.samples)
    np.testing.assert_allclose(data, memo.samples, atol=1 / 16_000 + 1e-4)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"text": "   "}, "empty"),
        ({"text": "hello", "voice": "klingon-xx"}, "unknown voice"),
        ({"text": "hello", "rate_wpm": 5}, "rate_wpm"),
        ({"text": "hello", "pitch": 150}, "pitch"),
    ],
)
def test_bad_requests_raise_model_error(kwargs, reason):
    with pytest.raises(ModelError, match=reason):
        tts.synthesize(**kwargs)


def test_info_describes_the_packaged_library():
    info = tts.info()
    assert info.name == "espeak-ng" and info.package == "espeakng-loader"
    assert info.licence == "GPL-3.0-or-later"
    assert Path(info.file).is_file() and info.size_bytes == Path(info.file).stat().st_size
    assert len(info.sha256) == 64
    assert "libespeak-ng 1." in info.version
