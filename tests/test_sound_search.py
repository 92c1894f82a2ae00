"""Any sound, not only speech, gets native audio vectors: a recording without words is found by an
example recording (a different take of the same kind of sound), and speech still searches by meaning."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmarks.common.sounds import MELODY, RATE, engine, plucked, rain


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    from sensorium import Collection
    from sensorium.experts.tts import save_wav, synthesize

    root = tmp_path_factory.mktemp("sounds")
    media = root / "media"
    media.mkdir()
    sf.write(media / "guitar_tune.wav", plucked(MELODY, seed=0), RATE)
    sf.write(media / "rain_on_roof.wav", rain(6, seed=1), RATE)
    sf.write(media / "engine_idle.wav", engine(6, seed=3), RATE)
    save_wav(synthesize("Remember to buy milk and fresh bread on the way home."), media / "memo.wav")
    queries = root / "queries"
    queries.mkdir()
    sf.write(queries / "tune.wav", plucked(MELODY[3:12], seed=5, detune=1.03), RATE)  # another take, part of it
    sf.write(queries / "rain.wav", rain(3, seed=9), RATE)
    collection = Collection(root / "col")
    report = collection.index(media)
    assert report.ok, report.failed
    yield collection, queries
    collection.close()


@pytest.mark.parametrize("query, expected", [("tune.wav", "guitar_tune.wav"), ("rain.wav", "rain_on_roof.wav")])
def test_a_sound_finds_the_recording_that_sounds_alike(sounds, query, expected):
    collection, queries = sounds
    hits = collection.search(audio=queries / query, k=3)
    assert hits, "a sound query should find recordings"
    assert Path(hits[0].path).name == expected, [(Path(h.path).name, round(h.score, 3)) for h in hits]
    assert "sounds like the query" in hits[0].why and "without speech" in hits[0].why
    assert hits[0].start is not None and hits[0].end > hits[0].start


def test_every_recording_has_sound_vectors_and_speech_keeps_its_words(sounds):
    collection, _ = sounds
    catalog = collection.catalog
    rows = catalog.segments(catalog.segment_ids(["audio"]))
    by_file: dict[str, set[str]] = {}
    for row in rows:
        by_file.setdefault(Path(row.path).name, set()).add(row.source)
    assert all("sound" in sources for sources in by_file.values()), by_file
    assert "speech" in by_file["memo.wav"]
    assert len(catalog.vector_ids("audio")) == sum(1 for r in rows if r.source == "sound")
    hits = collection.search(text="groceries to pick up", k=1)
    assert Path(hits[0].path).name == "memo.wav"


DRUM_KITS = Path("/usr/share/hydrogen/data/drumkits")


@pytest.mark.skipif(not DRUM_KITS.is_dir(), reason="real drum recordings need `make bench-data` (Debian hydrogen-drumkits)")
def test_real_drum_hits_are_nearest_to_the_same_drum_in_other_kits():
    """Recorded kicks, snares, hi-hats and cymbals from 13 kits (one hit of each per kit): a hit's
    nearest neighbour among the OTHER kits' hits is mostly the same kind of drum (about 0.7 here;
    four kinds, so about 0.3 by chance)."""
    import importlib.util

    from sensorium.experts import Experts
    from sensorium.readers import read

    spec = importlib.util.spec_from_file_location(
        "drum_sounds", Path(__file__).resolve().parents[1] / "benchmarks" / "quality" / "drum_sounds.py")
    drums = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(drums)
    first: dict[tuple[str, str], Path] = {}
    for kit, family, path in drums.kit_samples(DRUM_KITS):
        if family in ("kick", "snare", "hi-hat", "cymbal"):
            first.setdefault((kit, family), path)
    kits = np.array([kit for kit, _ in first])
    families = np.array([family for _, family in first])
    assert len(first) >= 30 and len(set(kits)) >= 10, "the package's kits changed"
    sound = Experts().sound
    vectors = np.concatenate([sound.embed([read(path).samples]) for path in first.values()])
    similarity = vectors @ vectors.T
    similarity[kits[:, None] == kits[None, :]] = -np.inf  # only other kits' hits
    nearest = families[similarity.argmax(axis=1)]
    assert np.mean(nearest == families) >= 0.55, list(zip(kits, families, nearest))
