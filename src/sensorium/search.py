"""Hybrid cross-modal search: vector similarity in each space plus lexical (FTS5) match.

A query becomes one vector per space it can reach:
- text  -> shared space (and the CLIP space when a collection has one), plus lexical terms;
- image -> its native EfficientNet space (image -> image and video frames) and, through the
           label bridge, the shared space (so a photo finds notes and spoken memos about it);
- audio -> its transcript, then as a text query.
Segment scores are cosine similarities plus a small lexical bonus; an item's score is that of its
best segment, whose time range and text explain the hit. A spoken segment keeps each word's time,
so a hit whose words match the query spans those words (`matched_span`), not the whole sentence:
a player starts at the words that were asked for.

With a learned space attached (`Collection.attach_space`), a text query also goes through the
space's text head, and every segment holding a learned vector (photos and shots through an image
head, sound windows through an audio head) scores `bridge (shared) cosine + w * learned cosine`,
w chosen when the space was trained; a sound window's bridge part is the speech over it (see
`_combine_learned`); w = 0 leaves search exactly as without the space.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import QueryError, ReadError
from .modality import ALL as MODALITIES
from .space.image_bridge import bridge_for
from .space.learned import AUDIO_HEAD, is_learned
from .space.segments import AUDIO, CLIP, IMAGE, PICTURE_SOURCES, SHARED, SOUND_SOURCES, SPEECH_SOURCES

STOPWORDS = frozenset(
    "a an and are as at be but by for from has have how i in is it its me my of on or our show "
    "so that the their this to was we were what when where which who why will with you your".split())
LEXICAL_WEIGHT = 0.15  # a full lexical match adds this much to a cosine similarity
CANDIDATES_PER_HIT = 8  # segments fetched from each space per requested hit
# a matched word span starts this much before its first word and ends as much after its last; Whisper's word
# starts already run ~0.2 s before the sound (benchmarks/quality/word_spans.py), so a player gets ~0.4 s of lead-in
SPAN_CONTEXT_SECONDS = 0.2
SPAN_GAP_SECONDS = 2.0  # matched words further apart than this are separate places in the sentence


@dataclass
class Hit:
    path: str
    modality: str
    score: float
    start: float | None
    end: float | None
    why: str
    source: str = ""
    item_id: int = 0
    segment_id: int = 0
    details: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The hit's modality under its older name (kept for callers written against it)."""
        return self.modality

    def as_dict(self) -> dict:
        return {"path": self.path, "modality": self.modality, "kind": self.modality, "score": round(self.score, 4),
                "start": self.start, "end": self.end, "why": self.why, "source": self.source}


@dataclass
class Query:
    """The vectors (per space) and lexical text a request resolved to."""

    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    lexical: str = ""
    described_as: str = ""  # what we understood, e.g. the transcript of a spoken query
    text_features: np.ndarray | None = None  # the text expert's embedding of a words-only query


def build_query(experts, text=None, image=None, audio=None) -> Query:
    if not any(q is not None and q != "" for q in (text, image, audio)):
        raise QueryError("give a text query, an image (--image) or an audio file (--audio)")
    query = Query()
    texts: list[str] = []
    if text:
        texts.append(str(text))
    if image is not None:
        payload = _read_query(image, "image")
        description = bridge_for(experts).describe([payload.pixels])[0]
        query.vectors[IMAGE] = description.native
        query.vectors[SHARED] = description.shared
        if experts.clip is not None:
            query.vectors[CLIP] = experts.clip.encode_images([payload.pixels])[0]
        query.described_as = description.text + (f'; reads "{description.ocr_text}"' if description.ocr_text else "")
    if audio is not None:
        payload = _read_query(audio, "audio")
        transcript = " ".join(s.text.strip() for s in experts.speech.transcribe(payload)).strip()
        if transcript:  # words: search by what was said
            texts.append(transcript)
            query.described_as = f'heard "{transcript}"'
        else:  # any other sound: recordings that sound alike (native audio vectors)
            query.vectors[AUDIO] = experts.sound.embed([payload.samples])[0]
            query.described_as = "a sound without speech"
    if texts:
        joined = " ".join(texts)
        vector = experts.query_vectors([joined])[0]
        if SHARED not in query.vectors:
            query.text_features = vector
        if SHARED in query.vectors:  # image and words together: both count
            vector = _unit(vector + query.vectors[SHARED])
        query.vectors[SHARED] = vector
        if experts.clip is not None:
            clip_text = experts.clip.encode_texts([joined])[0]
            query.vectors[CLIP] = _unit(clip_text + query.vectors[CLIP]) if CLIP in query.vectors else clip_text
        query.lexical = " ".join(w for w in joined.split() if w.lower().strip(".,!?;:\"'") not in STOPWORDS)
    return query


