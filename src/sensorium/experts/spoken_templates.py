"""Spoken templates: how a clip sounds next to each candidate word spoken by espeak-ng.

A second opinion beside Whisper's decoder for short spoken labels (`SpeechRecognizer.score_candidates`).
Each candidate is synthesised in a few voices and the clip's Whisper encoder vector (pooled over the
clip's frames) is compared with theirs by cosine. Two groups of voices:
- English voices, each as synthesised (espeak-ng leaves silent margins) and cut at the word, since a
  pooled vector changes with the silence around the word and recordings are often trimmed tightly;
- "accented" voices: espeak-ng's voices for other languages reading the English word with their
  own letters-to-sounds and phonemes, a rough model of the word said with a foreign accent (FSDD's
  speakers are Greek, German and Belgian/French as well as American). Cut at the word only.
The same templates, cut at the word, are also compared in a second embedding made for telling
spoken words apart (Google's speech_embedding, `sensorium.experts.keyword`), centred on the
templates' mean; that third opinion is skipped when its package is not installed.

The Whisper vectors are the encoder frames of the decoder's own scoring pass, averaged over the
frames that hold the clip (`sensorium.experts.whisper.pool_frames`), so they cost nothing extra;
the clip is compared at the three speeds the decoder hears (`SPEED_FACTORS`) and the cosines are
averaged. The templates are encoded the same way. Every constant here was chosen on FSDD's dev speakers george, jackson and
lucas by log-loss; nicolas was held out (benchmarks/quality/fsdd_zeroshot.py, BENCHMARKS.md).

The templates' vectors depend only on the words, the voices and the model, so they are kept on disk
(`paths.home()/cache/spoken-templates`) and a new process classifying with the same labels does not
synthesise and encode ~280 clips again. The digits and the Speech Commands words ship precomputed
(`SEED_FILE`), so the commonest label sets cost nothing even the first time on a machine.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..paths import home
from ..readers.payloads import SAMPLE_RATE
from .whisper import DIM, unit

ENGLISH_VOICES = ("en-us", "en-us+m3", "en-us+f2", "en-gb", "en-gb+m5", "en-us+f4")  # fixed before measuring
# 16 European languages, fixed before measuring (not picked one by one)
ACCENT_VOICES = ("de", "fr", "fr-be", "el", "es", "it", "nl", "pt", "pl", "sv", "cs", "hu", "tr", "fi", "ro", "da")
RATE_WPM, PITCH = 140, 60
# dev log-loss: English alone (weight 30) 0.0416; + accented 20/20 0.0369; + keyword embeddings 5: 0.0254;
# Whisper vectors from the scoring pass instead of a separate 2 s encoding: 0.0220
ENGLISH_WEIGHT = 20.0
ACCENT_WEIGHT = 20.0
KEYWORD_WEIGHT = 5.0
MAX_WORDS = 3  # longer candidates are sentences: their sound says little beyond the words
SILENCE = 1e-4  # peak amplitude below which a clip gets no template opinion
MAX_CLIP_SECONDS = 5.0  # a longer recording is not one spoken label (FSDD's longest clip: 1.3 s)
CUT_DB = 25.0  # a template "cut at the word" keeps what is within this many dB of its peak
SPEED_FACTORS = (0.9, 1.0, 1.1)  # the clip played slower, as is, faster (as the decoder hears it)
CACHE_VERSION = 3
POOLING = "scoring-pass encoder frames over the clip, conditioned, window >= 4 s"
# shipped precomputed: the digits and the rest of the Speech Commands vocabulary (Warden 2018), the
# label sets people most often classify short spoken clips into; any other word is built on first use
SEED_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
              "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
              "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
              "backward", "forward", "follow", "learn", "visual")
SEED_FILE = Path(__file__).parent / "data" / "spoken-templates.safetensors"
PROGRESS_STAGE = "voicing new labels (once)"  # what `sensorium.progress` shows while templates are made


_NEW_WORDS_CAP: ContextVar[int | None] = ContextVar("sensorium_new_spoken_words_cap", default=None)
MAX_CACHED_WORDS = 4000  # words kept in this machine's template cache (~33 KB each: ~130 MB), least recently used go


@contextmanager
def new_words_at_most(count: int | None) -> Iterator[None]:
    """Inside this block, a label set needing more than `count` words voiced anew is a QueryError
    before any is synthesised (the service's bound: ~3 s of CPU per new word)."""
    token = _NEW_WORDS_CAP.set(count)
    try:
        yield
    finally:
        _NEW_WORDS_CAP.reset(token)


@dataclass(frozen=True)
class TemplateSet:
    """Every candidate's template vectors, one group per kind of voice or model; `*_owner` says
    which candidate each row speaks for."""

    english: np.ndarray  # (n, 512) unit Whisper vectors: English voices, as synthesised and cut
    english_owner: np.ndarray
    accents: np.ndarray  # (a, 512) unit Whisper vectors: accented voices, cut
    accent_owner: np.ndarray
    keyword: np.ndarray  # (m, 96) keyword embeddings of the English and accented templates cut at the word
    keyword_owner: np.ndarray


def speed_views(samples: np.ndarray) -> list[np.ndarray]:
    """The clip at each of SPEED_FACTORS (resampling changes tempo and pitch together, like tape)."""
    import soxr

    views = []
    for factor in SPEED_FACTORS:
        if factor == 1.0 or samples.size == 0:
            views.append(samples)
        else:
            views.append(soxr.resample(samples, SAMPLE_RATE, int(SAMPLE_RATE / factor)).astype(np.float32))
    return views


def cut_at_word(samples: np.ndarray) -> np.ndarray:
    """The stretch from the first to the last sample within `CUT_DB` of the peak."""
    if samples.size == 0:
        return samples
    level = np.abs(samples)
    loud = np.flatnonzero(level > level.max() * 10 ** (-CUT_DB / 20))
    return samples[loud[0]: loud[-1] + 1] if loud.size else samples


def applies_to(samples: np.ndarray, candidates: list[str]) -> bool:
    """Templates speak for short candidates in short clips only, and silence sounds like nothing."""
    audible = samples.size > 0 and float(np.abs(samples).max()) > SILENCE
    short = samples.size <= MAX_CLIP_SECONDS * SAMPLE_RATE
    return audible and short and all(len(c.split()) <= MAX_WORDS for c in candidates)


def sounds_like(vectors: np.ndarray, samples: np.ndarray, templates: TemplateSet, keyword=None) -> np.ndarray:
    """Weighted log-score per candidate: for each group of templates, the clip's best cosine to each
    candidate's templates minus the best over candidates (<= 0). `vectors`: the clip's Whisper
    vectors at each speed (`whisper.pool_frames` of the scoring pass), the cosines averaged over them,
    English and accented voices weighted separately; keyword embeddings (with `keyword`, a
    KeywordEmbedder) of `samples` cut at the word, centred on the templates' mean."""
    count = int(templates.english_owner.max(initial=-1)) + 1
    total = ENGLISH_WEIGHT * _best_per_candidate(vectors @ templates.english.T, templates.english_owner, count)
    total += ACCENT_WEIGHT * _best_per_candidate(vectors @ templates.accents.T, templates.accent_owner, count)
    if keyword is not None and len(templates.keyword):
        centre = templates.keyword.mean(axis=0)
        clip = unit(keyword.embed([cut_at_word(samples)]) - centre)
        total += KEYWORD_WEIGHT * _best_per_candidate(clip @ unit(templates.keyword - centre).T,
                                                      templates.keyword_owner, count)
    return total


def _best_per_candidate(similarity: np.ndarray, owner: np.ndarray, count: int) -> np.ndarray:
    """(views, templates) cosines -> (count,) best per candidate minus the best, averaged over views."""
    best = np.full((similarity.shape[0], count), -np.inf)
    for candidate in range(count):
        best[:, candidate] = similarity[:, owner == candidate].max(axis=1)
    return (best - best.max(axis=1, keepdims=True)).mean(axis=0)


def build_templates(embed, model_key: str, candidates: list[str], keyword=None, cache: bool = True) -> TemplateSet:
    """Every candidate's template vectors, from the disk cache where it has them. `embed` turns
    clips into unit Whisper vectors the way the clip's are made, `model_key` names that model in the
    cache; keyword embeddings only with `keyword`. The words synthesised here (~3 s each) are
    reported to `sensorium.progress`. Raises `sensorium.errors.ModelError` without espeak-ng or with
    a voice missing."""
    from ..progress import report

    found = {text: _load(model_key, keyword, text) if cache else None for text in candidates}
    missing = [text for text, stored in found.items() if stored is None]
    _check_cap(missing)
    for done, text in enumerate(missing):
        report(PROGRESS_STAGE, done, len(missing))
        found[text] = _synthesise_and_embed(embed, keyword, text)
        if cache:
            _save(model_key, keyword, text, found[text])
    if missing:
        report(PROGRESS_STAGE, len(missing), len(missing))
    groups: dict[str, list[np.ndarray]] = {"english": [], "accents": [], "keyword": []}
    owners: dict[str, list[int]] = {name: [] for name in groups}
    for index, text in enumerate(candidates):
        stored = found[text]
        for name in groups:
            rows = stored.get(name, np.zeros((0, _width(name)), np.float32))
            groups[name].append(rows)
            owners[name] += [index] * len(rows)
    return TemplateSet(*(array for name in groups
                         for array in (np.concatenate(groups[name]), np.asarray(owners[name], dtype=np.int64))))


def check_new_words(model_key: str, keyword, candidates: list[str]) -> None:
    """QueryError now, before any other work, when `candidates` need more words voiced anew than
    the caller allows (`new_words_at_most`); nothing when no cap is set."""
    if _NEW_WORDS_CAP.get() is not None:
        _check_cap([text for text in candidates if _load(model_key, keyword, text) is None])


def _check_cap(missing: list[str]) -> None:
    cap = _NEW_WORDS_CAP.get()
    if cap is not None and len(missing) > cap:
        from ..errors import QueryError

        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise QueryError(f"{len(missing)} labels have no spoken templates on this machine yet ({shown}); "
                         f"here at most {cap} new ones are voiced per request (~3 s each): send fewer, or "
                         f"voice them once with `sensorium classify`")


def _width(group: str) -> int:
    from .keyword import DIM as KEYWORD_DIM

    return KEYWORD_DIM if group == "keyword" else DIM


def _synthesise_and_embed(embed, keyword, text: str) -> dict[str, np.ndarray]:
    from ..progress import check_cancelled
    from .tts import synthesize

    def say(voice: str) -> np.ndarray:
        check_cancelled()  # ~0.1 s a voice: a caller that left stops the work within a voice or two
        return synthesize(text, voice=voice, rate_wpm=RATE_WPM, pitch=PITCH).samples

    spoken = [say(voice) for voice in ENGLISH_VOICES]
    accented = [cut_at_word(say(voice)) for voice in ACCENT_VOICES]
    cut = [cut_at_word(s) for s in spoken]
    check_cancelled()
    vectors = embed(spoken + cut + accented)
    split = 2 * len(spoken)
    stored = {"english": np.ascontiguousarray(vectors[:split]), "accents": np.ascontiguousarray(vectors[split:])}
    if keyword is not None:
        stored["keyword"] = np.ascontiguousarray(keyword.embed(cut + accented))
    return stored


def _settings_key(model_key: str, keyword) -> str:
    """What the templates' vectors depend on besides the words, as a short hash."""
    from .base import package_version

    settings = json.dumps({
        "version": CACHE_VERSION, "model": model_key, "pooling": POOLING,
        "keyword": None if keyword is None else keyword.sha256,
        "espeak": package_version("espeakng-loader"), "english": ENGLISH_VOICES, "accents": ACCENT_VOICES,
        "rate": RATE_WPM, "pitch": PITCH, "cut_db": CUT_DB,
    }, sort_keys=True)
    return hashlib.sha256(settings.encode()).hexdigest()[:16]


def _cache_file(model_key: str, keyword, text: str) -> Path:
    name = hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
    return home() / "cache" / "spoken-templates" / _settings_key(model_key, keyword) / f"{name}.safetensors"


def _load(model_key: str, keyword, text: str) -> dict[str, np.ndarray] | None:
    """The word's stored templates: this machine's cache first, then the seed shipped with the package."""
    from safetensors.numpy import load_file

    path = _cache_file(model_key, keyword, text)
    try:
        stored = load_file(str(path))
        _touch(path)
    except Exception:  # absent, or torn by a crash (safetensors' own error type): try the seed
        seed = _seed(_settings_key(model_key, keyword))
        stored = seed.get(text, seed.get(text.lower()))  # "Yes" and "YES" sound as "yes" in espeak-ng
    return stored if stored is not None and _complete(stored, keyword) else None


def _complete(stored: dict[str, np.ndarray], keyword) -> bool:
    rows = {"english": 2 * len(ENGLISH_VOICES), "accents": len(ACCENT_VOICES)}
    if keyword is not None:
        rows["keyword"] = len(ENGLISH_VOICES) + len(ACCENT_VOICES)
    return set(stored) == set(rows) and all(stored[name].shape[0] == count for name, count in rows.items())


@lru_cache(maxsize=4)
def _seed(settings_key: str) -> dict[str, dict[str, np.ndarray]]:
    """Templates shipped for common spoken labels (`SEED_WORDS`), by word; empty unless they were
    made with exactly these settings and models (the file's metadata names its settings key)."""
    from safetensors import safe_open

    try:
        with safe_open(str(SEED_FILE), framework="numpy") as handle:
            if (handle.metadata() or {}).get("settings") != settings_key:
                return {}
            words: dict[str, dict[str, np.ndarray]] = {}
            for name in handle.keys():
                group, word = name.split("/", 1)
                rows = handle.get_tensor(name).astype(np.float32)
                words.setdefault(word, {})[group] = rows if group == "keyword" else unit(rows)
            return words
    except Exception:  # absent or unreadable: every word is synthesised as without a seed
        return {}


def write_seed(embed, model_key: str, keyword, words=SEED_WORDS, path: Path | None = None) -> Path:
    """Synthesise and encode `words` and store them as the package's seed (float16, ~33 KB per word).
    Run by `scripts/seed_spoken_templates.py` whenever the settings or a model change."""
    from safetensors.numpy import save_file

    tensors = {}
    for word in words:
        for group, rows in _synthesise_and_embed(embed, keyword, word).items():
            tensors[f"{group}/{word}"] = rows.astype(np.float16)
    path = Path(path or SEED_FILE)
    save_file(tensors, str(path), metadata={"settings": _settings_key(model_key, keyword), "words": " ".join(words)})
    _seed.cache_clear()
    return path


def _save(model_key: str, keyword, text: str, stored: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    path = _cache_file(model_key, keyword, text)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{id(stored)}.tmp")
        save_file(stored, str(temporary))
        temporary.replace(path)
        prune_cache(path.parent)
    except OSError:  # a read-only home: the templates still serve this process
        pass


def prune_cache(folder: Path, keep: int | None = None) -> int:
    """Delete the least recently used words beyond `keep` (default MAX_CACHED_WORDS) in one
    settings folder of the cache, so made-up labels cannot fill the disk; how many went."""
    keep = MAX_CACHED_WORDS if keep is None else keep
    entries = []
    for entry in os.scandir(folder):
        if entry.name.endswith(".safetensors"):
            try:
                entries.append((entry.stat().st_mtime_ns, entry.path))
            except OSError:
                continue
    if len(entries) <= keep:
        return 0
    entries.sort()
    removed = 0
    for _, path in entries[: len(entries) - keep]:
        try:
            os.unlink(path)
            removed += 1
        except OSError:
            pass
    return removed


def _touch(path: Path) -> None:
    """Mark a word as used (its file's mtime), for `prune_cache`'s least-recently-used order."""
    try:
        os.utime(path)
    except OSError:  # read-only home
        pass
