"""`sensorium serve` end to end: a real uvicorn process over a small sample collection, indexed
through the job API; every endpoint, the auth and path-confinement rules, uploads, Range, SSE,
cancel, the 409 for a second job, problem documents, metrics and a graceful SIGTERM."""
from __future__ import annotations

import io
import os
import shutil
import signal
import stat
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="fastapi is not installed")
pytest.importorskip("uvicorn", reason="uvicorn is not installed")

from serve_helpers import multipart, read_events, request, start_server, stop_server  # noqa: E402

LIBRARY = ["photos/cat.jpg", "photos/coffee.png", "photos/scanned_page.png", "voice_memos/shopping_list.wav",
           "video/cat_and_rocket.mp4", "notes/cat_care.md"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A served root holding a `library` (indexed once, through the API) and `more` recordings
    (for cancel / 409 / SIGTERM), a folder outside the root, and a symlink escaping the root."""
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
    process, base = start_server(collection, [root], log)
    token = (collection / "serve.token").read_text().strip()
    site = {"base": base, "root": root, "outside": outside, "collection": collection, "token": token,
            "process": process, "sample": sample, "log": log}
    reply = request(base + "/api/v1/jobs/index", "POST", json_body={"folder": "library"}, headers=_auth(token))
    assert reply.status == 202, reply.body
    site["first_job"] = reply.json()
    site["first_events"] = read_events(base + reply.json()["events_url"])
    yield site
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


def test_second_job_is_refused_and_a_job_can_be_cancelled(site):
    url = site["base"] + "/api/v1/jobs/index"
    first = request(url, "POST", json_body={"folder": "more"}, headers=_auth(site["token"]))
    assert first.status == 202, first.body
    job = first.json()
    conflict = _problem(request(url, "POST", json_body={"folder": "library"}, headers=_auth(site["token"])), 409)
    assert conflict["running_job"] == job["id"]
    time.sleep(0.5)
    cancelled = request(f"{site['base']}/api/v1/jobs/{job['id']}", "DELETE", headers=_auth(site["token"]))
    assert cancelled.status == 200
    final = read_events(site["base"] + job["events_url"])[-1][1]
    assert final["state"] == "cancelled" and final["report"]["cancelled"] is True
    assert final["report"]["added"] < 8
    # the catalog stays consistent: what was added is searchable, and a new job can start
    assert sum(request(site["base"] + "/api/v1/health").json()["items"].values()) == len(LIBRARY) + final["report"]["added"]


def test_sigterm_stops_a_running_job_between_files_and_exits(site):
    """Last: ends the module's server. uvicorn's graceful shutdown stops the job after one file."""
    from sensorium.index.catalog import Catalog

    reply = request(site["base"] + "/api/v1/jobs/index", "POST", json_body={"folder": "more"},
                    headers=_auth(site["token"]))
    assert reply.status == 202, reply.body
    time.sleep(1.0)
    began = time.monotonic()
    site["process"].send_signal(signal.SIGTERM)
    code = site["process"].wait(60)
    log = site["log"].read_text()
    assert code in (0, -signal.SIGTERM), log[-2000:]  # uvicorn re-raises the signal once shut down cleanly
    assert "Application shutdown complete" in log and "Traceback" not in log
    assert time.monotonic() - began < 30
    with Catalog(site["collection"] / "catalog.sqlite") as catalog:
        assert catalog.integrity_errors() == []
        assert len(catalog.paths()) >= len(LIBRARY)