def _read_query(path, modality: str):
    from .readers import read

    try:
        payload = read(Path(path))
    except ReadError as error:
        raise QueryError(f"cannot read {modality} query {error.path}: {error.reason}") from None
    if modality == "audio" and payload.modality == "video" and payload.audio is not None:
        return payload.audio
    if payload.modality != modality:
        raise QueryError(f"{path}: expected an {modality} file, got {payload.modality}")
    return payload


def search(collection, text=None, image=None, audio=None, modality: str | None = None, k: int = 10,
           kind: str | None = None) -> list[Hit]:
    """Top-k hits, one per item; `modality` keeps only items of one modality (`kind` is its older name)."""
    modality = modality if modality is not None else kind
    if modality is not None and modality not in MODALITIES:
        raise QueryError(f"unknown modality {modality!r}: choose one of {', '.join(MODALITIES)}")
    if k < 1:
        raise QueryError("k must be at least 1")
    query = build_query(collection.experts, text=text, image=image, audio=audio)
    catalog = collection.catalog
    wanted = {modality} if modality else None
    allowed = _modality_filter(catalog, wanted)
    fetch = max(k * CANDIDATES_PER_HIT, 50)

    scores: dict[int, float] = {}
    space_of: dict[int, str] = {}
    spaces = collection.spaces()  # reads the attached space's record: once per query, not per space
    for space, vector in query.vectors.items():
        if space not in spaces:
            continue
        for segment_id, similarity in collection.store(space).search(vector, fetch, allowed=allowed):
            if similarity > scores.get(segment_id, -np.inf):
                scores[segment_id] = float(similarity)
                space_of[segment_id] = space
    _combine_learned(collection, query, fetch, allowed, scores, space_of)
    lexical: dict[int, float] = {}
    if query.lexical:
        matches = catalog.lexical(query.lexical, fetch, modalities=wanted)
        top = max((s for _, s in matches), default=0.0)
        for segment_id, bm25 in matches:
            lexical[segment_id] = bm25 / top if top > 0 else 0.0
    for segment_id, bonus in lexical.items():
        scores[segment_id] = scores.get(segment_id, 0.0) + LEXICAL_WEIGHT * bonus

    if not scores:
        return []
    ranked = sorted(scores.items(), key=lambda pair: pair[1], reverse=True)
    rows = {row.id: row for row in catalog.segments([sid for sid, _ in ranked[: fetch * 2]])}
    hits: list[Hit] = []
    seen_items: set[int] = set()
    for segment_id, score in ranked:
        row = rows.get(segment_id)
        if row is None or row.item_id in seen_items:
            continue
        if wanted and row.modality not in wanted:
            continue
        seen_items.add(row.item_id)
        start, end = matched_span(row, query.lexical, _words_around(catalog, row)) or (row.start, row.end)
        hits.append(Hit(path=row.path, modality=row.modality, score=score, start=start, end=end,
                        why=explain(row, space_of.get(segment_id), lexical.get(segment_id), query, start, end),
                        source=row.source, item_id=row.item_id, segment_id=segment_id,
                        details={"segment_start": row.start, "segment_end": row.end}))
        if len(hits) == k:
            break
    return hits


