"""Budgets every reader enforces before it allocates: one file never costs more than a bounded
amount of memory and time, whoever calls the reader (the CLI, the library or the service).

Why in the readers: a header is free to lie. A 10 kB WAV that declares a 1 Hz sample rate
"lasts" almost three hours and, resampled to 16 kHz, asks for gigabytes; a 26 MB 8-bit WAV at
8 kHz holds 54 minutes. So each reader checks the header's claims against these limits first and
counts what it decodes as it goes, and a file over a limit is a ReadError naming the limit, never an
allocation attempt.

What one read costs at most (the figure tests check in a subprocess with an address-space limit):
- audio read whole: MAX_WHOLE_AUDIO_SECONDS of 16 kHz float32 (115 MB), plus one decoding block;
- audio read in windows (indexing): one window at a time, whatever the recording's length;
- an image: MAX_IMAGE_PIXELS decoded (checked from the header before decoding; a JPEG over it is
  decoded at reduced scale instead, down to 1/8);
- a video: frames of at most MAX_VIDEO_FRAME_PIXELS as declared (FFmpeg decodes at full size, a few
  frames in flight), at most `max_frames` of them kept downscaled, plus its sound as audio read whole;
- text: MAX_TEXT_BYTES.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ReadError

MIN_SAMPLE_RATE = 2_000  # Hz; below this no speech or music survives: such a header is broken or hostile
MAX_SAMPLE_RATE = 768_000  # Hz; the highest rate real converters record at
MAX_CHANNELS = 64
MAX_RECORDING_SECONDS = 12 * 3600.0  # the longest sound indexed at all (decoded window by window)
MAX_WHOLE_AUDIO_SECONDS = 30 * 60.0  # the longest sound decoded into memory at once (a query, a clip to classify)
MAX_TEXT_BYTES = 10 * 1024 * 1024
MAX_IMAGE_PIXELS = 64_000_000  # decoded: ~4 B/px in Pillow + 3 B/px as RGB = ~450 MB; a larger JPEG is decoded at 1/2-1/8 scale
MAX_VIDEO_FRAME_PIXELS = 36_000_000  # 8K UHD is 33.2 Mpx; FFmpeg allocates each frame (times its threads) at this size
MAX_IMAGE_SIDE = 65_535  # JPEG's own maximum; a 1 x 63,000,000 PNG costs Pillow a line buffer per row
READ_MEMORY_BOUND = 512 * 1024 * 1024  # bytes one reader may allocate for one file, models aside


def check_sample_rate(path: str | Path, rate: float) -> None:
    """ReadError unless the declared sample rate is one real audio uses."""
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ReadError(path, f"sample rate {rate:g} Hz is outside the supported "
                              f"{MIN_SAMPLE_RATE:,}-{MAX_SAMPLE_RATE:,} Hz")


def check_channels(path: str | Path, channels: int) -> None:
    if not 1 <= channels <= MAX_CHANNELS:
        raise ReadError(path, f"{channels} audio channels; at most {MAX_CHANNELS} are supported")


def check_duration(path: str | Path, seconds: float | None, limit: float, what: str = "sound") -> None:
    """ReadError when a declared or decoded length passes `limit` seconds."""
    if seconds is not None and seconds > limit:
        raise ReadError(path, f"{what} lasts {clock(seconds)}; the limit is {clock(limit)}")


def clock(seconds: float) -> str:
    """3725.0 -> '1 h 02 min 05 s'; 95 -> '1 min 35 s': limits read best in the units people use."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{seconds:.1f} s"
