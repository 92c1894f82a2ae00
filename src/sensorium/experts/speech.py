"""Speech expert: Whisper base (CTranslate2, via faster-whisper) for transcription and word scoring.

The model itself (the packaged weights, joined once; loading; encoding clips in short windows) is
`sensorium.experts.whisper`, shared with the native audio vectors of `sensorium.experts.sound`.

Two ways to ask "what was said":
- `transcribe` decodes freely (what a user reads as a transcript), with each word's time;
- `score_candidates` asks how likely each of a few known texts is for this audio (teacher-forced),
  which is far more robust for short, accented or quiet clips than matching a free transcript.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..progress import check_cancelled
from ..readers.payloads import SAMPLE_RATE, AudioPayload
from . import spoken_templates
from .base import ModelInfo
from .whisper import Whisper, pool_frames, storage_view
from .whisper import (  # noqa: F401 - the weights' names, re-exported for existing importers
    MANIFEST, MODEL_NAME, PART_PACKAGES, SIDE_FILES, joined_model_dir,
)

_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}


@dataclass(frozen=True)
class Word:
    """One transcribed word and when it is said, in seconds from the start of the audio."""

    start: float
    end: float
    text: str  # as Whisper spells it, punctuation included, without surrounding spaces


@dataclass(frozen=True)
class TranscriptSegment:
    start: float  # seconds from the start of the audio
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    words: tuple[Word, ...] = ()  # in order; empty when transcribed without word timestamps


# ---------------------------------------------------------------- the recogniser


class SpeechRecognizer:
    """Whisper base on CPU: free transcription and teacher-forced scoring of candidate texts.

    `whisper`: the model to run, shared with other experts (`Experts` hands the same one to
    `sensorium.experts.sound`); without it, one is made from `local_dir` (a CTranslate2 Whisper
    folder; None: the packaged weights) and `compute_type`.
    """

    def __init__(self, local_dir: str | Path | None = None, compute_type: str = "int8",
                 keyword_dir: str | Path | None = None, whisper: Whisper | None = None):
        self.whisper = whisper or Whisper(local_dir, compute_type)
        self.keyword_dir = keyword_dir  # the keyword-embedding model's folder; None: the packaged one
        self._keyword = None  # see `keyword`
        self._calibration: dict[tuple, np.ndarray] = {}  # (candidates, context) -> scores on silence
        self._templates: dict[tuple, spoken_templates.TemplateSet] = {}  # candidates -> their templates

    @property
    def local_dir(self) -> Path | None:
        return self.whisper.local_dir

    def model_dir(self) -> Path:
        return self.whisper.model_dir()

    @property
    def model(self):
        """The faster_whisper.WhisperModel, loaded on first use."""
        return self.whisper.model

    # ------------------------------------------------------------ free transcription

    def transcribe(
        self, audio: AudioPayload, language: str | None = "en", beam_size: int = 5,
        fallback: bool = True, word_timestamps: bool = True,
    ) -> list[TranscriptSegment]:
        """Decode freely; time stamps are seconds from the start of `audio`.

        `fallback` re-decodes at rising temperatures when the output looks degenerate (Whisper's
        own recipe; it rescues long recordings but can cost 5x on short, unclear clips).

        `word_timestamps` gives each segment its `words` with their times (faster-whisper aligns
        them by dynamic time warping over the decoder's cross-attention); it also snaps a
        segment's start and end to its first and last word. It costs ~5% more time (18.8 s of
        espeak-ng speech on 2 cores: 2.07-2.45 s without, 2.18-2.61 s with, means of 3 runs).

        Silero VAD (shipped inside faster-whisper, run by onnxruntime) skips silences in audio
        longer than `VAD_MIN_SECONDS`: there it stops Whisper hallucinating text into long pauses.
        Short clips are decoded whole, because VAD padding and thresholds can clip a lone word,
        unless `heard_speech` finds no speech in them at all: rain, an engine, a hiss. Whisper would
        spend 3-10 s on such a clip looping through its fallback temperatures, and say nothing, or
        worse, something (BENCHMARKS.md, "No speech, no decoding").
        """
        samples = _as_16k(audio)
        if samples.size == 0:
            return []
        if len(samples) <= VAD_MIN_SECONDS * SAMPLE_RATE and not heard_speech(samples):
            return []
        duration = len(samples) / SAMPLE_RATE  # Whisper's last time stamp may overshoot the audio

        def clock(seconds) -> float:
            return round(min(max(float(seconds), 0.0), duration), 3)

        with self.whisper.using() as model:  # a long recording decodes lazily, segment by segment
            segments, _info = model.transcribe(
                samples, language=language, beam_size=beam_size,
                vad_filter=len(samples) > VAD_MIN_SECONDS * SAMPLE_RATE,
                condition_on_previous_text=False,
                temperature=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0] if fallback else [0.0],
                word_timestamps=word_timestamps,
            )
            return [
                TranscriptSegment(
                    start=clock(s.start), end=clock(s.end), text=s.text.strip(),
                    avg_logprob=float(s.avg_logprob), no_speech_prob=float(s.no_speech_prob),
                    words=tuple(Word(start=clock(w.start), end=clock(w.end), text=w.word.strip())
                                for w in (s.words or ()) if w.word.strip()),
                )
                for s in _checked(segments)
            ]

    # ------------------------------------------------------------ candidate scoring

    def score_candidates(
        self, audio: AudioPayload, candidates: list[str], context: bool = True, templates: bool = True
    ) -> np.ndarray:
        """Calibrated log-probability of each candidate text among `candidates` (higher = more likely).

        Each candidate is scored in a few surface forms (" seven", " Seven", " 7"), combined with
        logsumexp: the probability of the word in any spelling. With `context`, the candidate list
        is given as Whisper's previous-text prompt, which tells it the vocabulary; that prompt is
        the same for every candidate, so it biases none of them over the others.

        - Single-token forms (spoken digits, most short words): one decoder step gives every form's
          probability of being the first word at once, a softmax over mutually exclusive tokens,
          so no form wins by being short. ~30x cheaper than teacher-forcing each form.
        - Otherwise each form is teacher-forced: the sum of its token log-probs plus the
          log-probability that the utterance ends right after it (end-of-text or a full stop), so
          a short candidate cannot win by being short nor a prefix ("seven" vs "seventeen") by
          being a prefix.

        Three corrections, chosen on FSDD speakers george, jackson and lucas only (nicolas held out,
        see benchmarks/quality/fsdd_zeroshot.py): the clip is scored at three speeds (x0.9, x1, x1.1) and
        the log-likelihoods averaged (test-time augmentation: one tight cut or odd tempo matters
        less); for single-token forms, a clip shorter than 0.5 s is also heard said three times in
        a row (0.1 s apart) at each speed (only the first word is scored, and a word of 0.2 s is
        often too little for the decoder to hear anything); and, for single-token forms, each
        candidate's score on silence is subtracted ("contextual calibration", Zhao et al. 2021:
        removes Whisper's prior for some words; computed once per candidate set and cached). The result is renormalised over the
        candidates (log-softmax), so it is <= 0 and a single candidate always scores 0.

        With `templates` (short candidates only), a second, independent opinion is added: how the
        clip sounds next to each candidate spoken by espeak-ng in English and in accented voices
        (cosines of the scoring pass's pooled encoder frames and of keyword embeddings,
        `sensorium.experts.spoken_templates`). It helps most where the decoder is unsure, e.g. a
        word cut tightly at its onset or said with an accent.
        """
        from scipy.special import log_softmax

        candidates = _check_candidates(candidates)
        samples = _as_16k(audio)
        if templates and spoken_templates.applies_to(samples, candidates):  # a capped caller hears "no" first
            spoken_templates.check_new_words(self.whisper.sha256, self.keyword, candidates)
        tokenizer = self._tokenizer()
        forms, owners = self._forms(tokenizer, candidates)
        prompt = self._prompt(tokenizer, candidates, context)
        views = spoken_templates.speed_views(_condition(samples)[: MAX_SCORE_SECONDS * SAMPLE_RATE])
        encoded = self._encode_short_many(views)
        per_view = self._candidate_scores(encoded, prompt, forms, owners, len(candidates))
        if any(len(f) > 1 for f in forms):
            # not calibrated: subtracting scores on silence made "seven seven" beat "seven" on a clip
            # saying "seven" (a long candidate scores very low on silence, so it gains most)
            scores = log_softmax(per_view.mean(axis=0))
        else:
            if samples.size < REPEAT_BELOW_SECONDS * SAMPLE_RATE:
                repeated = self._encode_short_many([_said_again(view) for view in views])
                again = self._candidate_scores(repeated, prompt, forms, owners, len(candidates))
                per_view = np.concatenate([per_view, again])
            key = (tuple(candidates), context)
            if key not in self._calibration:
                silence = np.zeros(MIN_SCORE_SECONDS * SAMPLE_RATE // 2, np.float32)
                self._calibration[key] = self._candidate_scores(
                    self._encode_short_many([silence]), prompt, forms, owners, len(candidates)
                )[0]
            scores = log_softmax(per_view.mean(axis=0) - self._calibration[key])
        if templates and spoken_templates.applies_to(samples, candidates):
            sounded = self._sounds_like(samples, pool_frames(encoded, views), candidates)
            if sounded is not None:
                scores = log_softmax(scores + sounded)
        return scores

    def _sounds_like(self, samples: np.ndarray, vectors: np.ndarray, candidates: list[str]) -> np.ndarray | None:
        """The spoken templates' weighted opinion per candidate (`sensorium.experts.spoken_templates`);
        `vectors`: the clip's pooled scoring-pass vectors. None without espeak-ng. Templates are built
        once per candidate set (and kept on disk)."""
        key = tuple(candidates)
        if key not in self._templates:
            try:
                self._templates[key] = spoken_templates.build_templates(
                    self.template_vectors, self.whisper.sha256, candidates, self.keyword)
            except ModelError:  # no espeak-ng here (or a voice missing): the decoder's opinion stands alone
                return None
        return spoken_templates.sounds_like(vectors, samples, self._templates[key], self.keyword)

    def template_vectors(self, clips: list[np.ndarray]) -> np.ndarray:
        """Unit vectors of template clips, made the way a scored clip's are (conditioned, scoring
        window); what `spoken_templates.build_templates` and `write_seed` embed with, keyed by
        `self.whisper.sha256`."""
        conditioned = [_condition(clip) for clip in clips]
        return pool_frames(self._encode_short_many(conditioned), conditioned)

    @property
    def keyword(self):
        """Google's speech_embedding (`sensorium.experts.keyword`) for the templates' third opinion,
        or None where its package is not installed (the other two opinions still hold)."""
        if self._keyword is None:
            from .keyword import KeywordEmbedder

            try:
                self._keyword = KeywordEmbedder(self.keyword_dir)
            except ModelError:
                if self.keyword_dir:  # a folder the user named must work
                    raise
                self._keyword = False
        return self._keyword or None

    def _forms(self, tokenizer, candidates: list[str]) -> tuple[list[list[int]], np.ndarray]:
        forms, owners = [], []
        for index, text in enumerate(candidates):
            for form in _surface_forms(text):
                ids = tokenizer.encode(form)
                if ids:
                    forms.append(ids)
                    owners.append(index)
        return forms, np.asarray(owners)

    def _prompt(self, tokenizer, candidates: list[str], context: bool) -> list[int]:
        prompt = list(tokenizer.sot_sequence) + [tokenizer.no_timestamps]
        if context:
            listing = " " + ", ".join(candidates) + "."
            prompt = [tokenizer.sot_prev] + tokenizer.encode(listing)[-MAX_CONTEXT_TOKENS:] + prompt
        return prompt

    def _candidate_scores(
        self, memory: np.ndarray, prompt: list[int], forms: list[list[int]], owners: np.ndarray, count: int
    ) -> np.ndarray:
        """(views, candidates) log-likelihoods: logsumexp over each candidate's forms."""
        from scipy.special import logsumexp

        if all(len(f) == 1 for f in forms):
            form_scores = self._first_token_scores(memory, prompt, [f[0] for f in forms])
        else:
            form_scores = self._teacher_forced_scores(memory, prompt, forms)
        return np.stack([logsumexp(form_scores[:, owners == i], axis=1) for i in range(count)], axis=1)

    def _first_token_scores(self, memory: np.ndarray, prompt: list[int], token_ids: list[int]) -> np.ndarray:
        """(views, forms) log-probs of each single-token form being the first word: one decoder step per view."""
        from scipy.special import log_softmax

        results = self._generate(memory, [prompt] * memory.shape[0], len(prompt) + 1)
        rows = []
        for result in results:
            if not result.logits or len(result.logits[0]) < 1:
                raise ModelError("whisper returned no logits for the first decoding step")
            logits = np.asarray(result.logits[0], dtype=np.float32)[0]
            rows.append(log_softmax(logits)[token_ids])
        return np.array(rows)

    def _teacher_forced_scores(self, memory: np.ndarray, prompt: list[int], forms: list[list[int]]) -> np.ndarray:
        """(views, forms) sum of token log-probs + log P(end right after the form)."""
        from scipy.special import log_softmax, logsumexp

        tokenizer = self._tokenizer()
        steps = max(len(f) for f in forms) + 1
        start = len(prompt) - 1  # tokens forwarded before decoding starts
        total = min(MAX_DECODER_TOKENS, max(2 * steps, steps + start) + 1)
        views = memory.shape[0]
        # in batches: each sequence returns its logits over the whole vocabulary at every step
        # (~4 MB), so 60 made-up labels x 3 spellings x 3 speeds at once took 5.5 GB
        pairs = [(view, form) for view in range(views) for form in forms]
        results = []
        for begin in range(0, len(pairs), TEACHER_BATCH):
            check_cancelled()
            batch = pairs[begin:begin + TEACHER_BATCH]
            results += self._generate(memory[[view for view, _ in batch]], [prompt + form for _, form in batch], total)
        ends = [tokenizer.eot] + [tokenizer.encode(p)[0] for p in END_PUNCTUATION]
        scores = np.empty((views, len(forms)))
        for row, result in enumerate(results):
            ids = forms[row % len(forms)]
            logits = np.asarray(result.logits[0], dtype=np.float32) if result.logits else np.empty((0, 0))
            if logits.shape[0] < len(ids) + 1:
                raise ModelError(f"whisper returned {logits.shape[0]} steps for a {len(ids)}-token candidate")
            log_probs = log_softmax(logits[: len(ids) + 1], axis=-1)
            scores[row // len(forms), row % len(forms)] = (
                log_probs[np.arange(len(ids)), ids].sum() + logsumexp(log_probs[len(ids), ends])
            )
        return scores

    def _generate(self, memory: np.ndarray, prompts: list[list[int]], max_length: int):
        with self.whisper.using() as model:
            return model.model.generate(
                storage_view(memory), prompts, beam_size=1, max_length=max_length,
                return_logits_vocab=True, suppress_blank=False, suppress_tokens=[],
            )

    def _tokenizer(self):
        from faster_whisper.tokenizer import Tokenizer

        return Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual, task="transcribe", language="en")

    def _encode_short_many(self, clips: list[np.ndarray]) -> np.ndarray:
        """Encoder outputs (one row per clip) for one window just longer than the longest clip.

        Not Whisper's fixed 30 s: the decoder cross-attends to every encoder frame, so a short
        window makes scoring far cheaper. The minimum (4 s) was chosen on the dev speakers, where
        it beat 2 s (see benchmarks/quality/fsdd_zeroshot.py).
        """
        longest = max(len(c) for c in clips) / SAMPLE_RATE
        window = int(np.ceil(max(longest + SCORE_MARGIN_SECONDS, MIN_SCORE_SECONDS)))
        return self.whisper.encode(clips, min(window, MAX_SCORE_SECONDS))

    def info(self) -> ModelInfo:
        return self.whisper.info()


