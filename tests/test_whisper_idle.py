"""Whisper frees itself after a while unused, so its threads stop slowing torch in the same process
(tests/test_expert_release.py measures the threads); a model in use is never freed under its caller,
and the next use loads it again."""
from __future__ import annotations

import io
import time

import numpy as np
import pytest

from sensorium.experts.whisper import Whisper
from sensorium.readers.payloads import SAMPLE_RATE

SILENT_SECOND = np.zeros(SAMPLE_RATE, np.float32)


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_an_unused_model_is_freed_and_loads_again():
    whisper = Whisper(idle_seconds=0.5)
    assert not whisper.loaded
    first = whisper.encode([SILENT_SECOND], window_seconds=1)
    assert whisper.loaded
    assert wait_until(lambda: not whisper.loaded, 10)
    again = whisper.encode([SILENT_SECOND], window_seconds=1)
    assert whisper.loaded and again.shape == first.shape
    np.testing.assert_allclose(again, first, atol=1e-4)  # the same weights came back


def test_a_model_in_use_or_used_often_is_kept_then_freed():
    whisper = Whisper(idle_seconds=1.0)
    with whisper.using() as model:
        time.sleep(2.5)  # longer than the idle time: the timer fires, finds a user, waits again
        assert whisper.loaded and model.feature_extractor(SILENT_SECOND).shape[0] == 80
    for _ in range(20):  # 2 s of use, 0.1 s apart
        assert whisper.model is not None
        time.sleep(0.1)
    assert whisper.loaded
    assert wait_until(lambda: not whisper.loaded, 10)


def test_no_idle_time_keeps_it_and_release_frees_it_at_once():
    whisper = Whisper(idle_seconds=0)
    assert whisper.model is not None
    time.sleep(1.0)
    assert whisper.loaded  # 0 means kept, not freed at once
    whisper.release()
    assert not whisper.loaded
    assert whisper.model is not None
    whisper.idle_seconds = 0.3  # an idle time set on a loaded model starts its timer
    assert wait_until(lambda: not whisper.loaded, 10)
    with pytest.raises(ValueError, match="idle_seconds"):
        Whisper(idle_seconds=-1)


def test_the_service_frees_the_speech_model_after_a_spoken_query(tmp_path):
    from fastapi.testclient import TestClient

    from sensorium.collection import Collection
    from sensorium.experts.tts import save_wav, synthesize
    from sensorium.serve.app import LOOPBACK_HOSTS, create_app

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "bicycle.txt").write_text("A red bicycle leaning on a fence by the river.")
    (notes / "recipe.txt").write_text("Whisk two eggs with flour and milk, then fry the pancakes in butter.")
    with Collection(tmp_path / "collection") as collection:
        collection.index(notes)
    save_wav(synthesize("a red bicycle by the river"), tmp_path / "query.wav")
    app = create_app(tmp_path / "collection", [notes], allowed_hosts=LOOPBACK_HOSTS, speech_idle_seconds=3)
    whisper = app.state.serve.experts.whisper
    spoken = (tmp_path / "query.wav").read_bytes()
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        reply = client.post("/api/v1/search", files={"file": ("query.wav", spoken, "audio/wav")}, data={"k": "2"})
        assert reply.status_code == 200, reply.text
        assert whisper.idle_seconds == 3  # (loaded by now, unless 3 s passed on a busy machine: not asserted)
        assert wait_until(lambda: not whisper.loaded, 20)
        again = client.post("/api/v1/search", files={"file": ("q.wav", io.BytesIO(spoken), "audio/wav")}, data={"k": "2"})
        assert again.status_code == 200, again.text
    found = [[hit["name"] for hit in answer.json()["results"]] for answer in (reply, again)]
    assert found[0][0] == "bicycle.txt" and found[1] == found[0], found  # heard, freed, loaded, heard alike
