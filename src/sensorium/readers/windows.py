"""Long recordings read window by window, so that a two-hour podcast indexes in the memory of two
minutes of it.

Reading a recording whole costs its length in memory several times over downstream (the speech
model's features of the whole file: 2.2 GB for 20 minutes at 8 kHz). `AudioWindows` decodes
incrementally (`audio.stream_audio`) and hands out `AudioPayload`s of about `WINDOW_SECONDS`, each
carrying its `offset` in the file, so the experts see one window at a time and the times they give
are the file's. A window ends at the quietest moment of its last `QUIET_SEARCH_SECONDS`, so a cut
rarely splits a word. Silent windows are skipped (a recording with a long pause stays indexable); a
recording silent throughout is a ReadError, as when read whole.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import ReadError
from ..modality import AUDIO
from .audio import SILENCE_PEAK, AudioStream, stream_audio
from .limits import MAX_RECORDING_SECONDS
from .payloads import SAMPLE_RATE, AudioPayload

WINDOW_SECONDS = 120.0  # 120 s: +325-357 MB for 10-30 min recordings (flat); 300 s: +484-651 MB (BENCHMARKS.md)
QUIET_SEARCH_SECONDS = 10.0
QUIET_FRAME_SECONDS = 0.05


class AudioWindows:
    """A sound file (or a video's sound track) as consecutive windows; one pass.

    Opening checks the header against the budgets (a ReadError now, not halfway through); iterating
    decodes. `duration` is the decoded length once the pass is complete.
    """

    modality = AUDIO

    def __init__(self, path: str | Path, window_seconds: float | None = None,
                 limit_seconds: float = MAX_RECORDING_SECONDS):
        window_seconds = WINDOW_SECONDS if window_seconds is None else window_seconds
        if not window_seconds > QUIET_SEARCH_SECONDS:
            raise ValueError(f"window_seconds must exceed {QUIET_SEARCH_SECONDS}, got {window_seconds}")
        self.path = Path(path)
        self.window_seconds = float(window_seconds)
        self._blocks: AudioStream | None = stream_audio(self.path, limit_seconds=limit_seconds)
        self.declared_seconds = self._blocks.declared_seconds  # for progress; None when unknown
        self.duration: float | None = None

    def __iter__(self) -> Iterator[AudioPayload]:
        if self._blocks is None:
            raise RuntimeError(f"{self.path}: the windows were already read (one pass only)")
        blocks, self._blocks = self._blocks, None
        window = int(self.window_seconds * SAMPLE_RATE)
        pending: list[np.ndarray] = []
        size = start = 0
        sounding = False
        for block in blocks:
            pending.append(block)
            size += len(block)
            while size >= window:
                data = np.concatenate(pending)
                cut = quiet_cut(data, window)
                piece, rest = data[:cut], data[cut:]
                if _sounds(piece):
                    sounding = True
                    yield AudioPayload(path=self.path, samples=np.ascontiguousarray(piece), offset=start / SAMPLE_RATE)
                start += cut
                pending, size = [rest], len(rest)
        tail = np.concatenate(pending) if pending else np.zeros(0, np.float32)
        if _sounds(tail):
            sounding = True
            yield AudioPayload(path=self.path, samples=np.ascontiguousarray(tail), offset=start / SAMPLE_RATE)
        total = start + len(tail)
        self.duration = total / SAMPLE_RATE
        if total == 0:
            raise ReadError(self.path, "no audio samples")
        if not sounding:
            raise ReadError(self.path, "audio is silent")

    def close(self) -> None:
        """Release the file when the windows will not be read (a cancelled run)."""
        blocks, self._blocks = self._blocks, None
        if blocks is not None:
            blocks.close()


def quiet_cut(samples: np.ndarray, window: int) -> int:
    """Where to end a window of `window` samples: the middle of the longest quiet run of short
    frames in its last QUIET_SEARCH_SECONDS (the longest pause between words, if there is one)."""
    frame = int(QUIET_FRAME_SECONDS * SAMPLE_RATE)
    begin = max(frame, window - int(QUIET_SEARCH_SECONDS * SAMPLE_RATE))
    count = (window - begin) // frame
    if count < 1:
        return window
    stretch = samples[begin:begin + count * frame].reshape(count, frame)
    energy = np.einsum("ij,ij->i", stretch, stretch)
    quiet = energy <= 2.0 * float(energy.min()) + 1e-9 * frame
    best_start, best_length, run_start = 0, 0, None
    for index, is_quiet in enumerate(np.append(quiet, False)):
        if is_quiet and run_start is None:
            run_start = index
        elif not is_quiet and run_start is not None:
            if index - run_start > best_length:
                best_start, best_length = run_start, index - run_start
            run_start = None
    return begin + (best_start + best_length // 2) * frame


def _sounds(samples: np.ndarray) -> bool:
    return bool(samples.size) and float(np.max(np.abs(samples))) >= SILENCE_PEAK
