"""Budgets: a file over a reader's limit is a ReadError naming the limit, never an allocation
attempt; one file costs at most `READ_MEMORY_BOUND` whatever its header claims; and a recording
read in windows comes back whole, in the file's clock, with its cuts in the pauses.

The hostile files are those an attacker posted to the service: a 10 kB WAV that declares a 1 Hz
sample rate (three "hours" to resample to 16 kHz), and an honest 8-bit 8 kHz WAV of almost an hour.
"""
from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sensorium.errors import ReadError
from sensorium.readers import AudioWindows, read, read_audio, read_for_index
from sensorium.readers.limits import MAX_WHOLE_AUDIO_SECONDS, READ_MEMORY_BOUND
from sensorium.readers.payloads import SAMPLE_RATE
from sensorium.readers.windows import QUIET_FRAME_SECONDS


def wav_header(rate: int, channels: int, bits: int, data_bytes: int) -> bytes:
    """A canonical PCM WAV header; its fields are whatever the caller claims."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", data_bytes))


def noise_wav(path: Path, rate: int, seconds: float, bits: int = 8, channels: int = 1, seed: int = 0) -> Path:
    """Noise as unsigned 8-bit (or 16-bit) PCM, written in chunks so the test itself stays small."""
    frames = int(rate * seconds)
    rng = np.random.default_rng(seed)
    with open(path, "wb") as handle:
        handle.write(wav_header(rate, channels, bits, frames * channels * bits // 8))
        step = 1 << 20
        for begin in range(0, frames * channels, step):
            count = min(step, frames * channels - begin)
            if bits == 8:
                handle.write(rng.integers(96, 160, count, dtype=np.uint8).tobytes())
            else:
                handle.write(rng.integers(-4000, 4000, count, dtype=np.int16).tobytes())
    return path


@pytest.fixture()
def one_hertz(tmp_path) -> Path:
    """The 10,044-byte WAV of the report: 10,000 8-bit samples 'at 1 Hz'."""
    path = tmp_path / "one_hertz.wav"
    data = np.random.default_rng(1).integers(0, 255, 10_000, dtype=np.uint8).tobytes()
    path.write_bytes(wav_header(1, 1, 8, len(data)) + data)
    assert path.stat().st_size == 10_044
    return path


def test_a_one_hertz_wav_is_refused_by_its_sample_rate(one_hertz):
    for reader in (read, read_audio, read_for_index, AudioWindows):
        with pytest.raises(ReadError, match=r"sample rate 1 Hz is outside the supported 2,000-768,000 Hz") as caught:
            reader(one_hertz)
        assert caught.value.path == str(one_hertz) or Path(caught.value.path) == one_hertz


def test_impossible_channel_counts_and_rates_are_refused(tmp_path):
    many = tmp_path / "many_channels.wav"
    many.write_bytes(wav_header(8000, 200, 8, 200 * 100) + bytes(200 * 100))
    with pytest.raises(ReadError, match="channels"):
        read_audio(many)
    fast = tmp_path / "fast.wav"
    fast.write_bytes(wav_header(4_000_000, 1, 16, 20_000) + bytes(20_000))
    with pytest.raises(ReadError, match="sample rate"):
        read_audio(fast)


def test_a_recording_longer_than_a_whole_read_names_the_limit_and_how_to_read_it(tmp_path):
    """54 minutes of 8 kHz 8-bit noise (26 MB, under the service's upload cap): refused from the
    header before anything is decoded, but readable from the start with max_seconds, and in windows."""
    path = noise_wav(tmp_path / "long.wav", 8000, 54 * 60)
    assert 25e6 < path.stat().st_size < 26.5e6
    with pytest.raises(ReadError, match=r"sound lasts 54 min 00 s; the limit is 30 min 00 s"):
        read_audio(path)
    head = read_audio(path, max_seconds=5)
    assert abs(head.duration - 5.0) < 0.01
    assert MAX_WHOLE_AUDIO_SECONDS == 30 * 60


def test_a_lying_length_is_caught_while_decoding(tmp_path):
    """A header that declares no length (streamed WAV: data size 0xFFFFFFFF) cannot be refused up
    front; decoding stops at the limit instead of reading on."""
    path = tmp_path / "streamed.wav"
    frames = 8000 * 40
    data = np.random.default_rng(2).integers(96, 160, frames, dtype=np.uint8).tobytes()
    header = bytearray(wav_header(8000, 1, 8, len(data)))
    header[40:44] = struct.pack("<I", 0xFFFFFFFF)
    path.write_bytes(bytes(header) + data)
    from sensorium.readers.audio import stream_audio

    with pytest.raises(ReadError, match="the limit"):
        for _ in stream_audio(path, limit_seconds=20):
            pass


_BOUNDED = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from sensorium.errors import ReadError
    from sensorium.readers import AudioWindows, read, read_for_index
    from sensorium.readers.limits import READ_MEMORY_BOUND

    def vm_bytes():
        for line in open("/proc/self/status"):
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024

    # warm every code path first (libraries mapped, thread pools created), then cap what is left
    from sensorium.readers.audio import stream_audio
    list(stream_audio(sys.argv[3]))
    limit = vm_bytes() + READ_MEMORY_BOUND
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        read(sys.argv[1])
        print("hostile: read")
    except ReadError as error:
        print("hostile: ReadError:", error.reason)
    total = 0.0
    for window in AudioWindows(sys.argv[2]):
        total += window.duration
    print(f"long: {total:.1f}")
""")