def _combine_learned(collection, query: Query, fetch: int, allowed, scores: dict, space_of: dict) -> None:
    """Rescore segments that have learned vectors: bridge cosine + w * learned cosine (exact, from
    the catalog's vectors, for the union of both spaces' candidates). No-op without a space or w = 0.

    The sound rule: a sound window (audio head) has no shared vector of its own; its bridge part is
    the best shared cosine of the same recording's speech segments overlapping it in time, and 0 for
    a sound without words. So a recording scores transcript + w * sound, a recording without words
    w * sound, and w = 0 leaves every item's score as it was without the space."""
    attached = collection.attached_space()
    if attached is None or attached.weight <= 0 or query.text_features is None or SHARED not in query.vectors:
        return
    catalog = collection.catalog
    learned_query = attached.embed_text(query.text_features)[0]
    hits = collection.store(attached.name).search(learned_query, fetch, allowed=allowed)
    candidates = {sid for sid, _ in hits} | {sid for sid, space in space_of.items() if space == SHARED}
    spans = []
    if AUDIO_HEAD in attached.item_heads and candidates:  # recordings: their sound windows and the speech over them
        recording = SPEECH_SOURCES + SOUND_SOURCES
        items = {row.item_id for row in catalog.segments(sorted(candidates)) if row.source in recording}
        spans = catalog.item_segments(items, recording)
        candidates |= {span[0] for span in spans if span[4] in SOUND_SOURCES}
    ids, learned = catalog.vectors_for(attached.name, sorted(candidates))
    if not len(ids):
        return
    bridge = _cosines(*catalog.vectors_for(SHARED, ids), query.vectors[SHARED])
    bridge.update(_speech_over_sounds(catalog, spans, query.vectors[SHARED], set(bridge)))
    combined = np.asarray([bridge.get(i, 0.0) for i in ids.tolist()]) + attached.weight * (learned @ learned_query)
    for segment_id, score in zip(ids.tolist(), combined.tolist()):
        other = scores.get(segment_id, -np.inf) if space_of.get(segment_id) not in (None, SHARED) else -np.inf
        if score >= other:
            scores[segment_id] = float(score)
            space_of[segment_id] = attached.name


def _speech_over_sounds(catalog, spans, query_vector: np.ndarray, skip: set) -> dict[int, float]:
    """{sound window id: best shared cosine of its recording's speech overlapping it in time}."""
    speech = [span for span in spans if span[4] in SPEECH_SOURCES]
    if not speech:
        return {}
    similarity = _cosines(*catalog.vectors_for(SHARED, [span[0] for span in speech]), query_vector)
    by_item: dict[int, list[tuple[float, float, float]]] = {}
    for sid, item, start, end, _ in speech:
        if sid in similarity:
            by_item.setdefault(item, []).append((start, end, similarity[sid]))
    out = {}
    for sid, item, start, end, source in spans:
        if source in SOUND_SOURCES and sid not in skip:
            over = [score for s, e, score in by_item.get(item, ()) if s <= end and e >= start]
            if over:
                out[sid] = max(over)
    return out


def _cosines(ids: np.ndarray, matrix: np.ndarray, vector: np.ndarray) -> dict[int, float]:
    return dict(zip(ids.tolist(), (matrix @ vector).tolist())) if len(ids) else {}


