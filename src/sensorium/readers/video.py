"""Read a video (mp4, webm, mkv, avi, mov) to frames sampled at a fixed rate plus its sound track.

Memory is bounded twice: every frame is downscaled to `max_side`, and at most `max_frames` are
kept; a video longer than max_frames / frame_rate is sampled at a lower rate so that the frames
still span all of it. When samples are far apart, the reader seeks to each one instead of
decoding every frame in between, which keeps hour-long videos cheap.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import ReadError
from .audio import read_audio
from .checks import check_file, describe, reraise_machine
from .limits import MAX_IMAGE_SIDE, MAX_VIDEO_FRAME_PIXELS, MAX_WHOLE_AUDIO_SECONDS
from .payloads import AudioPayload, VideoFrame, VideoPayload
from .sniff import sniff

# Sampling intervals at least this long (seconds) seek to each sample; shorter ones decode through.
SEEK_MIN_INTERVAL = 10.0
_EPS = 1e-3  # seconds of slack when comparing a frame's time with the next sample time


def read_video(
    path: str | Path,
    *,
    frame_rate: float = 1.0,
    max_side: int = 512,
    max_frames: int = 600,
    audio: bool = True,
    max_audio_seconds: float | None = None,
) -> VideoPayload:
    """Decode frames at `frame_rate` per second (first frame always included) and the audio track.

    frame_rate: samples per second, lowered when the video is longer than max_frames / frame_rate.
    max_side: longest side of each returned frame, in pixels (frames are only ever shrunk).
    max_frames: most frames returned.
    audio: decode the first audio track to 16 kHz mono (None when absent, silent or undecodable).
    max_audio_seconds: decode at most this much sound from the start.
    """
    if not frame_rate > 0:
        raise ValueError(f"frame_rate must be positive, got {frame_rate}")
    if max_side < 1 or max_frames < 1:
        raise ValueError(f"max_side and max_frames must be positive, got {max_side}, {max_frames}")
    path = Path(path)
    check_file(path)
    looks_like = sniff(path)
    if looks_like in ("text", "image"):
        raise ReadError(path, f"not a video (content looks like {looks_like})")

    import av

    try:
        container = av.open(str(path), mode="r")
    except Exception as exc:
        reraise_machine(exc)
        raise ReadError(path, f"not a valid video container ({describe(exc)})") from exc
    with container:
        if not container.streams.video:
            raise ReadError(path, "no video stream")
        stream = container.streams.video[0]
        context = stream.codec_context  # None when FFmpeg has no decoder for it (decoding then says so)
        width, height = (context.width or 0, context.height or 0) if context is not None else (0, 0)
        if width * height > MAX_VIDEO_FRAME_PIXELS or max(width, height) > MAX_IMAGE_SIDE:
            raise ReadError(path, f"video frames of {width}x{height} pixels exceed the limit of "
                                  f"{MAX_VIDEO_FRAME_PIXELS:,} pixels")
        stream.thread_type = "AUTO"
        duration = _declared_duration(container, stream)
        native = _native_rate(stream)
        # The last frame starts one frame interval before the end: samples must span up to it.
        span = None if duration is None else max(duration - (1.0 / native if native else 0.0), 1e-3)
        rate = _sampling_rate(frame_rate, span, max_frames)
        frames, error = _sample(container, stream, rate, max_side, max_frames)
    if not frames:
        detail = f" ({describe(error)})" if error else ""
        raise ReadError(path, f"no decodable video frames{detail}")
    if duration is None:
        duration = frames[-1].time
    sound = _read_sound(path, max_audio_seconds) if audio else None
    return VideoPayload(
        path=path,
        frames=frames,
        audio=sound,
        duration=float(duration),
        frame_rate=float(min(rate, native) if native else rate),
    )


def _declared_duration(container, stream) -> float | None:
    """Seconds, from the stream header, else the container's; None when neither is usable."""
    seconds = None
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        import av

        seconds = container.duration / av.time_base
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return None
    return seconds


def _native_rate(stream) -> float | None:
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else None


