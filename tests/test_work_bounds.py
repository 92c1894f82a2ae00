"""Work a caller can bound: how many spoken labels one request may voice anew, stopping when the
caller leaves, and a template cache that cannot fill the disk.

The case behind them: `classify` with 60 made-up labels ran ~205 s of CPU voicing templates, went on
190 s after its client left, and left 60 files in the cache.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
import soundfile as sf

from sensorium.errors import Cancelled, QueryError
from sensorium.experts import spoken_templates, tts
from sensorium.progress import cancellable, check_cancelled, report


@pytest.fixture()
def clip(tmp_path):
    """A short spoken word: the clips spoken templates are built for."""
    path = tmp_path / "word.wav"
    tts.save_wav(tts.synthesize("marble", voice="en-us+m3", rate_wpm=170), path)
    return path


@pytest.fixture()
def counted_synthesis(monkeypatch):
    calls = []
    real = tts.synthesize

    def counting(text, *args, **kwargs):
        calls.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(tts, "synthesize", counting)
    return calls


def _cached_words() -> list[str]:
    from sensorium.paths import home

    root = home() / "cache" / "spoken-templates"
    return [name for _, _, names in os.walk(root) for name in names if name.endswith(".safetensors")]


def test_a_request_over_the_new_label_cap_is_refused_before_any_voicing(clip, counted_synthesis):
    from sensorium.classification import classify

    labels = "glorbax, quindle, sprocketeer, marble"
    before = _cached_words()
    with spoken_templates.new_words_at_most(3), pytest.raises(QueryError) as caught:
        classify(clip, labels)
    message = str(caught.value)
    assert "4 labels have no spoken templates on this machine yet (glorbax, quindle, sprocketeer, marble)" in message
    assert "at most 3 new ones" in message
    assert counted_synthesis == [] and _cached_words() == before
    # seeded words cost nothing, so a cap of 0 still classifies among them
    with spoken_templates.new_words_at_most(0):
        result = classify(clip, "yes, no, up, down, left, right")
    assert len(result.labels) == 6 and counted_synthesis == []


def test_work_stops_at_the_next_check_once_the_caller_has_left(clip, counted_synthesis):
    """The caller leaves once two voices of the first new word are synthesised: the next check (before
    the third voice, ~0.1 s later) raises Cancelled, and the half-voiced word is not cached."""
    from sensorium.classification import classify

    polls = []

    def should_stop() -> bool:
        polls.append(1)
        return len(counted_synthesis) >= 2

    before = _cached_words()
    with cancellable(should_stop), pytest.raises(Cancelled):
        classify(clip, "zorblat, quibbin, marble")
    assert len(counted_synthesis) == 2, counted_synthesis
    assert len(polls) >= 3  # the decoder's batches were checked too, before any voicing
    assert _cached_words() == before


def test_cancellation_is_per_context_and_report_checks_it():
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return True

    check_cancelled()  # nobody asked: nothing happens
    report("stage", 1, 2)
    with cancellable(stop):
        with pytest.raises(Cancelled):
            report("stage", 1, 2)
        with cancellable(None):  # an inner caller that does not cancel
            check_cancelled()
    check_cancelled()
    assert calls["n"] == 1


def test_speech_transcription_stops_between_segments(tmp_path):
    from sensorium.experts import Experts
    from sensorium.readers import read_audio

    sentences = [tts.synthesize(s).samples for s in (
        "The first sentence talks about the weather in the mountains.",
        "The second one is about a train that left the station late.",
        "A third sentence describes a small boat on a quiet lake.")]
    gap = np.zeros(16000 * 2, np.float32)
    sf.write(tmp_path / "three.wav", np.concatenate([sentences[0], gap, sentences[1], gap, sentences[2]]), 16000)
    audio = read_audio(tmp_path / "three.wav")
    speech = Experts().speech
    assert len(speech.transcribe(audio)) >= 2
    polls = []
    with cancellable(lambda: polls.append(1) or len(polls) > 1), pytest.raises(Cancelled):
        speech.transcribe(audio)
    assert len(polls) == 2


def test_the_template_cache_keeps_the_most_recently_used_words(tmp_path):
    folder = tmp_path / "settings"
    folder.mkdir()
    for index in range(10):
        path = folder / f"word{index}.safetensors"
        path.write_bytes(b"x")
        os.utime(path, ns=(10**18 + index * 10**9, 10**18 + index * 10**9))
    os.utime(folder / "word0.safetensors")  # used just now: kept although written first
    assert spoken_templates.prune_cache(folder, keep=4) == 6
    assert sorted(p.name for p in folder.iterdir()) == [
        "word0.safetensors", "word7.safetensors", "word8.safetensors", "word9.safetensors"]
    assert spoken_templates.MAX_CACHED_WORDS >= 1000


def test_the_service_stops_work_whose_client_left_and_caps_new_labels():
    """`serve.work.until_client_leaves`: work runs in a thread under the request's cancellation and
    the new-label cap; once the request reports its client gone, the work raises Cancelled at its
    next check and the call returns within a few polls."""
    import asyncio
    import threading

    from sensorium.serve import work as serve_work

    class Request:
        def __init__(self, gone_after_polls: int):
            self.polls, self.gone_after = 0, gone_after_polls

        async def is_disconnected(self) -> bool:
            self.polls += 1
            return self.polls > self.gone_after

    checks = []
    started = threading.Event()

    def endless() -> None:
        started.set()
        while True:
            checks.append(1)
            check_cancelled()
            time.sleep(0.01)

    request = Request(gone_after_polls=2)
    with pytest.raises(Cancelled):
        asyncio.run(serve_work.until_client_leaves(request, endless))
    assert started.is_set() and checks
    assert request.polls == 3  # polled until the client was gone, then the work ended on its own

    def new_labels() -> None:
        spoken_templates.build_templates(lambda clips: None, "model", [f"zz{i}blorp" for i in range(9)])

    with pytest.raises(QueryError, match=f"at most {serve_work.MAX_NEW_SPOKEN_LABELS} new ones"):
        asyncio.run(serve_work.until_client_leaves(Request(gone_after_polls=10**6), new_labels))
    assert asyncio.run(serve_work.until_client_leaves(Request(gone_after_polls=10**6), lambda: 42)) == 42


def test_the_service_stops_work_over_its_time_budget_with_a_503():
    import asyncio

    from sensorium.serve import work as serve_work
    from sensorium.serve.problems import Problem

    class Request:
        async def is_disconnected(self) -> bool:
            return False

    def endless() -> None:
        while True:
            check_cancelled()
            time.sleep(0.01)

    with pytest.raises(Problem) as caught:
        asyncio.run(serve_work.until_client_leaves(Request(), endless, budget_seconds=0.3))
    assert caught.value.status == 503 and "more than 0.3 s" in caught.value.detail