def matched_span(row, lexical: str, words=None) -> tuple[float, float] | None:
    """(start, end) around the words of a spoken segment that match the query's terms, with a little
    context; None when the segment has no word times or none of its words match.

    `words` defaults to the segment's own; a caller may add its neighbours' (Whisper may end a
    segment in the middle of the words asked for). Words match when they are equal after
    lower-casing and a light stemming ("launches" ~ "launch"). Matched words further apart than
    `SPAN_GAP_SECONDS` are separate places; the one matching the most distinct terms wins, the one
    inside the hit's own segment on a tie, then the earliest."""
    own = getattr(row, "words", None) or []
    words = own if words is None else words
    if not words or not lexical or row.source not in SPEECH_SOURCES:
        return None
    terms = {_stem(t) for t in lexical.split()} - {""}
    matched = [(float(start), float(end), stem) for start, end, word in words
               if (stem := _stem(word)) in terms]
    if not matched:
        return None
    places: list[list[tuple[float, float, str]]] = [[matched[0]]]
    for word in matched[1:]:
        if word[0] - places[-1][-1][1] > SPAN_GAP_SECONDS:
            places.append([word])
        else:
            places[-1].append(word)
    inside = {(float(start), float(end)) for start, end, _ in own}
    best = max(places, key=lambda place: (len({stem for *_, stem in place}),
                                          any((start, end) in inside for start, end, _ in place), -place[0][0]))
    start = max(0.0, best[0][0] - SPAN_CONTEXT_SECONDS)
    end = best[-1][1] + SPAN_CONTEXT_SECONDS
    if row.end is not None:
        end = min(end, max(float(row.end), best[-1][1]))
    return round(start, 3), round(end, 3)


def _words_around(catalog, row) -> list | None:
    """The words of a spoken hit's segment and of its item's speech segments within
    `SPAN_GAP_SECONDS` of it, in time order; None for other segments (they have no words)."""
    if row.source not in SPEECH_SOURCES or row.start is None or not row.words:
        return None
    near = [span[0] for span in catalog.item_segments([row.item_id], SPEECH_SOURCES)
            if span[3] >= row.start - SPAN_GAP_SECONDS and span[2] <= row.end + SPAN_GAP_SECONDS]
    words = [word for segment in catalog.segments(near) for word in segment.words]
    return sorted(words) or None


def _stem(word: str) -> str:
    """Lower-case, without surrounding punctuation or a common English suffix: enough to match a
    query word with the same word said in another form."""
    word = word.lower().strip(".,!?;:\"'()[]{}-—–…")
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def explain(row, space: str | None, lexical: float | None, query: Query,
            start: float | None = None, end: float | None = None) -> str:
    """A short reason a person can check: what matched, and where in time (`start`-`end` when the
    hit spans only some of the segment's words)."""
    parts = []
    start = row.start if start is None else start
    end = row.end if end is None else end
    when = f" at {_clock(start)}-{_clock(end)}" if start is not None else ""
    if row.source in SPEECH_SOURCES:
        parts.append(f'said "{_snippet(row.text)}"{when}')
    elif row.source in PICTURE_SOURCES:
        labels = ", ".join(name for name, _ in row.labels[:4]) if row.labels else row.text
        parts.append(f"looks like {labels}{when}")
        if getattr(row, "ocr", ""):
            parts.append(f'reads "{_snippet(row.ocr, 60)}"')
    elif row.source in SOUND_SOURCES:
        learned = is_learned(space)
        parts.append(f"{'sound matches the words' if learned else 'sounds like the query'}{when}")
    else:
        parts.append(f'text "{_snippet(row.text)}"')
    if space == IMAGE:
        parts.append("visually similar")
    elif is_learned(space):
        parts.append("learned space")
    if lexical:
        parts.append("words match")
    if query.described_as:
        parts.append(f"query: {query.described_as}")
    return "; ".join(parts)


def _modality_filter(catalog, wanted):
    """The sorted ids of the wanted modalities' segments (cached until the catalog changes), which the
    vector store turns into a binary-search predicate."""
    if not wanted:
        return None
    return catalog.segment_ids_cached(wanted)


def _snippet(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(float(seconds), 60)
    return f"{int(minutes)}:{secs:04.1f}"


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32) if norm > 0 else vector
