"""Read a sound file (wav, flac, ogg, opus, mp3, m4a, aiff) to 16 kHz mono float32, or say why not.

libsndfile (soundfile) decodes what it can, as it is fast and exact; PyAV's bundled FFmpeg takes
the rest (AAC in .m4a, odd containers), so no system ffmpeg is needed. Resampling uses soxr at high
quality. Silence and empty files are refused: they would give meaningless embeddings.

Decoding is incremental (`stream_audio`): blocks are mixed to mono and resampled as they come, and
what is decoded is counted against the budgets of `limits`, so neither a header's lie nor a long
file makes the reader allocate more than one block beyond what it returns.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import ReadError
from .checks import check_file, describe, reraise_machine
from .limits import (MAX_RECORDING_SECONDS, MAX_WHOLE_AUDIO_SECONDS, check_channels, check_duration,
                     check_sample_rate, clock)
from .payloads import SAMPLE_RATE, AudioPayload
from .sniff import sniff

SILENCE_PEAK = 1e-4
BLOCK_SAMPLES = 1 << 20  # libsndfile reads this many samples (frames x channels, 4 MB) at a time, whatever the rate
_LOSSLESS_CODECS = frozenset({"flac", "alac", "wavpack", "ape", "tta"})
_COMPLETE = 0.99  # a file that decodes to less than this share of its declared length is truncated


def read_audio(path: str | Path, *, max_seconds: float | None = None) -> AudioPayload:
    """Decode a sound file whole to mono float32 in [-1, 1] at 16 kHz.

    max_seconds: decode at most this much from the start. Without it, a file longer than
    `MAX_WHOLE_AUDIO_SECONDS` is a ReadError naming the limit: a recording that long is indexed
    window by window (`readers.windows`), never held whole.
    """
    path = Path(path)
    blocks = list(stream_audio(path, max_seconds=max_seconds, limit_seconds=MAX_WHOLE_AUDIO_SECONDS))
    samples = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    del blocks
    return to_payload(path, samples)


def stream_audio(path: str | Path, *, max_seconds: float | None = None,
                 limit_seconds: float = MAX_RECORDING_SECONDS) -> "AudioStream":
    """16 kHz mono float32 blocks of a sound file (or of a video's first sound track), in order.

    The file is opened and its header checked now (ReadError for a missing file, an impossible
    sample rate or channel count, a declared length over `limit_seconds`); blocks are decoded as
    they are asked for, and decoding past `limit_seconds` is a ReadError too. `max_seconds` stops
    early without error. Blocks are clipped to [-1, 1] with NaNs zeroed.
    """
    _check_max_seconds(max_seconds)
    path = Path(path)
    check_file(path)
    looks_like = sniff(path)
    if looks_like in ("text", "image"):
        raise ReadError(path, f"not audio (content looks like {looks_like})")
    source = open_source(path)
    wanted = math.inf if max_seconds is None else max_seconds
    try:
        check_duration(path, min(source.declared_seconds or 0.0, wanted) or None, limit_seconds)
    except ReadError:
        source.close()
        raise
    return AudioStream(_decoded(source, wanted, limit_seconds), source.declared_seconds)


class AudioStream:
    """The blocks of an opened sound file (iterate once), with the length its header declares
    (None when it states none; lossy formats' is an estimate), for progress."""

    def __init__(self, blocks: Iterator[np.ndarray], declared_seconds: float | None):
        self._blocks = blocks
        self.declared_seconds = declared_seconds

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._blocks

    def close(self) -> None:
        self._blocks.close()


def to_payload(path: Path, samples: np.ndarray) -> AudioPayload:
    """Clean 16 kHz blocks joined -> a validated AudioPayload (ReadError when empty or silent)."""
    if samples.size == 0:
        raise ReadError(path, "no audio samples")
    if float(np.max(np.abs(samples))) < SILENCE_PEAK:
        raise ReadError(path, "audio is silent")
    return AudioPayload(path=path, samples=samples, sample_rate=SAMPLE_RATE)


def _clean(samples: np.ndarray) -> np.ndarray:
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if not np.isfinite(samples).all():
        samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(samples, -1.0, 1.0, out=samples if samples.flags.writeable else None)


# --- sources: an opened file that yields mono blocks at its own rate -------------------------------
class SoundfileSource:
    """libsndfile: exact, fast, and its header gives the exact length."""

    def __init__(self, path: Path):
        import soundfile as sf

        self.path = path
        self.handle = sf.SoundFile(str(path))
        self.rate = int(self.handle.samplerate)
        self.channels = int(self.handle.channels)
        check_sample_rate(path, self.rate)
        check_channels(path, self.channels)
        self.declared_frames = int(self.handle.frames)
        self.declared_seconds = self.declared_frames / self.rate if self.declared_frames > 0 else None

    def blocks(self, max_frames: float) -> Iterator[np.ndarray]:
        block = max(1, BLOCK_SAMPLES // self.channels)  # 10 s at 768 kHz x 64 channels would be 2 GB
        got = 0
        with self.handle:
            while got < max_frames:
                want = int(min(block, max_frames - got))
                data = self.handle.read(frames=want, dtype="float32", always_2d=True)
                if not len(data):
                    break
                got += len(data)
                yield data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
                if len(data) < want:
                    break
        expected = min(max_frames, self.declared_frames)
        if expected > 0 and got < _COMPLETE * expected:
            raise ReadError(self.path, f"truncated audio: decoded {got / self.rate:.2f} s of the "
                                       f"{self.declared_frames / self.rate:.2f} s declared")

    def close(self) -> None:
        self.handle.close()


class AvSource:
    """FFmpeg through PyAV: any container with a sound track (m4a, mp4, webm, odd wavs)."""

    def __init__(self, path: Path):
        import av

        self.path = path
        self.container = av.open(str(path), mode="r")
        try:
            if not self.container.streams.audio:
                raise ReadError(path, "no audio stream")
            self.stream = self.container.streams.audio[0]
            self.stream.thread_type = "AUTO"
            context = self.stream.codec_context
            self.rate = int(context.sample_rate or self.stream.rate or 0)
            check_sample_rate(path, self.rate)
            check_channels(path, int(getattr(context, "channels", 0) or context.layout.nb_channels or 1))
            self.exact_seconds = _exact_duration(self.container, self.stream)
            self.declared_seconds = self.exact_seconds or _any_duration(self.container, self.stream)
        except BaseException:
            self.container.close()
            raise

    def blocks(self, max_frames: float) -> Iterator[np.ndarray]:
        got = 0
        broke_off: Exception | None = None
        with self.container:
            for block, error in av_mono_blocks(self.container, self.stream, self.rate):
                if error is not None:
                    broke_off = error
                    break
                block = block[: int(min(len(block), max_frames - got))]
                got += len(block)
                yield block
                if got >= max_frames:
                    return
        seconds = got / self.rate
        if self.exact_seconds and max_frames == math.inf and got < _COMPLETE * self.exact_seconds * self.rate:
            raise ReadError(self.path, f"truncated audio: decoded {seconds:.2f} s of the {self.exact_seconds:.2f} s declared")
        if broke_off is not None:
            raise ReadError(self.path, f"truncated or corrupt audio: decoding broke off after {seconds:.2f} s "
                                       f"({describe(broke_off)})")

    def close(self) -> None:
        self.container.close()


def open_source(path: Path) -> SoundfileSource | AvSource:
    """libsndfile when it can open the file, else FFmpeg; ReadError naming both when neither can."""
    try:
        return SoundfileSource(path)
    except ReadError:
        raise
    except Exception as first:
        reraise_machine(first)
        try:
            return AvSource(path)
        except ReadError:
            raise
        except Exception as second:
            reraise_machine(second)
            raise ReadError(path, f"not decodable audio ({describe(second)}; libsndfile: {describe(first)})") from second


def av_mono_blocks(container, stream, rate: int) -> Iterator[tuple[np.ndarray, Exception | None]]:
    """(mono float32 block at `rate`, None) per decoded frame; a decoder error after some audio
    ends the stream with (empty, error) instead of losing what came before.

    Why: a cut-off file's last frame fails to decode, and whether FFmpeg says so depends on its
    threading (one core: an error; several: silence). The caller compares what it got with the
    declared length and calls it truncated either way.
    """
    import av

    # Planar float at the stream's own rate and layout (fixed by the first frame, so a mid-stream
    # change cannot break the concatenation); channels averaged here, resampling left to soxr.
    resampler = av.AudioResampler(format="fltp", rate=rate)
    frames = container.decode(stream)
    decoded_any = False
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            for out in resampler.resample(None):
                yield out.to_ndarray().mean(axis=0, dtype=np.float32), None
            return
        except av.FFmpegError as error:
            if not decoded_any:
                raise
            yield np.zeros(0, np.float32), error
            return
        for out in resampler.resample(frame):
            decoded_any = True
            yield out.to_ndarray().mean(axis=0, dtype=np.float32), None


def _decoded(source, wanted_seconds: float, limit_seconds: float) -> Iterator[np.ndarray]:
    """The source's 16 kHz blocks, any decoder failure as a ReadError. When libsndfile opens a file
    but fails on its first block, FFmpeg gets a try (as when libsndfile cannot open it at all)."""
    path = source.path
    started = False
    try:
        for block in _resampled(source, wanted_seconds, limit_seconds):
            started = True
            yield block
        return
    except ReadError:
        raise
    except Exception as error:
        reraise_machine(error)
        if started or not isinstance(source, SoundfileSource):
            raise ReadError(path, f"decoding audio failed ({describe(error)})") from error
        first = error
    try:
        fallback = AvSource(path)
    except ReadError:
        raise
    except Exception as second:
        reraise_machine(second)
        raise ReadError(path, f"not decodable audio ({describe(second)}; libsndfile: {describe(first)})") from second
    try:
        yield from _resampled(fallback, wanted_seconds, limit_seconds)
    except ReadError:
        raise
    except Exception as error:
        reraise_machine(error)
        raise ReadError(path, f"decoding audio failed ({describe(error)})") from error


def _resampled(source, wanted_seconds: float, limit_seconds: float) -> Iterator[np.ndarray]:
    """The source's blocks at 16 kHz, counted against the limit as they are decoded."""
    import soxr

    max_frames = wanted_seconds * source.rate
    resampler = (None if source.rate == SAMPLE_RATE
                 else soxr.ResampleStream(source.rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ"))
    decoded = 0
    try:
        for block in source.blocks(max_frames):
            decoded += len(block)
            if decoded > limit_seconds * source.rate:
                raise ReadError(source.path, f"sound lasts more than {clock(limit_seconds)}, the limit")
            out = block if resampler is None else resampler.resample_chunk(block)
            if len(out):
                yield _clean(out)
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if len(tail):
                yield _clean(tail)
    finally:
        source.close()


def _exact_duration(container, stream) -> float | None:
    """Declared seconds, only for lossless codecs whose headers state it exactly (a lossy file's
    duration is often estimated from its bit rate, and a shortfall there proves nothing)."""
    name = stream.codec_context.name
    if not (name in _LOSSLESS_CODECS or name.startswith("pcm_")):
        return None
    return _any_duration(container, stream)


def _any_duration(container, stream) -> float | None:
    import av

    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / av.time_base
    else:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def _check_max_seconds(max_seconds: float | None) -> None:
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be positive or None, got {max_seconds}")
