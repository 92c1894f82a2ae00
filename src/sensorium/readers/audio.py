"""Read a sound file (wav, flac, ogg, opus, mp3, m4a, aiff) to 16 kHz mono float32, or say why not.

libsndfile (soundfile) decodes what it can, as it is fast and exact; PyAV's bundled FFmpeg takes
the rest (AAC in .m4a, odd containers), so no system ffmpeg is needed. Resampling uses soxr at high
quality. Silence and empty files are refused: they would give meaningless embeddings.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ReadError
from .checks import check_file, describe
from .payloads import SAMPLE_RATE, AudioPayload
from .sniff import sniff

SILENCE_PEAK = 1e-4
_LOSSLESS_CODECS = frozenset({"flac", "alac", "wavpack", "ape", "tta"})
_COMPLETE = 0.99  # a file that decodes to less than this share of its declared length is truncated


def read_audio(path: str | Path, *, max_seconds: float | None = None) -> AudioPayload:
    """Decode a sound file to mono float32 in [-1, 1] at 16 kHz.

    max_seconds: decode at most this much from the start (bounds memory for very long files).
    """
    _check_max_seconds(max_seconds)
    path = Path(path)
    check_file(path)
    looks_like = sniff(path)
    if looks_like in ("text", "image"):
        raise ReadError(path, f"not audio (content looks like {looks_like})")
    samples, rate = _decode_any(path, max_seconds)
    return to_payload(path, samples, rate)


def to_payload(path: Path, samples: np.ndarray, rate: int) -> AudioPayload:
    """Mono-mixed samples at `rate` -> validated 16 kHz AudioPayload (ReadError when empty or silent)."""
    if samples.size == 0:
        raise ReadError(path, "no audio samples")
    samples = to_16k(samples, rate)
    if samples.size == 0:
        raise ReadError(path, "no audio samples")
    if not np.isfinite(samples).all():
        samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
    if float(np.max(np.abs(samples))) < SILENCE_PEAK:
        raise ReadError(path, "audio is silent")
    return AudioPayload(path=path, samples=samples, sample_rate=SAMPLE_RATE)


def to_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    """Mono float32 at `rate` -> float32 at 16 kHz, clipped to [-1, 1], C-contiguous."""
    import soxr

    samples = np.asarray(samples, dtype=np.float32)
    if rate != SAMPLE_RATE:
        samples = soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(np.clip(samples, -1.0, 1.0), dtype=np.float32)


def decode_av_audio(container, stream, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode one PyAV audio stream to (mono float32 samples, sample rate); shared with the video reader."""
    samples, rate, broke_off = decode_av_audio_until_error(container, stream, max_seconds)
    if broke_off is not None:
        raise broke_off
    return samples, rate


def decode_av_audio_until_error(container, stream, max_seconds: float | None = None
                                ) -> tuple[np.ndarray, int, Exception | None]:
    """Like decode_av_audio, but a decoder error after the first decoded audio ends the stream
    instead of losing it: (samples so far, rate, the error or None).

    Why: a cut-off file's last frame fails to decode, and whether FFmpeg says so depends on its
    threading (one core: an error; several: silence). The caller compares what it got with the
    declared length and calls it truncated either way.
    """
    import av

    rate = stream.codec_context.sample_rate or stream.rate
    if not rate:
        raise ValueError("audio stream declares no sample rate")
    # Planar float at the stream's own rate and layout (fixed by the first frame, so a mid-stream
    # change cannot break the concatenation); channels averaged here, resampling left to soxr.
    resampler = av.AudioResampler(format="fltp", rate=rate)
    limit = None if max_seconds is None else int(round(max_seconds * rate))
    chunks: list[np.ndarray] = []
    total = 0
    broke_off: Exception | None = None
    frames = container.decode(stream)
    while limit is None or total < limit:
        try:
            frame = next(frames)
        except StopIteration:
            chunks.extend(out.to_ndarray().mean(axis=0, dtype=np.float32) for out in resampler.resample(None))
            break
        except av.FFmpegError as error:
            if not chunks:
                raise
            broke_off = error
            break
        for out in resampler.resample(frame):
            chunk = out.to_ndarray().mean(axis=0, dtype=np.float32)
            chunks.append(chunk)
            total += chunk.size
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if limit is not None:
        samples = samples[:limit]
    return samples.astype(np.float32, copy=False), int(rate), broke_off


def _decode_any(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    try:
        return _decode_soundfile(path, max_seconds)
    except (ReadError, MemoryError):
        raise
    except Exception as first:
        try:
            return _decode_pyav(path, max_seconds)
        except (ReadError, MemoryError):
            raise
        except Exception as second:
            raise ReadError(path, f"not decodable audio ({describe(second)}; libsndfile: {describe(first)})") from second


def _decode_soundfile(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    import soundfile as sf

    with sf.SoundFile(str(path)) as handle:
        rate, declared = handle.samplerate, handle.frames
        frames = -1 if max_seconds is None else int(round(max_seconds * rate))
        data = handle.read(frames=frames, dtype="float32", always_2d=True)
    expected = declared if frames < 0 else min(frames, declared)
    if expected > 0 and len(data) < _COMPLETE * expected:
        raise ReadError(path, f"truncated audio: decoded {len(data) / rate:.2f} s of the {declared / rate:.2f} s declared")
    return data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0], int(rate)


def _decode_pyav(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    import av

    with av.open(str(path), mode="r") as container:
        if not container.streams.audio:
            raise ReadError(path, "no audio stream")
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        samples, rate, broke_off = decode_av_audio_until_error(container, stream, max_seconds)
        declared = _exact_duration(container, stream)
    if declared and max_seconds is None and len(samples) < _COMPLETE * declared * rate:
        raise ReadError(path, f"truncated audio: decoded {len(samples) / rate:.2f} s of the {declared:.2f} s declared")
    if broke_off is not None:
        raise ReadError(path, f"truncated or corrupt audio: decoding broke off after {len(samples) / rate:.2f} s "
                              f"({describe(broke_off)})")
    return samples, rate


def _exact_duration(container, stream) -> float | None:
    """Declared seconds, only for lossless codecs whose headers state it exactly (a lossy file's
    duration is often estimated from its bit rate, and a shortfall there proves nothing)."""
    import av

    name = stream.codec_context.name
    if not (name in _LOSSLESS_CODECS or name.startswith("pcm_")):
        return None
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else None


def _check_max_seconds(max_seconds: float | None) -> None:
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be positive or None, got {max_seconds}")
