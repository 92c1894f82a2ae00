"""Payload -> segments in the shared space (and each modality's native space).

- text: passages of a note, embedded directly by the text expert;
- image: the label bridge (+ people, OCR) into the shared space, EfficientNet features natively;
- audio: time-coded transcript segments, embedded as text, and native sound vectors per window
  (Whisper's encoder, pooled) for any sound, speech or not;
- video: sampled frames grouped into shots (image path) plus the sound track (speech path),
  every vector carrying its time range.
"""
from __future__ import annotations

import re

import numpy as np

from ..errors import ReadError
from ..heap import release_free_memory
from ..progress import report
from ..readers.payloads import AudioPayload, ImagePayload, Payload, TextPayload, VideoPayload
from ..readers.windows import AudioWindows
from .image_bridge import bridge_for
from .segments import AUDIO, CLIP, IMAGE, SHARED, Segment, Source

PASSAGE_WORDS = 120  # MiniLM was trained on sentences and short passages; longer text dilutes
PASSAGE_OVERLAP = 20
SHOT_SIMILARITY = 0.80  # consecutive frames closer than this (native cosine) belong to one shot
SOUND_WINDOW_SECONDS = 10.0  # one native audio vector per stretch this long: a time range a hit can jump to
SILENCE = 1e-4  # peak amplitude under which a window is left without a vector


def split_passages(text: str, words: int = PASSAGE_WORDS, overlap: int = PASSAGE_OVERLAP) -> list[str]:
    """Paragraph-aware windows of at most `words` words, overlapping by `overlap`."""
    passages: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        tokens = paragraph.split()
        if not tokens:
            continue
        step = max(1, words - overlap)
        for begin in range(0, len(tokens), step):
            passages.append(" ".join(tokens[begin:begin + words]))
            if begin + words >= len(tokens):
                break
    return passages