# ---------------------------------------------------------------- helpers

VAD_MIN_SECONDS = 10.0  # below this, decode the clip whole (when it holds any speech at all)
# Silero's speech probability a short clip must reach somewhere to be decoded: every one of FSDD's 2,000
# spoken digits (4 speakers) and 96 espeak-ng words (16 words x 6 voices) reaches 0.2 (at 0.25, 9 digits
# would be lost, so 0.15 keeps a margin; 20 dB quieter, 1,997 digits of 2,000 pass); synthetic rain, an
# engine's hum, hiss and silence do not (benchmarks/speed/no_speech_gate.py).
SPEECH_GATE_THRESHOLD = 0.15
MIN_SCORE_SECONDS = 4  # smallest encoder window used for scoring (beat 2 s on the dev speakers)
SCORE_MARGIN_SECONDS = 0.5  # silence after the clip inside the scoring window
MAX_SCORE_SECONDS = 30  # Whisper's own window: scoring looks at the first 30 s only
MAX_DECODER_TOKENS = 448
TEACHER_BATCH = 8  # teacher-forced sequences decoded at once: ~4 MB of logits each, ~1.5 s a batch on 2 cores (a cancel point)
MAX_CONTEXT_TOKENS = 200
END_PUNCTUATION = (".", "!", "?")
# a clip shorter than this is also scored said REPEATS times, REPEAT_GAP_SECONDS apart (dev log-loss on
# george, jackson, lucas: 0.0068 -> 0.0058 with the templates; thresholds 0.3-0.8 s and "every clip" tried)
REPEAT_BELOW_SECONDS = 0.5
REPEATS = 3
REPEAT_GAP_SECONDS = 0.1


