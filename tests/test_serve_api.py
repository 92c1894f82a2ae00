"""`sensorium serve` end to end: a real uvicorn process over a small sample collection, indexed
through the job API; every endpoint, the auth and path-confinement rules (items indexed from outside
the roots, files deleted or swapped for links since indexing), uploads of every modality, Range, SSE,
cancel, the 409 for a second job, problem documents, metrics, a graceful SIGTERM and the CLI's refusals.

No test depends on timing: a job that must be caught mid-way is held at a chosen file by a read gate
(`helpers.serve.ReadGate`, a hook only the test server loads), and waits are bounded only to end a
failing test, never to measure speed."""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import stat
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="fastapi is not installed")
pytest.importorskip("uvicorn", reason="uvicorn is not installed")

from helpers.serve import (ReadGate, free_port, multipart, mux_video, read_events, request, run_cli,  # noqa: E402
                           start_server, stop_server, wait_for_text)

LIBRARY = ["photos/cat.jpg", "photos/coffee.png", "photos/scanned_page.png", "voice_memos/shopping_list.wav",
           "video/cat_and_rocket.mp4", "notes/cat_care.md"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A served root holding a `library` (indexed once, through the API) and `more` recordings
    (for cancel / 409 / SIGTERM), a folder outside the root, a symlink escaping the root, and the
    read gate that holds a job at a chosen recording."""
    from sensorium.demo.sample_data import build_sample_folder

    sample = tmp_path_factory.mktemp("sample")
    build_sample_folder(sample)
    root = tmp_path_factory.mktemp("root")
    for relative in LIBRARY:
        (root / "library" / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(sample / relative, root / "library" / relative)
    (root / "more").mkdir()
    for index in range(8):
        source = sample / ("voice_memos/meeting_moved.flac" if index % 2 else "voice_memos/shopping_list.wav")
        shutil.copy2(source, root / "more" / f"memo_{index}{source.suffix}")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.txt").write_text("the secret is not for clients")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    collection = tmp_path_factory.mktemp("collection")
    log = tmp_path_factory.mktemp("log") / "server.log"
    gate = ReadGate(tmp_path_factory.mktemp("gate"))
    process, base = start_server(collection, [root], log, gate=gate)
    token = (collection / "serve.token").read_text().strip()
    site = {"base": base, "root": root, "outside": outside, "collection": collection, "token": token,
            "process": process, "sample": sample, "log": log, "gate": gate}
    reply = request(base + "/api/v1/jobs/index", "POST", json_body={"folder": "library"}, headers=_auth(token))
    assert reply.status == 202, reply.body
    site["first_job"] = reply.json()
    site["first_events"] = read_events(base + reply.json()["events_url"])
    yield site
    gate.release()
    stop_server(process)


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _problem(reply, status: int) -> dict:
    assert reply.status == status, (reply.status, reply.body[:300])
    assert reply.headers["content-type"].startswith("application/problem+json")
    body = reply.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    assert "Traceback" not in reply.body.decode()
    return body


def _hits(site, q: str, **params) -> list[dict]:
    from urllib.parse import urlencode

    reply = request(f"{site['base']}/api/v1/search?{urlencode({'q': q, **params})}")
    assert reply.status == 200, reply.body
    return reply.json()["results"]


def _item_id(site, relative: str) -> int:
    name = Path(relative).name
    for hit in _hits(site, Path(relative).stem.replace("_", " "), k=20):
        if hit["name"] == name:
            return hit["item_id"]
    raise AssertionError(f"{relative} not found by its name")


# --- indexing through the API, with progress events ------------------------------------------

def test_index_job_streams_progress_then_ends_done(site):
    events = site["first_events"]
    names = [name for name, _ in events]
    assert names[-1] == "end" and names.count("end") == 1 and "progress" in names
    final = events[-1][1]
    assert final["state"] == "done", final
    assert final["report"]["added"] == len(LIBRARY) and final["report"]["failed"] == []
    assert final["total"] == len(LIBRARY) and final["done"] == len(LIBRARY)
    done_counts = [data["done"] for _, data in events]
    assert done_counts == sorted(done_counts)  # progress only moves forward
    assert any(data["current"].startswith("library/") for _, data in events)  # paths shown relative to the root
    status = request(f"{site['base']}/api/v1/jobs/{site['first_job']['id']}").json()
    assert status["state"] == "done"


def test_token_file_is_private_and_writes_need_it(site):
    mode = stat.S_IMODE(os.stat(site["collection"] / "serve.token").st_mode)
    assert mode == 0o600
    url = site["base"] + "/api/v1/jobs/index"
    _problem(request(url, "POST", json_body={"folder": "library"}), 401)
    _problem(request(url, "POST", json_body={"folder": "library"}, headers=_auth("x" * 43)), 401)
    _problem(request(url, "POST", json_body={"folder": "library"}, headers={"Authorization": site["token"]}), 401)
    _problem(request(f"{site['base']}/api/v1/jobs/{site['first_job']['id']}", "DELETE"), 401)


@pytest.mark.parametrize("folder", ["../", "library/../../", "..", "%2e%2e%2f", "%2e%2e/%2e%2e", "escape",
                                    "escape/", "/etc", "OUTSIDE", "library/\x00", "no/such/folder"])
def test_index_refuses_paths_outside_the_roots(site, folder):
    folder = str(site["outside"]) if folder == "OUTSIDE" else folder
    reply = request(site["base"] + "/api/v1/jobs/index", "POST", json_body={"folder": folder},
                    headers=_auth(site["token"]))
    body = _problem(reply, 403)
    assert "not allowed" in body["title"].lower()
    assert request(site["base"] + "/api/v1/health").json()["job"] is None  # nothing started


def test_url_encoded_traversal_never_reaches_files(site):
    for path in ["/api/v1/items/..%2f..%2fetc%2fpasswd", "/api/v1/items/%2e%2e%2f%2e%2e%2fsecret/media",
                 "/static/..%2f..%2fapp.py", "/static/%2e%2e/%2e%2e/serve.token", "/api/v1/items/-1/media"]:
        reply = request(site["base"] + path)
        assert reply.status in (404, 422), (path, reply.status)
        assert b"secret is not" not in reply.body and site["token"].encode() not in reply.body
        _problem(reply, reply.status)


# --- search ----------------------------------------------------------------------------------

def test_text_search_returns_scores_reasons_times_and_urls(site):
    hits = _hits(site, "buy milk and eggs", k=3)
    assert hits[0]["name"] == "shopping_list.wav"
    top = hits[0]
    assert top["modality"] == top["kind"] == "audio"  # "kind": the field's older name, still sent
    assert top["start"] is not None and top["end"] > top["start"]
    assert "milk" in top["why"].lower()
    assert top["path"] == "library/voice_memos/shopping_list.wav"  # relative to the root, never absolute
    assert top["thumbnail_url"] == f"/api/v1/items/{top['item_id']}/thumbnail"
    assert top["media_url"] == f"/api/v1/items/{top['item_id']}/media"
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    video = _hits(site, "rocket launch", modality="video", k=5)
    assert [h["name"] for h in video] == ["cat_and_rocket.mp4"]
    # the hit starts at the words asked for (inside the rocket sentence, as the sample manifest times
    # it), wherever Whisper cut its segments, and its thumbnail is a frame from inside that span
    from sensorium.demo.sample_data import build_sample_folder

    (sample_video,) = build_sample_folder(site["sample"]).by_kind("video")
    rocket = sample_video.speech[1]
    hit = video[0]
    assert rocket.start - 0.5 <= hit["start"] < rocket.end, (hit, rocket)
    middle = float(hit["thumbnail_url"].split("?t=")[1])
    assert hit["start"] <= middle <= hit["end"]
    reply = request(site["base"] + hit["thumbnail_url"])
    assert reply.status == 200 and reply.headers["content-type"].startswith("image/jpeg")
    import numpy as np
    from PIL import Image

    red, _, blue = np.asarray(Image.open(io.BytesIO(reply.body)).convert("RGB"), np.float32).reshape(-1, 3).mean(0)
    assert blue > red  # the dusk rocket scene (blue), not the cat that opens the video (orange)


def test_search_by_uploaded_photo_and_recording_is_sniffed_not_named(site):
    cat = (site["root"] / "library/photos/cat.jpg").read_bytes()
    body, headers = multipart({"k": "3", "kind": "image"}, {"file": ("notes.txt", cat)})  # a JPEG misnamed
    reply = request(site["base"] + "/api/v1/search", "POST", body, headers)
    assert reply.status == 200, reply.body
    assert reply.json()["query"]["upload"] == "image"
    assert reply.json()["results"][0]["name"] == "cat.jpg"
    memo = (site["root"] / "library/voice_memos/shopping_list.wav").read_bytes()
    body, headers = multipart({"k": "3"}, {"file": ("memo.jpg", memo)})
    reply = request(site["base"] + "/api/v1/search", "POST", body, headers)
    assert reply.status == 200, reply.body
    assert reply.json()["results"][0]["name"] == "shopping_list.wav"
    body, headers = multipart({}, {"file": ("photo.jpg", b"just some words, not a picture\n" * 4)})
    _problem(request(site["base"] + "/api/v1/search", "POST", body, headers), 415)
    body, headers = multipart({}, {"file": ("photo.jpg", b"\x00\x01\x02garbage" * 10)})
    _problem(request(site["base"] + "/api/v1/search", "POST", body, headers), 415)


def test_search_by_words_and_photo_together_counts_both(site):
    """A photo of coffee plus the words "buy milk and eggs": each part lifts what the other alone
    ranks low (the spoken shopping list for the photo, the coffee photo for the words), so together
    both lead. Score gaps measured on the sample: +0.5 and +0.84; asked: +0.3."""
    coffee = (site["root"] / "library/photos/coffee.png").read_bytes()

    def scores(fields: dict) -> list[tuple[str, float]]:
        body, headers = multipart({"k": "20", **fields}, {"file": ("upload", coffee)})
        reply = request(site["base"] + "/api/v1/search", "POST", body, headers)
        assert reply.status == 200, reply.body
        assert reply.json()["query"]["upload"] == "image"
        return [(hit["name"], hit["score"]) for hit in reply.json()["results"]]

    photo_alone = scores({})
    words_alone = [(hit["name"], hit["score"]) for hit in _hits(site, "buy milk and eggs", k=20)]
    together = scores({"q": "buy milk and eggs"})
    assert photo_alone[0][0] == "coffee.png" and words_alone[0][0] == "shopping_list.wav"
    assert "shopping_list.wav" not in [name for name, _ in photo_alone[:2]]
    assert {name for name, _ in together[:2]} == {"coffee.png", "shopping_list.wav"}, together
    assert dict(together)["shopping_list.wav"] > dict(photo_alone)["shopping_list.wav"] + 0.3  # the words count
    assert dict(together)["coffee.png"] > dict(words_alone)["coffee.png"] + 0.3  # the photo counts


def test_search_by_uploaded_video_queries_its_sound_track(site, tmp_path):
    """A video showing the cat while the shopping list is spoken: what is said is the query, so the
    spoken shopping list comes first, not the cat photo or the cat video the pictures would find."""
    video = mux_video(site["sample"] / "photos/cat.jpg", site["sample"] / "voice_memos/shopping_list.wav",
                      tmp_path / "clip.mp4")
    body, headers = multipart({"k": "6"}, {"file": ("clip.bin", video.read_bytes())})
    reply = request(site["base"] + "/api/v1/search", "POST", body, headers)
    assert reply.status == 200, reply.body
    assert reply.json()["query"]["upload"] == "video"
    names = [hit["name"] for hit in reply.json()["results"]]
    assert names[0] == "shopping_list.wav", names
    assert "cat.jpg" not in names[:3]  # what the pictures alone would find first
    body, headers = multipart({"k": "6", "modality": "video"}, {"file": ("clip.bin", video.read_bytes())})
    reply = request(site["base"] + "/api/v1/search", "POST", body, headers)
    assert reply.status == 200 and {h["modality"] for h in reply.json()["results"]} <= {"video"}


def test_uploads_and_bodies_are_capped(site):
    big = b"\xff\xd8\xff\xe0" + b"\0" * (25 * 1024 * 1024 + 10)
    body, headers = multipart({}, {"file": ("huge.jpg", big)})
    _problem(request(site["base"] + "/api/v1/search", "POST", body, headers), 413)
    _problem(request(site["base"] + "/api/v1/jobs/index", "POST", json_body={"folder": "x" * 70_000},
                     headers=_auth(site["token"])), 413)


def test_bad_queries_are_problems(site):
    from urllib.parse import urlencode

    base = site["base"] + "/api/v1/search?"
    _problem(request(base + urlencode({"q": "x" * 513})), 422)
    _problem(request(base + urlencode({"q": "cat", "k": 0})), 422)
    _problem(request(base + urlencode({"q": "cat", "k": 1000})), 422)
    assert "kind" in _problem(request(base + urlencode({"q": "cat", "kind": "smell"})), 422)["detail"]
    assert "modality" in _problem(request(base + urlencode({"q": "cat", "modality": "smell"})), 422)["detail"]
    _problem(request(base.rstrip("?")), 422)
    _problem(request(site["base"] + "/api/v1/items/999999"), 404)
    for huge in (2**63, -(2**63) - 1, 10**30):  # past SQLite's integers: unknown, not a 500
        for route in ("", "/thumbnail", "/media"):
            _problem(request(site["base"] + f"/api/v1/items/{huge}{route}"), 404)
    _problem(request(site["base"] + "/api/v1/jobs/nope"), 404)
    _problem(request(site["base"] + "/api/v1/health", "DELETE"), 405)
    _problem(request(site["base"] + "/api/v1/health", headers={"Host": "evil.example"}), 400)


# --- items -----------------------------------------------------------------------------------

def test_item_metadata_has_labels_transcript_and_ocr(site):
    memo = request(f"{site['base']}/api/v1/items/{_item_id(site, 'voice_memos/shopping_list.wav')}").json()
    assert memo["kind"] == "audio" and memo["path"] == "library/voice_memos/shopping_list.wav"
    assert memo["size"] == (site["root"] / "library/voice_memos/shopping_list.wav").stat().st_size
    assert "milk" in " ".join(t["text"] for t in memo["transcript"]).lower()
    cat = request(f"{site['base']}/api/v1/items/{_item_id(site, 'photos/cat.jpg')}").json()
    assert any("cat" in label["label"].lower() for label in cat["labels"][:3])
    page = request(f"{site['base']}/api/v1/items/{_item_id(site, 'photos/scanned_page.png')}").json()
    assert "segmentation" in page["ocr_text"].lower()
    video = request(f"{site['base']}/api/v1/items/{_item_id(site, 'video/cat_and_rocket.mp4')}").json()
    assert video["transcript"] and video["scenes"] and video["duration"] > 5


@pytest.mark.parametrize("relative", ["photos/cat.jpg", "video/cat_and_rocket.mp4", "voice_memos/shopping_list.wav",
                                      "notes/cat_care.md"])
def test_thumbnails_are_small_jpegs_and_cached(site, relative):
    from PIL import Image

    url = f"{site['base']}/api/v1/items/{_item_id(site, relative)}/thumbnail"
    first = request(url)
    assert first.status == 200 and first.headers["content-type"] == "image/jpeg"
    picture = Image.open(io.BytesIO(first.body))
    assert picture.format == "JPEG" and max(picture.size) <= 320 and min(picture.size) > 16
    darkest, brightest = picture.convert("L").getextrema()
    assert brightest - darkest > 40  # drawn, not a blank square
    assert request(url).body == first.body
    assert any((site["collection"] / "thumbnails").glob("*.jpg"))


def test_media_streams_whole_and_by_range(site):
    relative = "library/video/cat_and_rocket.mp4"
    data = (site["root"] / relative).read_bytes()
    url = f"{site['base']}/api/v1/items/{_item_id(site, 'video/cat_and_rocket.mp4')}/media"
    whole = request(url)
    assert whole.status == 200 and whole.body == data and whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes"
    part = request(url, headers={"Range": "bytes=100-1123"})
    assert part.status == 206 and part.body == data[100:1124]
    assert part.headers["content-range"] == f"bytes 100-1123/{len(data)}"
    tail = request(url, headers={"Range": "bytes=-50"})
    assert tail.status == 206 and tail.body == data[-50:]
    assert request(url, headers={"Range": f"bytes={len(data) + 10}-"}).status == 416


def test_classify_upload(site):
    cat = (site["root"] / "library/photos/cat.jpg").read_bytes()
    body, headers = multipart({"labels": "a car, a cat, a bowl of soup"}, {"file": ("upload.bin", cat)})
    reply = request(site["base"] + "/api/v1/classify", "POST", body, headers)
    assert reply.status == 200, reply.body
    result = reply.json()
    assert result["labels"][0]["label"] == "a cat" and result["path"] == "upload"
    body, headers = multipart({"labels": ""}, {"file": ("upload.bin", cat)})
    _problem(request(site["base"] + "/api/v1/classify", "POST", body, headers), 422)


def test_describe_and_ask_an_uploaded_photo(site):
    cat = (site["root"] / "library/photos/cat.jpg").read_bytes()
    body, headers = multipart({}, {"file": ("upload.bin", cat)})
    reply = request(site["base"] + "/api/v1/describe", "POST", body, headers)
    assert reply.status == 200, reply.body
    described = reply.json()
    assert "cat" in described["sentence"] and described["findings"][0]["certainty"] == "sure"
    assert "not a learned captioner" in described["method"]
    answers = {}
    for question in ("Is there a cat?", "Is there a giraffe?", "Что это?"):
        body, headers = multipart({"question": question}, {"file": ("upload.bin", cat)})
        reply = request(site["base"] + "/api/v1/ask", "POST", body, headers)
        assert reply.status == 200, reply.body
        answers[question] = reply.json()
    assert answers["Is there a cat?"]["answer"] == "yes"
    assert answers["Is there a giraffe?"]["answer"] == answers["Что это?"]["answer"] == "cannot tell"
    for blank in ("", "   "):
        body, headers = multipart({"question": blank}, {"file": ("upload.bin", cat)})
        _problem(request(site["base"] + "/api/v1/ask", "POST", body, headers), 422)
    body, headers = multipart({}, {"file": ("photo.jpg", b"just some words, not a photo")})
    _problem(request(site["base"] + "/api/v1/describe", "POST", body, headers), 415)


def test_speak_returns_a_wav_and_refuses_bad_voices(site):
    import soundfile

    reply = request(site["base"] + "/api/v1/speak", "POST", json_body={"text": "A photo of a cat.", "rate": 180})
    assert reply.status == 200 and reply.headers["content-type"] == "audio/wav", reply.body[:200]
    samples, rate = soundfile.read(io.BytesIO(reply.body))
    assert rate == 16000 and 0.5 < len(samples) / rate < 5 and abs(samples).max() > 0.05
    assert "voice" in _problem(request(site["base"] + "/api/v1/speak", "POST",
                                       json_body={"text": "hello", "voice": "xx-yy"}), 422)["detail"]
    _problem(request(site["base"] + "/api/v1/speak", "POST", json_body={"text": "  "}), 422)


def test_imagine_answers_a_png_grid_that_carries_its_prompt_and_refuses_other_models(site):
    from PIL import Image

    url = site["base"] + "/api/v1/imagine"
    reply = request(url, "POST", json_body={"prompt": "a handwritten seven", "n": 4, "steps": 4, "seed": 2})
    assert reply.status == 200 and reply.headers["content-type"] == "image/png", reply.body[:200]
    with Image.open(io.BytesIO(reply.body)) as image:
        assert image.size == (4 * 28 + 3 * 2, 28) and image.text["prompt"] == "a handwritten seven"
        assert image.text["seed"] == "2" and image.text["model"] == reply.headers["x-imagine-model"]
    assert json.loads(reply.headers["x-imagine-nearest"])[0][0] == "seven" and "x-imagine-warning" not in reply.headers
    far = request(url, "POST", json_body={"prompt": "a bowl of ramen", "n": 1, "steps": 1})
    assert far.status == 200 and "far from" in far.headers["x-imagine-warning"]
    for body in ({"prompt": "seven", "model": "../../etc"}, {"prompt": "seven", "n": 100}, {"prompt": "   "},
                 {"prompt": "seven", "steps": 0}):
        _problem(request(url, "POST", json_body=body), 422)


def test_an_indexed_photo_has_a_description_and_a_recording_has_none(site):
    cat = request(f"{site['base']}/api/v1/items/{_item_id(site, 'photos/cat.jpg')}/description")
    assert cat.status == 200 and "cat" in cat.json()["sentence"]
    memo = _item_id(site, "voice_memos/shopping_list.wav")
    assert "only photos" in _problem(request(f"{site['base']}/api/v1/items/{memo}/description"), 422)["detail"]


MEMO_LABELS = "a work meeting, a shopping reminder, a trip abroad"


@pytest.mark.parametrize("sample, modality, labels, expected", [
    ("voice_memos/shopping_list.wav", "audio", MEMO_LABELS, "a shopping reminder"),
    ("voice_memos/meeting_moved.flac", "audio", MEMO_LABELS, "a work meeting"),
    ("video/cat_and_rocket.mp4", "video", "a motorcycle in a garage, a bowl of soup, a cat and a rocket",
     "a cat and a rocket"),
    ("notes/bike_repair.txt", "text", "cooking, bicycle repair, travel", "bicycle repair"),
    ("notes/pancake_recipe.md", "text", "cooking, bicycle repair, travel", "cooking"),
])
def test_classify_recordings_videos_and_notes(site, sample, modality, labels, expected):
    """Three labels each (chance: 1/3); the same labels get different answers for different files,
    so the right one wins on content, not position. Uploads are named nothing telling."""
    data = (site["sample"] / sample).read_bytes()
    body, headers = multipart({"labels": labels}, {"file": ("upload.bin", data)})
    reply = request(site["base"] + "/api/v1/classify", "POST", body, headers)
    assert reply.status == 200, reply.body
    result = reply.json()
    assert result["modality"] == modality  # sniffed from the bytes
    ranked = result["labels"]
    assert ranked[0]["label"] == expected and ranked[0]["score"] > 1 / 3, ranked
    assert len(ranked) == 3 and result["path"] == "upload"


# --- service ---------------------------------------------------------------------------------

def test_health_openapi_and_page(site):
    health = request(site["base"] + "/api/v1/health").json()
    assert health["status"] == "ok" and sum(health["items"].values()) == len(LIBRARY)
    spec = request(site["base"] + "/api/v1/openapi.json").json()
    for path in ["/api/v1/search", "/api/v1/items/{item_id}", "/api/v1/items/{item_id}/media", "/api/v1/classify",
                 "/api/v1/jobs/index", "/api/v1/jobs/{job_id}/events", "/api/v1/health"]:
        assert path in spec["paths"], path
    page = request(site["base"] + "/")
    assert page.status == 200 and b'src="/static/app.js"' in page.body
    assert b"http://" not in page.body and b"https://" not in page.body  # no CDN
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert request(site["base"] + "/static/app.js").status == 200
    assert "access-control-allow-origin" not in request(site["base"] + "/api/v1/health",
                                                        headers={"Origin": "http://evil.example"}).headers


def test_metrics_are_prometheus_text(site):
    from prometheus_client.parser import text_string_to_metric_families

    _hits(site, "cat")
    reply = request(site["base"] + "/metrics")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(reply.body.decode())}
    searches = [s for s in families["sensorium_http_requests"].samples
                if s.labels.get("route") == "/api/v1/search" and s.labels["method"] == "GET" and s.name.endswith("_total")]
    assert searches and sum(s.value for s in searches) >= 1
    buckets = [s for s in families["sensorium_http_request_duration_seconds"].samples if s.name.endswith("_bucket")]
    assert any(s.labels["route"] == "/api/v1/search" for s in buckets)
    items = {s.labels["kind"]: s.value for s in families["sensorium_index_items"].samples}
    assert items == request(site["base"] + "/api/v1/health").json()["items"]
    assert all("?" not in s.labels.get("route", "") for s in searches)  # routes are templates, never raw URLs


def _indexed_names(site, folder: str) -> set[str]:
    from sensorium.index.catalog import Catalog

    with Catalog(site["collection"] / "catalog.sqlite", readonly=True) as catalog:
        return {Path(p).name for p in catalog.paths(under=str((site["root"] / folder).resolve()))}


def test_second_job_is_refused_and_a_job_can_be_cancelled(site):
    """The job is held at memo_3 (the read gate), so the 409 and the cancel provably arrive while it
    runs; it stops before memo_3 is stored, whatever the speed of the machine."""
    url = site["base"] + "/api/v1/jobs/index"
    before = sum(request(site["base"] + "/api/v1/health").json()["items"].values())
    gate = site["gate"]
    gate.hold("memo_3.*")
    try:
        first = request(url, "POST", json_body={"folder": "more"}, headers=_auth(site["token"]))
        assert first.status == 202, first.body
        job = first.json()
        assert gate.wait_entered().name == "memo_3.flac"
        conflict = _problem(request(url, "POST", json_body={"folder": "library"}, headers=_auth(site["token"])), 409)
        assert conflict["running_job"] == job["id"]
        assert request(site["base"] + "/api/v1/health").json()["job"] == job["id"]
        cancelled = request(f"{site['base']}/api/v1/jobs/{job['id']}", "DELETE", headers=_auth(site["token"]))
        assert cancelled.status == 200 and cancelled.json()["id"] == job["id"]
    finally:
        gate.release()
    final = read_events(site["base"] + job["events_url"])[-1][1]
    assert final["state"] == "cancelled" and final["report"]["cancelled"] is True, final
    assert final["report"]["added"] <= 3 and final["report"]["failed"] == []  # memo_0..2 at most
    indexed = _indexed_names(site, "more")
    assert len(indexed) == final["report"]["added"]
    assert indexed <= {"memo_0.wav", "memo_1.flac", "memo_2.wav"}  # stopped between files, in order
    # the catalog stays consistent: what was added is counted, and a new job can start
    health = request(site["base"] + "/api/v1/health").json()
    assert health["job"] is None and sum(health["items"].values()) == before + final["report"]["added"]


def test_index_job_names_a_folder_and_an_existing_job(site):
    url = site["base"] + "/api/v1/jobs/index"
    body = _problem(request(url, "POST", json_body={"folder": "library/notes/cat_care.md"},
                            headers=_auth(site["token"])), 422)
    assert "not a folder" in body["detail"]
    assert request(site["base"] + "/api/v1/health").json()["job"] is None  # nothing started
    assert "no such job" in _problem(request(f"{site['base']}/api/v1/jobs/0123456789ab", "DELETE",
                                             headers=_auth(site["token"])), 404)["detail"]


def _run_job(site, folder: str) -> dict:
    reply = request(site["base"] + "/api/v1/jobs/index", "POST", json_body={"folder": folder},
                    headers=_auth(site["token"]))
    assert reply.status == 202, reply.body
    final = read_events(site["base"] + reply.json()["events_url"])[-1][1]
    assert final["state"] == "done", final
    return final


def test_items_indexed_from_outside_the_roots_are_never_revealed(site):
    """The collection may hold files from outside the served roots (indexed with the library or the
    CLI): the service must not show them in results, nor serve their metadata, bytes or thumbnail."""
    from sensorium.collection import Collection
    from sensorium.index.catalog import Catalog

    outside = site["outside"]
    shutil.copy2(site["root"] / "library/photos/cat.jpg", outside / "secret_cat.jpg")  # the twin of an in-root photo
    collection = Collection(site["collection"])
    try:
        report = collection.index(outside)
        assert report.added == 2 and not report.failed, report.as_dict()
        # not vacuous: the collection itself ranks them first for these queries
        assert Path(collection.search(text="the secret is not for clients", k=1)[0].path).name == "secret.txt"
        assert "secret_cat.jpg" in [Path(h.path).name for h in
                                    collection.search(image=outside / "secret_cat.jpg", k=2)]
    finally:
        collection.close()
    _run_job(site, "library")  # unchanged files; the job's end reopens the server's search view
    with Catalog(site["collection"] / "catalog.sqlite", readonly=True) as catalog:
        hidden = [catalog.item(str((outside / name).resolve())).id for name in ("secret.txt", "secret_cat.jpg")]

    def reveals(text: str) -> bool:
        return str(outside) in text or str(outside.resolve()) in text or "not for clients" in text

    def reveal_hits(results: list[dict]) -> bool:
        return (any("secret" in hit["name"] or "secret" in hit["path"] or hit["item_id"] in hidden for hit in results)
                or reveals(json.dumps(results)))

    results = _hits(site, "the secret is not for clients", k=100)
    assert results and not reveal_hits(results), results
    cat = (site["root"] / "library/photos/cat.jpg").read_bytes()
    body, headers = multipart({"k": "100"}, {"file": ("cat.jpg", cat)})
    reply = request(site["base"] + "/api/v1/search", "POST", body, headers)
    assert reply.status == 200, reply.body
    results = reply.json()["results"]
    assert results[0]["name"] == "cat.jpg" and not reveal_hits(results), results
    assert all(not h["path"].startswith(("/", "..")) for h in results)
    for item_id in hidden:
        for route in ("", "/media", "/thumbnail", "/thumbnail?t=1"):
            reply = request(f"{site['base']}/api/v1/items/{item_id}{route}")
            _problem(reply, 404)
            assert not reveals(reply.body.decode(errors="replace")) and b"secret" not in reply.body


@pytest.fixture(scope="module")
def scratch(site):
    """`scratch/`: notes and a photo indexed through the API, for the tests that change files after
    indexing (delete, swap for a link, corrupt); their item ids."""
    from sensorium.index.catalog import Catalog

    folder = site["root"] / "scratch"
    folder.mkdir()
    for name in ("gone.md", "swapped.md"):
        shutil.copy2(site["sample"] / "notes/cat_care.md", folder / name)
    shutil.copy2(site["sample"] / "photos/coffee.png", folder / "broken.png")
    assert _run_job(site, "scratch")["report"]["added"] == 3
    with Catalog(site["collection"] / "catalog.sqlite", readonly=True) as catalog:
        return {path.name: catalog.item(str(path.resolve())).id for path in folder.iterdir()}


def test_media_of_a_deleted_file_is_not_found(site, scratch):
    url = f"{site['base']}/api/v1/items/{scratch['gone.md']}"
    assert request(url + "/media").status == 200  # served while the file is there
    (site["root"] / "scratch/gone.md").unlink()
    assert "no longer exists" in _problem(request(url + "/media"), 404)["detail"]
    _problem(request(url + "/thumbnail"), 404)


def test_media_of_a_file_swapped_for_a_link_leaving_the_roots_is_not_found(site, scratch):
    url = f"{site['base']}/api/v1/items/{scratch['swapped.md']}"
    assert request(url + "/media").status == 200
    swapped = site["root"] / "scratch/swapped.md"
    swapped.unlink()
    swapped.symlink_to(site["outside"] / "secret.txt")
    for route in ("/media", "/thumbnail", ""):
        reply = request(url + route)
        _problem(reply, 404)
        assert b"not for clients" not in reply.body and str(site["outside"]).encode() not in reply.body
    hits = _hits(site, "feeding schedule litter box vaccination", k=100)
    assert scratch["swapped.md"] not in {h["item_id"] for h in hits}  # nor listed among the results


def test_thumbnail_of_an_undecodable_file_is_a_422_problem(site, scratch):
    broken = site["root"] / "scratch/broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"this is no longer a picture" * 40)  # changed since indexing
    body = _problem(request(f"{site['base']}/api/v1/items/{scratch['broken.png']}/thumbnail"), 422)
    assert "thumbnail" in body["detail"]
    assert request(site["base"] + "/api/v1/health").json()["status"] == "ok"  # the server carries on


def _catalog_of_the_first_schema(path: Path, photo: Path) -> None:
    """A catalog as schema 1 wrote it (the `kind` column, OCR packed into the labels), one photo."""
    import sqlite3

    from sensorium.index.catalog import MIGRATIONS

    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version VALUES (1)")
    db.execute("INSERT INTO items (path, kind, size, mtime_ns, content_hash, duration, meta, indexed_at) "
               "VALUES (?, 'image', ?, ?, 'h', NULL, '{}', 0)", (str(photo), photo.stat().st_size, photo.stat().st_mtime_ns))
    db.execute("INSERT INTO segments (item_id, start, \"end\", source, text, labels) "
               "VALUES (1, NULL, NULL, 'image', 'a red square; text: STOP', '[]')")
    db.execute("INSERT INTO segment_text (rowid, text) VALUES (1, 'a red square; text: STOP')")
    db.commit()
    db.close()


def test_serving_a_new_folder_or_an_older_catalog_works_as_before(tmp_path):
    """The handlers read through a read-only catalog handle; the service still creates a collection
    folder that does not exist yet and migrates a catalog of an older schema before opening it."""
    from PIL import Image

    from sensorium.index.catalog import SCHEMA_VERSION, Catalog

    root = tmp_path / "root"
    root.mkdir()
    photo = root / "square.png"
    Image.new("RGB", (64, 48), (200, 20, 20)).save(photo)

    fresh = tmp_path / "not" / "yet"
    process, base = start_server(fresh, [root], tmp_path / "fresh.log")
    try:
        health = request(base + "/api/v1/health").json()
        assert (health["status"], health["items"], health["segments"]) == ("ok", {}, 0)
        _problem(request(base + "/api/v1/items/1"), 404)
        assert (fresh / "catalog.sqlite").is_file()
    finally:
        stop_server(process)

    older = tmp_path / "older"
    _catalog_of_the_first_schema(older / "catalog.sqlite", photo)
    process, base = start_server(older, [root], tmp_path / "older.log")
    try:
        health = request(base + "/api/v1/health").json()
        assert (health["items"], health["segments"]) == ({"image": 1}, 1)
        item = request(base + "/api/v1/items/1")
        assert item.status == 200, item.body
        assert (item.json()["name"], item.json()["modality"]) == ("square.png", "image")
        thumbnail = request(base + "/api/v1/items/1/thumbnail")
        assert thumbnail.status == 200 and thumbnail.headers["content-type"].startswith("image/jpeg")
    finally:
        stop_server(process)
    with Catalog(older / "catalog.sqlite", readonly=True) as catalog:
        assert catalog.schema_version() == SCHEMA_VERSION  # migrated once, by the service's start-up


def test_cli_serve_refuses_a_remote_host_without_allow_remote(tmp_path):
    collection = tmp_path / "collection"
    result = run_cli("serve", "-c", str(collection), "--host", "0.0.0.0", "--port", str(free_port()),
                     "--root", str(tmp_path))
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "--allow-remote" in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not collection.exists()  # refused before anything was created, nothing listened


def test_cli_serve_refuses_a_missing_root(tmp_path):
    collection, missing = tmp_path / "collection", tmp_path / "no_such_folder"
    result = run_cli("serve", "-c", str(collection), "--port", str(free_port()), "--root", str(missing))
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "--root" in lines[0] and "not a folder" in lines[0] and "no_such_folder" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not collection.exists()


def test_sigterm_stops_a_running_job_between_files_and_exits(site):
    """Last: ends the module's server. The job is held at memo_3 until the server has begun shutting
    down, so SIGTERM provably lands mid-job; the job then stops before storing memo_3."""
    from sensorium.index.catalog import Catalog

    gate = site["gate"]
    gate.hold("memo_3.*")
    try:
        reply = request(site["base"] + "/api/v1/jobs/index", "POST", json_body={"folder": "more"},
                        headers=_auth(site["token"]))
        assert reply.status == 202, reply.body
        assert gate.wait_entered().name == "memo_3.flac"
        site["process"].send_signal(signal.SIGTERM)
        wait_for_text(site["log"], "Shutting down")  # logged after the job was told to stop
    finally:
        gate.release()
    code = site["process"].wait(120)  # bounds a hang, not speed
    log = site["log"].read_text()
    assert code in (0, -signal.SIGTERM), log[-2000:]  # uvicorn re-raises the signal once shut down cleanly
    assert "Application shutdown complete" in log and "Traceback" not in log
    with Catalog(site["collection"] / "catalog.sqlite") as catalog:
        assert catalog.integrity_errors() == []
        names = {Path(p).name for p in catalog.paths(under=str(site["root"].resolve()))}
    assert {Path(relative).name for relative in LIBRARY} <= names
    assert names.isdisjoint({f"memo_{i}{'.flac' if i % 2 else '.wav'}" for i in range(3, 8)})
