"""Attaching an audio-text space: every sound window gets a learned vector from its stored "audio"
vector, a text query finds recordings through it (a sound without words included), files indexed
later get learned vectors too, detach restores search, and classify uses the audio head.

The space is trained here through the `sensorium align` job API (so the audio head sees the same
L2-normalised features at training and attach time) on espeak-synthesised words and two kinds of
synthetic non-speech sound; the collection holds other takes of each (other rate and pitch)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from sensorium import Collection

WORDS = ("guitar", "yellow", "umbrella")
SOUNDS = ("whistle", "rumble")  # no words in them: only the learned space can name them
RATE = 16000


def _sound(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A rising whistle (sine sweep ~1.5-3 kHz) or a low rumble (lowpassed noise + 60-90 Hz hum)."""
    seconds = rng.uniform(0.8, 1.4)
    t = np.arange(int(seconds * RATE)) / RATE
    if kind == "whistle":
        start, stop = rng.uniform(1400, 1800), rng.uniform(2600, 3200)
        wave = np.sin(2 * np.pi * (start * t + (stop - start) * t ** 2 / (2 * seconds)))
    else:
        noise = np.convolve(rng.standard_normal(t.size), np.ones(40) / 40, mode="same")
        wave = noise / np.abs(noise).max() + 0.6 * np.sin(2 * np.pi * rng.uniform(60, 90) * t)
    return (0.5 * wave / np.abs(wave).max()).astype(np.float32)


def _write(folder: Path, name: str, samples: np.ndarray) -> Path:
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.wav"
    soundfile.write(str(path), samples, RATE, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from sensorium.experts import ExpertConfig, tts

    from sensorium.align.job import extract, load_job, train_and_save

    root = tmp_path_factory.mktemp("attach-audio")
    rng = np.random.default_rng(0)
    rows = []
    for word in WORDS:  # 6 training takes per word
        for rate in (130, 160, 200):
            for pitch in (30, 70):
                path = _write(root / "train", f"{word}-{rate}-{pitch}", tts.synthesize(word, rate_wpm=rate, pitch=pitch).samples)
                rows.append((path, word))
    for kind in SOUNDS:
        for take in range(6):
            rows.append((_write(root / "train", f"{kind}-{take}", _sound(kind, rng)), kind))
    with open(root / "pairs.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip", "words", "label"])
        writer.writerows([(str(p), w, w) for p, w in rows])
    (root / "align.toml").write_text(
        '[pairs]\nmanifest = "pairs.csv"\naudio = "clip"\ntext = "words"\ngroup = "label"\n'
        '[train]\nloss = "infonce"\ndim = 32\nepochs = 40\nbatch_size = 5\nlr = 0.005\nseed = 0\n'
        '[features]\ncache = "cache"\n', encoding="utf-8")
    job = load_job(root / "align.toml")
    found, stats = extract(job)
    summary = train_and_save(job, found, root / "space", data_stats=stats)
    # the collection: other takes (rate 175, pitch 50; new random sounds)
    recordings = root / "recordings"
    for word in WORDS:
        _write(recordings, word, tts.synthesize(word, rate_wpm=175, pitch=50).samples)
    later = root / "later"
    _write(recordings, "whistle", _sound("whistle", rng))
    _write(later, "rumble", _sound("rumble", rng))
    collection = Collection(root / "collection", experts=ExpertConfig(ocr=False))
    assert collection.index(recordings).ok
    baseline = {q: _ranked(collection, q) for q in (*WORDS, "whistle")}
    yield root, collection, summary, baseline
    collection.close()


def _ranked(collection, query):
    return [(Path(h.path).stem, round(h.score, 6)) for h in collection.search(query, k=10)]


def _counts(collection):
    catalog = collection.catalog
    attached = collection.attached_space()
    return len(catalog.vector_ids("audio")), len(catalog.vector_ids(attached.name)), len(collection.store(attached.name))


def test_align_records_normalised_audio_input(setup):
    root, _, summary, _ = setup
    assert summary["input_norm"] == {"audio": "l2"} and summary["inputs"]["audio"] == ["audio"]
    assert summary["weight"] == 1.0  # audio-text default: no CV, w = 1 (job.py)


def test_attach_embeds_every_sound_window_and_text_finds_recordings(setup):
    root, collection, _, baseline = setup
    result = collection.attach_space(root / "space")
    attached = collection.attached_space()
    assert attached.item_heads == ["audio"]
    sounds, learned, in_ann = _counts(collection)
    assert sounds == learned == in_ann == result["embedded"] == len(WORDS) + 1
    # the stored learned vector is the audio head applied to the stored (unit) audio vector
    ids, vectors = collection.catalog.vectors_for(attached.name, collection.catalog.vector_ids("audio"))
    _, audio = collection.catalog.vectors_for("audio", ids)
    np.testing.assert_allclose(vectors, attached.space.embed("audio", audio.copy()), atol=1e-5)
    for word in WORDS:
        assert _ranked(collection, word)[0][0] == word
    hits = collection.search("whistle", k=3)
    assert Path(hits[0].path).stem == "whistle" and "learned space" in hits[0].why, hits[0].why
    # without the space the whistle (no words, no transcript) was not the top answer for "whistle"
    assert not baseline["whistle"] or baseline["whistle"][0][0] != "whistle"


def test_detach_restores_search(setup):
    root, collection, _, baseline = setup
    if collection.attached_space() is None:
        collection.attach_space(root / "space")
    assert collection.detach_space()
    assert collection.attached_space() is None
    assert not [s for s in collection.catalog.spaces() if s.startswith("learned-")]
    for query in WORDS:
        assert _ranked(collection, query) == baseline[query]


def test_files_indexed_later_get_learned_vectors(setup):
    root, collection, _, _ = setup
    if collection.attached_space() is None:
        collection.attach_space(root / "space")
    assert collection.index(root / "later").ok
    sounds, learned, in_ann = _counts(collection)
    assert sounds == learned == in_ann == len(WORDS) + 2
    assert Path(collection.search("rumble", k=1)[0].path).stem == "rumble"


def test_classify_an_audio_file_uses_the_audio_head(setup):
    from sensorium.classification import classify

    root, collection, _, _ = setup
    labels = [*WORDS, *SOUNDS]
    result = classify(root / "later" / "rumble.wav", labels, experts=collection.experts, space=root / "space")
    assert "audio head" in result.method and result.best == "rumble", result.as_dict()
    plain = classify(root / "later" / "rumble.wav", labels, experts=collection.experts)
    assert "audio head" not in plain.method


def test_a_space_trained_on_raw_audio_features_is_refused(setup, tmp_path):
    import json
    import shutil

    from sensorium.space.learned import AttachedSpace
    from sensorium.errors import ReadError

    root = setup[0]
    old = tmp_path / "old-space"
    shutil.copytree(root / "space", old, ignore=shutil.ignore_patterns("checkpoint*", "*.jsonl"))
    info = json.loads((old / "align.json").read_text())
    del info["input_norm"]
    (old / "align.json").write_text(json.dumps(info))
    with pytest.raises(ReadError, match="unnormalised"):
        AttachedSpace.load(old)