def heard_speech(samples: np.ndarray) -> bool:
    """Whether silero VAD (shipped with faster-whisper; ~4 ms for a 1 s clip) finds any stretch of
    speech in 16 kHz `samples` at the permissive `SPEECH_GATE_THRESHOLD`."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(threshold=SPEECH_GATE_THRESHOLD, min_silence_duration_ms=0)
    return bool(get_speech_timestamps(np.asarray(samples, np.float32), options))


def _checked(segments):
    """Whisper's segments as it decodes them (lazily, ~30 s of sound each), stopping between two
    when the caller has left (`sensorium.progress.cancellable`)."""
    for segment in segments:
        check_cancelled()
        yield segment


def _as_16k(audio: AudioPayload) -> np.ndarray:
    samples = np.asarray(audio.samples, dtype=np.float32).reshape(-1)
    if audio.sample_rate != SAMPLE_RATE:
        import soxr

        samples = soxr.resample(samples, audio.sample_rate, SAMPLE_RATE).astype(np.float32)
    return samples


def _condition(samples: np.ndarray) -> np.ndarray:
    """Remove DC offset and fade 10 ms at both edges: tightly cut clips otherwise start with a click."""
    if samples.size == 0:
        return samples
    out = samples - samples.mean()
    ramp_len = min(SAMPLE_RATE // 100, out.size // 2)
    if ramp_len:
        ramp = np.linspace(0.0, 1.0, ramp_len, dtype=np.float32)
        out[:ramp_len] *= ramp
        out[-ramp_len:] *= ramp[::-1]
    return out.astype(np.float32)


def _said_again(samples: np.ndarray) -> np.ndarray:
    """The clip REPEATS times with short silences between: more of the same word for the decoder to hear."""
    gap = np.zeros(int(REPEAT_GAP_SECONDS * SAMPLE_RATE), np.float32)
    parts = [samples, gap] * REPEATS
    return np.concatenate(parts[:-1]).astype(np.float32)


def _check_candidates(candidates: list[str]) -> list[str]:
    from ..errors import QueryError

    if isinstance(candidates, str) or not candidates:
        raise QueryError("candidates: expected a non-empty list of texts")
    cleaned = []
    for i, text in enumerate(candidates):
        if not isinstance(text, str) or not text.strip():
            raise QueryError(f"candidates[{i}]: expected a non-empty text, got {text!r}")
        cleaned.append(text.strip())
    return cleaned


def _surface_forms(text: str) -> list[str]:
    """Spellings Whisper might use for the same words, each with Whisper's leading space."""
    forms = [text, text.lower(), text[:1].upper() + text[1:]]
    words = text.lower().split()
    digits = {v: k for k, v in _NUMBER_WORDS.items()}
    if all(w in _NUMBER_WORDS for w in words):
        forms.append(" ".join(_NUMBER_WORDS[w] for w in words))
    elif all(w in digits for w in words):
        spelled = " ".join(digits[w] for w in words)
        forms += [spelled, spelled[:1].upper() + spelled[1:]]
    unique = []
    for form in forms:
        if form not in unique:
            unique.append(form)
    return [" " + form for form in unique]