class Embedder:
    """Turns payloads into segments using lazily loaded experts."""

    def __init__(self, experts):
        self.experts = experts

    # --- one entry point per modality -------------------------------------------------------
    def embed(self, payload: Payload) -> list[Segment]:
        if isinstance(payload, TextPayload):
            return self.embed_text(payload)
        if isinstance(payload, ImagePayload):
            return self.embed_images([payload])[0]
        if isinstance(payload, AudioPayload):
            return self.embed_audio(payload)
        if isinstance(payload, AudioWindows):
            return self.embed_audio_windows(payload)
        if isinstance(payload, VideoPayload):
            return self.embed_video(payload)
        raise TypeError(f"not a payload: {type(payload).__name__}")

    def embed_text(self, payload: TextPayload) -> list[Segment]:
        passages = split_passages(payload.text) or [payload.text.strip()]
        vectors = self.experts.text.encode(passages)
        return [
            Segment(source=Source.TEXT, text=passage, vectors={SHARED: vector})
            for passage, vector in zip(passages, vectors)
        ]

    def embed_images(self, payloads: list[ImagePayload]) -> list[list[Segment]]:
        """Batched: the image expert runs once over all images."""
        if not payloads:
            return []
        pixels = [p.pixels for p in payloads]
        descriptions = bridge_for(self.experts).describe(pixels)
        clip_vectors = self.experts.clip.encode_images(pixels) if self.experts.clip else None
        out = []
        for index, description in enumerate(descriptions):
            vectors = {SHARED: description.shared, IMAGE: description.native}
            if clip_vectors is not None:
                vectors[CLIP] = clip_vectors[index]
            out.append([Segment(source=Source.IMAGE, text=description.text, labels=_labels(description),
                                vectors=vectors, ocr=description.ocr_text)])
        return out

    def embed_audio(self, payload: AudioPayload, source: Source = Source.SPEECH) -> list[Segment]:
        """Spoken sentences in the shared space, with each word's time (a hit can then start at the
        words it matched), plus every stretch of sound (speech or not) as a native audio vector, so a
        recording with no words can still be found by an example."""
        segments = self.embed_sound(payload, Source.VIDEO_SOUND if source == Source.VIDEO_SPEECH else Source.SOUND)
        pieces = [s for s in self.experts.speech.transcribe(payload) if s.text.strip()]
        if not pieces:
            return segments
        vectors = self.experts.text.encode([p.text.strip() for p in pieces])
        at = payload.offset
        return [
            Segment(source=source, text=p.text.strip(), start=at + float(p.start), end=at + float(p.end),
                    vectors={SHARED: v}, words=[(at + w.start, at + w.end, w.text) for w in getattr(p, "words", ())])
            for p, v in zip(pieces, vectors)
        ] + segments

    def embed_audio_windows(self, windows: AudioWindows, source: Source = Source.SPEECH) -> list[Segment]:
        """A long recording one window at a time (flat memory), times in the file's clock;
        progress goes to `sensorium.progress` as seconds of sound done."""
        segments: list[Segment] = []
        stage = f"{windows.path.name}: listening"
        for window in windows:
            segments += self.embed_audio(window, source)
            release_free_memory()  # the window's features and decoder buffers, back to the OS before the next
            done = window.offset + window.duration
            report(stage, int(done), int(max(done, windows.declared_seconds or done)))
        return segments

    def embed_sound(self, payload: AudioPayload, source: Source = Source.SOUND) -> list[Segment]:
        """One native audio vector per window of up to `SOUND_WINDOW_SECONDS`; none for silence."""
        samples = np.asarray(payload.samples, np.float32).reshape(-1)
        rate = payload.sample_rate
        step = int(SOUND_WINDOW_SECONDS * rate)
        windows = [(start, samples[start:start + step]) for start in range(0, len(samples), step)]
        if len(windows) > 1 and len(windows[-1][1]) < step // 4:  # a short tail joins the window before
            tail = windows.pop()[1]
            windows[-1] = (windows[-1][0], np.concatenate([windows[-1][1], tail]))
        windows = [(start, piece) for start, piece in windows if piece.size and float(np.abs(piece).max()) > SILENCE]
        if not windows:
            return []
        vectors = self.experts.sound.embed([piece for _, piece in windows])
        at = payload.offset
        return [Segment(source=source, text="", start=at + start / rate, end=at + (start + len(piece)) / rate,
                        vectors={AUDIO: vector})
                for (start, piece), vector in zip(windows, vectors)]

    def embed_video(self, payload: VideoPayload) -> list[Segment]:
        segments = self._embed_shots(payload)
        if isinstance(payload.audio, AudioWindows):
            try:
                segments += self.embed_audio_windows(payload.audio, source=Source.VIDEO_SPEECH)
            except ReadError:  # a silent or broken sound track: the pictures are still worth indexing
                pass
        elif payload.audio is not None:
            segments += self.embed_audio(payload.audio, source=Source.VIDEO_SPEECH)
        return segments

    # --- video shots ------------------------------------------------------------------------
    def _embed_shots(self, payload: VideoPayload) -> list[Segment]:
        frames = payload.frames
        if not frames:
            return []
        pixels = [f.pixels for f in frames]
        descriptions = bridge_for(self.experts).describe(pixels)
        clip_vectors = self.experts.clip.encode_images(pixels) if self.experts.clip else None
        native = np.stack([d.native for d in descriptions])
        shots: list[list[int]] = [[0]]
        for i in range(1, len(frames)):
            if float(native[i] @ native[shots[-1][0]]) >= SHOT_SIMILARITY:
                shots[-1].append(i)
            else:
                shots.append([i])
        segments = []
        for number, shot in enumerate(shots):
            start = frames[shot[0]].time
            end = frames[shots[number + 1][0]].time if number + 1 < len(shots) else payload.duration
            best = max(shot, key=lambda i: descriptions[i].labels[0][1] if descriptions[i].labels else 0.0)
            vectors = {
                SHARED: _mean_unit([descriptions[i].shared for i in shot]),
                IMAGE: _mean_unit([descriptions[i].native for i in shot]),
            }
            if clip_vectors is not None:
                vectors[CLIP] = _mean_unit([clip_vectors[i] for i in shot])
            segments.append(Segment(source=Source.FRAME, text=descriptions[best].text, start=float(start),
                                    end=float(max(end, start)), labels=_labels(descriptions[best]),
                                    vectors=vectors, ocr=descriptions[best].ocr_text))
        return segments


def _labels(description) -> list:
    labels = [[name, round(float(p), 4)] for name, p in description.labels]
    if getattr(description, "people", 0):
        labels.append(["person", float(description.people)])
    return labels


def _mean_unit(vectors: list[np.ndarray]) -> np.ndarray:
    mean = np.mean(np.stack(vectors), axis=0).astype(np.float32)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else mean