def test_one_file_costs_at_most_the_documented_memory(tmp_path, one_hertz):
    """Under an address-space limit of what the process already maps plus READ_MEMORY_BOUND, the
    1 Hz WAV (which before asked soxr for ~640 MB of output) is refused, and a two-hour recording
    reads through in windows (whole, it would need ~460 MB of samples plus copies)."""
    long = noise_wav(tmp_path / "two_hours.wav", 8000, 2 * 3600, seed=3)
    warm = noise_wav(tmp_path / "warm.wav", 8000, 11)
    run = subprocess.run([sys.executable, "-c", _BOUNDED, str(one_hertz), str(long), str(warm)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0].startswith("hostile: ReadError: sample rate 1 Hz"), run.stdout
    assert abs(float(lines[1].split()[1]) - 7200.0) < 1.0, run.stdout
    assert READ_MEMORY_BOUND == 512 * 1024 * 1024  # the figure the docs promise


def _bursts(path: Path, rate: int, bursts: list[tuple[float, float]], seconds: float) -> np.ndarray:
    """A tone in each (start, end) burst, digital silence between: the cuts must fall in the gaps."""
    samples = np.zeros(int(seconds * rate), np.float32)
    t = np.arange(len(samples)) / rate
    for start, end in bursts:
        inside = (t >= start) & (t < end)
        samples[inside] = 0.4 * np.sin(2 * np.pi * 440 * t[inside])
    sf.write(path, samples, rate, subtype="PCM_16")
    return samples


def test_windows_cover_the_recording_in_order_and_cut_in_the_pauses(tmp_path):
    # bursts with gaps near every 20 s boundary; a long silent stretch (60-100 s) yields no window
    bursts = [(0.0, 13.5), (14.5, 33.0), (34.0, 52.0), (53.0, 58.0), (100.0, 112.0), (113.0, 119.0)]
    _bursts(tmp_path / "b.flac", 16000, bursts, 120.0)
    whole = read_audio(tmp_path / "b.flac").samples
    windows = AudioWindows(tmp_path / "b.flac", window_seconds=20.0)
    got = list(windows)
    assert windows.duration == pytest.approx(120.0, abs=0.01)
    offsets = [w.offset for w in got]
    assert offsets == sorted(offsets) and offsets[0] == 0.0
    for window in got:
        begin = int(round(window.offset * SAMPLE_RATE))
        np.testing.assert_allclose(window.samples, whole[begin:begin + len(window.samples)], atol=1e-6)
        assert 10.0 - QUIET_FRAME_SECONDS <= window.duration <= 20.0 + 1e-6 or window is got[-1]
        # every cut lies in the middle of a gap: the window's last and the next one's first 0.3 s are silent
        assert np.abs(window.samples[-4800:]).max() < 1e-3 or window is got[-1]
        assert np.abs(window.samples[:4800]).max() < 1e-3 or window is got[0]
    assert not any(60.0 <= w.offset and w.offset + w.duration <= 100.0 for w in got), offsets
    with pytest.raises(RuntimeError, match="one pass"):
        list(windows)


def test_a_silent_recording_read_in_windows_is_refused_at_the_end(tmp_path):
    sf.write(tmp_path / "quiet.wav", np.zeros(16000 * 50, np.float32), 16000)
    with pytest.raises(ReadError, match="audio is silent"):
        list(AudioWindows(tmp_path / "quiet.wav", window_seconds=20.0))


def test_speech_in_a_later_window_keeps_the_files_clock(tmp_path):
    """A sentence 47 s into a recording read in 20 s windows is transcribed with its time in the
    file (not in its window), words included, and the sound windows tile the recording."""
    from sensorium.experts import Experts
    from sensorium.experts.tts import synthesize
    from sensorium.space.embed import Embedder
    from sensorium.space.segments import SOUND_SOURCES, SPEECH_SOURCES

    sentence = synthesize("The lighthouse keeper painted the door bright green.").samples
    recording = np.random.default_rng(4).normal(0, 0.003, 16000 * 70).astype(np.float32)
    at = 47.0
    recording[int(at * 16000):int(at * 16000) + len(sentence)] += sentence
    sf.write(tmp_path / "talk.wav", recording, 16000, subtype="PCM_16")

    segments = Embedder(Experts()).embed(AudioWindows(tmp_path / "talk.wav", window_seconds=20.0))
    speech = [s for s in segments if s.source in SPEECH_SOURCES and "painted" in s.text.lower()]
    assert speech, [s.text for s in segments]
    assert abs(speech[0].start - at) < 1.5, speech[0]
    assert speech[0].words and all(at - 1.5 < w[0] < at + len(sentence) / 16000 + 1.0 for w in speech[0].words)
    sound = sorted((s.start, s.end) for s in segments if s.source in SOUND_SOURCES)
    assert sound[0][0] == 0.0 and abs(sound[-1][1] - 70.0) < 0.01
    assert all(abs(a[1] - b[0]) < 1e-6 for a, b in zip(sound, sound[1:]))  # no gap, no overlap


def test_indexing_records_an_over_budget_file_and_goes_on(tmp_path, one_hertz):
    from sensorium.collection import Collection

    folder = tmp_path / "pile"
    folder.mkdir()
    one_hertz.rename(folder / "one_hertz.wav")
    (folder / "note.txt").write_text("Remember to water the ferns on Sunday.\n")
    with Collection(tmp_path / "collection") as collection:
        report = collection.index(folder)
    assert report.added == 1
    assert [(Path(path).name, reason) for path, reason in report.failed] == [
        ("one_hertz.wav", "sample rate 1 Hz is outside the supported 2,000-768,000 Hz")]


def test_images_beyond_the_pixel_budget_are_refused_or_decoded_smaller(tmp_path):
    """A PNG declaring 1 x 63,000,000 pixels (Pillow would allocate a row buffer per line) is
    refused by its side; a JPEG over MAX_IMAGE_PIXELS is decoded at reduced scale, within it."""
    from PIL import Image

    from benchmarks.common.hostile import png
    from sensorium.readers import read_image
    from sensorium.readers.limits import MAX_IMAGE_PIXELS

    (tmp_path / "thin.png").write_bytes(png(1, 63_000_000, 8, 3))
    with pytest.raises(ReadError, match="a side over 65,535 pixels"):
        read_image(tmp_path / "thin.png")
    Image.new("RGB", (10_000, 7_000), (90, 140, 200)).save(tmp_path / "big.jpg", quality=60)
    pixels = read_image(tmp_path / "big.jpg").pixels
    assert pixels.shape == (3_500, 5_000, 3) and pixels.shape[0] * pixels.shape[1] <= MAX_IMAGE_PIXELS
    assert abs(int(pixels[100, 100, 2]) - 200) <= 3
    Image.new("RGB", (10_000, 7_000), (90, 140, 200)).save(tmp_path / "big.png")
    with pytest.raises(ReadError, match="decompression bomb: 10000x7000 pixels exceeds limit of 64000000"):
        read_image(tmp_path / "big.png")


def test_a_video_declaring_frames_over_the_pixel_limit_is_refused(tmp_path):
    """FFmpeg decodes every frame at its declared size (a few in flight): 40 Mpx frames are refused."""
    import av

    from sensorium.readers import read_video

    def encode(path: Path, width: int, height: int) -> Path:
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream("mjpeg", rate=2)  # MPEG-4 part 2 stops at 8,191 px a side
            stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
            for index in range(2):
                frame = av.VideoFrame(width, height, "yuvj420p")
                for plane in frame.planes:
                    plane.update(bytes([60 + 40 * index]) * plane.buffer_size)
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        return path

    with pytest.raises(ReadError, match=r"video frames of 9000x4500 pixels exceed the limit of 36,000,000 pixels"):
        read_video(encode(tmp_path / "huge.mkv", 9_000, 4_500))
    small = read_video(encode(tmp_path / "small.mkv", 64, 48))
    assert len(small.frames) >= 1
