"""Google's speech_embedding (openwakeword's ONNX files): a word said by another voice is nearest
to the same word, long and empty clips still get one vector, and a broken folder is named."""
from __future__ import annotations

import numpy as np
import pytest

from sensorium.errors import ModelError
from sensorium.experts.keyword import DIM, FILES, KeywordEmbedder
from sensorium.experts.spoken_templates import cut_at_word
from sensorium.experts.tts import synthesize

WORDS = ["seven", "three", "yes", "no", "stop", "go"]


@pytest.fixture(scope="module")
def embedder() -> KeywordEmbedder:
    return KeywordEmbedder()


def _unit(rows):
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def test_a_word_in_another_voice_is_nearest_to_the_same_word(embedder):
    """As the templates are used: each word said by two voices is matched, by its best cosine over
    two other reference voices, among the six words (12 trials, chance 1 in 6 each).

    Judged as a majority and a margin, not an exact argmax: espeak-ng varies slightly from one
    synthesis to the next, and "no" in en-us+f2 is only 0.01-0.09 nearer "no" than any other word.
    Measured over 40 runs: 12 of 12 right every time, mean margin (own word's cosine minus the best
    other word's) 0.57-0.60. Random vectors in place of the embedder (2,000 draws): at most 7 of
    12, 2 on average (P(>= 10 of 12) < 1e-6 at chance), mean margin at most 0.001."""
    voices = ("en-us", "en-gb", "en-gb+m5", "en-us+f2")
    said = {voice: embedder.embed([cut_at_word(synthesize(w, voice=voice, rate_wpm=140, pitch=60).samples)
                                   for w in WORDS])
            for voice in voices}
    centre = np.concatenate(list(said.values())).mean(axis=0)
    references = [_unit(said[voice] - centre) for voice in voices[:2]]
    right, margins, confused = 0, [], []
    own = np.eye(len(WORDS), dtype=bool)
    for voice in voices[2:]:
        similarity = np.maximum(*(_unit(said[voice] - centre) @ reference.T for reference in references))
        best = similarity.argmax(axis=1)
        right += int((best == np.arange(len(WORDS))).sum())
        confused += [(voice, WORDS[i], WORDS[j]) for i, j in enumerate(best) if i != j]
        margins += (similarity[own] - np.where(own, -np.inf, similarity).max(axis=1)).tolist()
    assert right >= 10, confused
    assert np.mean(margins) > 0.3, margins


def test_every_clip_gets_one_vector_whatever_its_length(embedder):
    sentence = synthesize("please turn the kitchen lights off now").samples  # longer than one window
    vectors = embedder.embed([sentence, np.zeros(0, np.float32), sentence[:4000]])
    assert vectors.shape == (3, DIM) and np.isfinite(vectors).all()
    assert np.array_equal(vectors, embedder.embed([sentence, np.zeros(0, np.float32), sentence[:4000]]))
    assert not np.allclose(vectors[0], vectors[2])


def test_a_folder_without_the_model_files_is_named(tmp_path):
    (tmp_path / FILES[0]).write_bytes(b"not a model")
    with pytest.raises(ModelError, match=str(tmp_path)) as error:
        KeywordEmbedder(tmp_path)
    assert FILES[1] in str(error.value)
    (tmp_path / FILES[1]).write_bytes(b"not a model either")
    with pytest.raises(ModelError, match="cannot load"):
        KeywordEmbedder(tmp_path).embed([np.zeros(1600, np.float32)])