def _sampling_rate(frame_rate: float, span: float | None, max_frames: int) -> float:
    """frame_rate, lowered so that samples at 0, 1/r, 2/r ... up to `span` seconds number at most max_frames."""
    if span is None or math.floor(span * frame_rate + _EPS) + 1 <= max_frames:
        return frame_rate
    if max_frames == 1:
        return 1.0 / (span + 1.0)
    return (max_frames - 1) / span


def _sample(container, stream, rate: float, max_side: int, max_frames: int):
    """(frames, the decoding error that stopped early or None)."""
    if 1.0 / rate >= SEEK_MIN_INTERVAL:
        try:
            return _sample_by_seeking(container, stream, rate, max_side, max_frames), None
        except Exception as error:
            reraise_machine(error)
            try:
                container.seek(0)  # unseekable file: fall back to decoding straight through
            except Exception as again:  # not even that: no frames (the caller names the first error)
                reraise_machine(again)
                return [], error
    return _sample_sequentially(container, stream, rate, max_side, max_frames)


def _sample_sequentially(container, stream, rate, max_side, max_frames):
    frames: list[VideoFrame] = []
    origin = None
    next_time = 0.0
    try:
        for index, frame in enumerate(container.decode(stream)):
            seconds = _frame_seconds(frame, stream, index)
            if origin is None:
                origin = seconds
            t = seconds - origin
            if t + _EPS < next_time:
                continue
            frames.append(VideoFrame(time=round(t, 6), pixels=_rgb(frame, max_side)))
            if len(frames) >= max_frames:
                break
            next_time = (math.floor(t * rate + _EPS) + 1) / rate
    except Exception as exc:  # a corrupt packet mid-stream: keep what decoded before it
        reraise_machine(exc)
        return frames, exc
    return frames, None


def _sample_by_seeking(container, stream, rate, max_side, max_frames):
    """One seek (to the keyframe before) per sample, then decode forward to the sample time."""
    frames: list[VideoFrame] = []
    first = next(container.decode(stream))
    origin = _frame_seconds(first, stream, 0)
    frames.append(VideoFrame(time=0.0, pixels=_rgb(first, max_side)))
    k = 1
    while len(frames) < max_frames:
        target = k / rate
        container.seek(int((origin + target) / stream.time_base), stream=stream, backward=True)
        found = None
        for frame in container.decode(stream):
            t = _frame_seconds(frame, stream, 0) - origin
            if t + _EPS >= target:
                found = frame, t
                break
        if found is None:  # past the last frame
            break
        frame, t = found
        if t > frames[-1].time:
            frames.append(VideoFrame(time=round(t, 6), pixels=_rgb(frame, max_side)))
        k = max(k + 1, math.floor(t * rate + _EPS) + 1)
    return frames


def _frame_seconds(frame, stream, index: int) -> float:
    if frame.time is not None:
        return float(frame.time)
    native = _native_rate(stream) or 25.0
    return index / native


def _rgb(frame, max_side: int) -> np.ndarray:
    """The frame as upright RGB uint8, longest side at most max_side."""
    width, height = frame.width, frame.height
    scale = min(1.0, max_side / max(width, height))
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    pixels = frame.to_ndarray(format="rgb24", width=out_w, height=out_h, interpolation="AREA")
    turns = round((getattr(frame, "rotation", 0) or 0) / 90) % 4  # display matrix, counter-clockwise
    if turns:
        pixels = np.rot90(pixels, turns)
    return np.ascontiguousarray(pixels, dtype=np.uint8)


def _read_sound(path: Path, max_seconds: float | None) -> AudioPayload | None:
    """The first audio track at 16 kHz mono, at most `MAX_WHOLE_AUDIO_SECONDS` of it (a longer
    video is indexed with its sound in windows, `readers.windows`); None when there is none, or it
    is silent or corrupt: the pictures are still worth indexing."""
    wanted = MAX_WHOLE_AUDIO_SECONDS if max_seconds is None else min(max_seconds, MAX_WHOLE_AUDIO_SECONDS)
    try:
        return read_audio(path, max_seconds=wanted)
    except Exception as error:
        reraise_machine(error)
        return None
