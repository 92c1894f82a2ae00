"""Zero-shot classification over the shared space: rank free-text labels for any file.

- image: the image's shared-space vector against label prompts (label bridge);
- audio: each label is scored against the sound by the speech decoder (teacher-forced
  likelihood), far more reliable for isolated spoken words than a free transcription;
- video: the mean of its shots' vectors, combined with spoken-label scores of its sound track;
- text: the note's embedding against the labels' embeddings.

With a learned space (`space=`, the output of `sensorium align` or a collection's attached one),
image and video-frame scores become bridge cosine + w * learned cosine, as in search; a space
with an audio head also scores the sound (its windows' native vectors through the audio head,
averaged) against the labels through its text head, added to the spoken-label log-probabilities
as w * learned cosine / temperature (a product of the two experts' opinions).

With a calibration profile (`sensorium calibrate`, `sensorium.trust.profile`), the probabilities are
temperature-scaled, and a result can carry a label set with a coverage guarantee and a decision
that abstains ("uncertain") when the set holds more than one label (`calibrated`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import QueryError, ReadError, SensoriumError

PROMPTS = ("a photo of a {}.", "a picture of {}.", "{}")
IMAGE_TEMPERATURE = 0.02  # softmax temperature over cosine similarities
SHORT_CLIP_SECONDS = 3.0  # up to this long, a clip is treated as a spoken word or two
SPOKEN_METHOD = "spoken-label likelihood"
SPOKEN_DETAIL = f"{SPOKEN_METHOD} (Whisper's decoder + spoken templates)"


@dataclass
class LabelScore:
    label: str
    score: float  # probability over the given labels


@dataclass
class Classification:
    path: str
    modality: str
    labels: list[LabelScore]
    method: str
    details: dict = field(default_factory=dict)
    prediction_set: list[str] | None = None  # labels holding the truth at `confidence` (with a calibration)
    confidence: float | None = None  # the coverage `prediction_set` was made for
    decision: str | None = None  # the answer, or "uncertain", when abstention was asked for

    @property
    def best(self) -> str:
        return self.labels[0].label

    def as_dict(self) -> dict:
        out = {"path": self.path, "modality": self.modality, "method": self.method,
               "labels": [{"label": s.label, "score": round(s.score, 4)} for s in self.labels]}
        if self.prediction_set is not None:
            out.update(prediction_set=self.prediction_set, confidence=self.confidence)
        if self.decision is not None:
            out["decision"] = self.decision
        return out


def clean_labels(labels) -> list[str]:
    if isinstance(labels, str):
        labels = labels.split(",")
    cleaned = []
    for label in labels or []:
        label = str(label).strip()
        if label and label not in cleaned:
            cleaned.append(label)
    if len(cleaned) < 2:
        raise QueryError("labels: give at least two distinct, non-empty labels")
    return cleaned


def classify(path: str | Path, labels, experts=None, space=None) -> Classification:
    """Rank `labels` (a list or comma-separated string) for the file at `path`.

    `space`: an AttachedSpace, or a folder (a `sensorium align` output or a collection with one
    attached) whose learned space also scores images."""
    labels = clean_labels(labels)
    experts = experts or _default_experts()
    space = load_space(space)
    payload = _read(path)
    probs, method = _rank(payload, labels, experts, space)
    return _result(path, payload.modality, method, labels, probs)


@dataclass
class BatchClassification:
    results: list[Classification]
    failures: list[tuple[str, str]]  # (file, reason) for each file that could not be classified

    def as_dict(self) -> dict:
        return {"results": [r.as_dict() for r in self.results],
                "failures": [{"path": p, "reason": r} for p, r in self.failures]}


def classify_many(paths, labels, experts=None, space=None, together: bool = False,
                  progress=None) -> BatchClassification:
    """Classify several files with the same labels; a file that cannot be read is reported, not fatal.

    With `together`, short spoken clips (the spoken-label method) also hear from the clips in the
    batch that sound most like them (`sensorium.space.agreement.agree`): on FSDD this lifts the hardest
    speaker from 0.956 per clip to 0.958-0.972 in batches of 100-500 clips, and changes little in
    small batches of unrelated clips. Images, videos, texts and longer speech are scored alone either way.
    `progress(done, total)` is called after each file.
    """
    from .space.agreement import agree

    labels = clean_labels(labels)
    experts = experts or _default_experts()
    space = load_space(space)
    paths = list(paths)
    results, voters, sounds, failures = [], [], [], []
    for done, path in enumerate(paths, 1):
        try:
            payload = _read(path)
            probs, method = _rank(payload, labels, experts, space)
            results.append(_result(path, payload.modality, method, labels, probs))
            if together and payload.modality == "audio" and method.startswith(SPOKEN_METHOD):
                voters.append((len(results) - 1, probs))
                sounds.append(experts.sound.embed([payload.samples])[0])  # computed while scoring: remembered
        except SensoriumError as error:  # unreadable, undecodable or a model failure: this file only
            failures.append((str(path), str(error)))
        if progress is not None:
            progress(done, len(paths))
    if len(voters) >= 2:
        agreed = np.exp(agree(np.log(np.maximum(np.stack([p for _, p in voters]), 1e-300)), np.stack(sounds)))
        for (index, _), probs in zip(voters, agreed):
            alone = results[index]
            results[index] = _result(alone.path, alone.modality,
                                     f"{alone.method} + agreement with similar clips among {len(voters)}", labels, probs)
    return BatchClassification(results, failures)


def calibrated(result: Classification, profile, confidence: float | None = None, abstain: bool = False,
               per_label: bool = False, min_confidence: float | None = None) -> Classification:
    """`result` under a calibration profile (`sensorium.trust.profile.CalibrationProfile`): temperature-
    scaled probabilities; with `confidence`, the conformal label set (per label with `per_label`);
    with `abstain`, a decision that is "uncertain" unless the set at `confidence` (0.9 when not
    given) holds a single label whose calibrated probability reaches `min_confidence`."""
    from .trust.profile import DEFAULT_CONFIDENCE

    given = [score.label for score in result.labels]
    raw = np.array([result.labels[i].score for i in profile.order(given)])
    probs = profile.calibrate(raw)[0]
    out = _result(result.path, result.modality, f"{result.method}, calibrated (T = {profile.temperature:.3g})",
                  profile.labels, probs)
    out.details = dict(result.details)
    if confidence is not None or abstain:
        level = confidence if confidence is not None else DEFAULT_CONFIDENCE
        (decision,) = profile.decide(raw[None, :], level, mondrian=per_label, min_confidence=min_confidence)
        out.prediction_set, out.confidence = decision.candidates, level
        if abstain:
            out.decision = decision.as_dict()["decision"]
    return out


def _read(path):
    from .readers import read

    try:
        return read(Path(path))
    except ReadError as error:
        raise QueryError(f"cannot classify {error.path}: {error.reason}") from None


def _rank(payload, labels: list[str], experts, space) -> tuple[np.ndarray, str]:
    """Probabilities over `labels` for one decoded file, and how they were reached."""
    modality = payload.modality
    if modality == "image":
        return _visual(experts, [payload.pixels], labels, space), "label bridge (image -> shared space)" + _with(space, "image")
    if modality == "audio":
        return _audio(experts, payload, labels, space)
    if modality == "video":
        parts = []
        if payload.frames:
            parts.append(_visual(experts, [f.pixels for f in payload.frames], labels, space))
        if payload.audio is not None:
            parts.append(_audio(experts, payload.audio, labels, space)[0])
        return np.mean(parts, axis=0), (f"frames (label bridge{_with(space, 'image')}) + sound track "
                                        f"(spoken-label likelihood{_with(space, 'audio')})")
    text_vector = experts.text.encode([payload.text])[0]
    return _softmax(experts.text.encode(labels) @ text_vector / IMAGE_TEMPERATURE), "text embedding"


def _result(path, modality: str, method: str, labels: list[str], probs: np.ndarray) -> Classification:
    order = np.argsort(-probs)
    return Classification(path=str(path), modality=modality, method=method,
                          labels=[LabelScore(labels[i], float(probs[i])) for i in order])


def _default_experts():
    from .experts import default_experts

    return default_experts()


def load_space(space):
    """None, an AttachedSpace, a space folder, or a collection folder -> AttachedSpace or None."""
    if space is None or not isinstance(space, (str, Path)):
        return space
    from .space.learned import AttachedSpace

    folder = Path(space).expanduser()
    if (folder / "collection.json").is_file():
        from .collection import Collection

        with Collection(folder) as collection:
            attached = collection.attached_space()
        if attached is None:
            raise QueryError(f"--space {folder}: this collection has no attached space")
        return attached
    try:
        return AttachedSpace.load(folder)
    except ReadError as error:
        raise QueryError(f"--space {error.path}: {error.reason}") from None


def _uses(space, head: str) -> bool:
    """Whether `space` takes part in scoring what its `head` reads (w = 0: the space adds nothing)."""
    return space is not None and space.weight > 0 and head in space.item_heads


def _with(space, head: str) -> str:
    return f" + {space.weight:g} x learned space" if _uses(space, head) else ""


def _visual(experts, images: list, labels: list[str], space=None) -> np.ndarray:
    from .space.image_bridge import bridge_for

    descriptions = bridge_for(experts).describe(images)
    image_vector = _mean_unit(np.stack([d.shared for d in descriptions]))
    prompts = [template.format(label) for label in labels for template in PROMPTS]
    text = experts.query_vectors(prompts)
    prompt_vectors = _rows_unit(text.reshape(len(labels), len(PROMPTS), -1).mean(axis=1))
    scores = prompt_vectors @ image_vector
    if _uses(space, "image"):
        learned_image = _mean_unit(space.embed_descriptions(descriptions))
        learned_prompts = _rows_unit(space.embed_text(text).reshape(len(labels), len(PROMPTS), -1).mean(axis=1))
        scores = scores + space.weight * (learned_prompts @ learned_image)
    return _softmax(scores / IMAGE_TEMPERATURE)


def _mean_unit(vectors: np.ndarray) -> np.ndarray:
    mean = vectors.mean(axis=0)
    return mean / (np.linalg.norm(mean) or 1.0)


def _rows_unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def _audio(experts, audio, labels: list[str], space=None) -> tuple[np.ndarray, str]:
    """Short clips (a word or two) are scored label by label against the sound; longer speech
    is transcribed and its meaning compared with the labels'. A space with an audio head adds its
    opinion of the sound itself (which also serves recordings without words)."""
    if audio.duration <= SHORT_CLIP_SECONDS:
        probs, method = _spoken(experts, audio, labels), SPOKEN_DETAIL
    else:
        transcript = " ".join(s.text.strip() for s in experts.speech.transcribe(audio)).strip()
        if len(transcript.split()) <= 3:
            probs, method = _spoken(experts, audio, labels), SPOKEN_DETAIL
        else:
            vector = experts.text.encode([transcript])[0]
            probs = _softmax(experts.text.encode(labels) @ vector / IMAGE_TEMPERATURE)
            method = "transcript meaning"
    if not _uses(space, "audio"):
        return probs, method
    learned = _learned_sound(experts, audio, labels, space)
    if learned is None:  # silence: no window to embed
        return probs, method
    logits = np.log(np.maximum(probs, 1e-300)) + space.weight * learned / IMAGE_TEMPERATURE
    return _softmax(logits), f"{method} + {space.weight:g} x learned space (audio head)"


def _learned_sound(experts, audio, labels: list[str], space) -> np.ndarray | None:
    """Learned cosine of each label with the sound: its windows' native vectors (as a collection
    stores them) through the audio head, averaged; label prompts through the text head."""
    from .space.embed import Embedder

    windows = Embedder(experts).embed_sound(audio)
    if not windows:
        return None
    from .space.segments import AUDIO

    sound = _mean_unit(space.embed_sounds(np.stack([w.vectors[AUDIO] for w in windows])))
    text = experts.query_vectors(labels)
    return space.embed_text(text) @ sound


def _spoken(experts, audio, labels: list[str]) -> np.ndarray:
    return _softmax(np.asarray(experts.speech.score_candidates(audio, labels), dtype=np.float64))


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()
