"""`sensorium serve` against a hostile client or web page: ids past 64 bits, made-up methods, chunked
uploads over the cap, server paths in error messages, probing for folders outside the roots, bad
Range headers, HEAD, the OpenAPI security scheme, results dropped outside the roots, and requests a
foreign page makes on a visitor's behalf.

The app runs in this process (no server, no models: nothing here searches or indexes for real), so
its log is `caplog`'s, a body can arrive in chunks without a Content-Length, and a search can be
answered by a stand-in collection. `tests/test_serve_api.py` drives a real server end to end.
"""
from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="fastapi is not installed")

from helpers.serve import Reply, multipart, request, run_cli  # noqa: E402
from sensorium.serve.state import MAX_BODY_BYTES  # noqa: E402

SERVER = ("127.0.0.1", 8765)  # the address the app believes it answers on
OWN_ORIGIN = "http://127.0.0.1:8765"
FOREIGN_ORIGIN = "http://evil.example"
ALLOWED_ORIGIN = "http://localhost:3000"
UPLOAD_CAP = 4096  # bytes: small, so a test need not send 25 MB
PROBLEM_JSON = "application/problem+json"
NOTE_TEXT = "a note about cats\n" * 40
METRIC_FAMILIES = ("sensorium_http_requests", "sensorium_http_request_duration_seconds")


class AsgiClient:
    """Sends one request at a time straight into an ASGI app (the stdlib only: no httpx)."""

    def __init__(self, app, server: tuple[str, int] = SERVER):
        self.app = app
        self.server = server

    def request(self, method: str, path: str, headers: dict | None = None, body: bytes = b"",
                chunks: list[bytes] | None = None, json_body=None) -> Reply:
        """`chunks`: the body in pieces with no Content-Length, as `Transfer-Encoding: chunked` sends it."""
        headers = {k.lower(): v for k, v in (headers or {}).items()}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["content-type"] = "application/json"
        return asyncio.run(self._request(method, path, headers, body, chunks))

    async def _request(self, method, path, headers, body, chunks) -> Reply:
        path, _, query = path.partition("?")
        headers.setdefault("host", f"{self.server[0]}:{self.server[1]}")
        if chunks is None:
            chunks = [body]
            headers.setdefault("content-length", str(len(body)))
        raw = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items()]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
                 "root_path": "", "headers": raw, "client": ("127.0.0.1", 50000), "server": self.server}
        pending = list(chunks)
        messages: list[dict] = []

        async def receive():
            if pending:
                piece = pending.pop(0)
                return {"type": "http.request", "body": piece, "more_body": bool(pending)}
            await asyncio.Event().wait()  # no disconnect while the app answers

        async def send(message):
            messages.append(message)

        try:
            await self.app(scope, receive, send)
        except Exception:  # noqa: BLE001 - Starlette re-raises after answering 500; the answer is what counts
            if not messages:
                raise
        start = next(m for m in messages if m["type"] == "http.response.start")
        reply_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start.get("headers", [])}
        data = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        return Reply(start["status"], reply_headers, data)


def _problem(reply: Reply, status: int) -> dict:
    assert reply.status == status, (reply.status, reply.body[:300])
    assert reply.headers["content-type"].startswith(PROBLEM_JSON), reply.headers
    body = reply.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """An app over a collection holding one note inside the root and one outside (no models: the
    items are written to the catalog directly), a folder outside the root and a link leaving it."""
    from sensorium.index.catalog import Catalog, FileState
    from sensorium.serve.app import LOOPBACK_HOSTS, create_app

    root, outside = tmp_path_factory.mktemp("root"), tmp_path_factory.mktemp("outside")
    collection = tmp_path_factory.mktemp("collection")
    note, secret = root / "note.txt", outside / "secret.txt"
    note.write_text(NOTE_TEXT)
    secret.write_text("not for clients\n")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    app = create_app(collection, [root], allowed_hosts=LOOPBACK_HOSTS, allow_origins=[ALLOWED_ORIGIN],
                     max_upload_bytes=UPLOAD_CAP)
    ids = {}
    with Catalog(collection / "catalog.sqlite") as catalog:
        for path in (note, secret):
            info = path.stat()
            ids[path.name] = catalog.put_item(FileState(str(path.resolve()), info.st_size, info.st_mtime_ns),
                                              "text", None, {}, [])[0]
    token = (collection / "serve.token").read_text().strip()
    return {"app": app, "client": AsgiClient(app), "root": root, "outside": outside, "collection": collection,
            "note": note, "ids": ids, "auth": {"Authorization": f"Bearer {token}"}}


# --- 1. item ids past SQLite's 64 bits ------------------------------------------------------------

ID_PAST_64_BITS = [2**63, -(2**63) - 1, 10**30]
ITEM_ROUTES = ["", "/thumbnail", "/media"]


def _assert_no_traceback(caplog) -> None:
    assert not [r for r in caplog.records if r.exc_info], caplog.text
    assert "Traceback" not in caplog.text and "OverflowError" not in caplog.text


@pytest.mark.parametrize("item_id", ID_PAST_64_BITS)
@pytest.mark.parametrize("route", ITEM_ROUTES)
def test_item_ids_past_64_bits_are_unknown_items(site, caplog, item_id, route):
    reply = site["client"].request("GET", f"/api/v1/items/{item_id}{route}")
    _problem(reply, 404)
    _assert_no_traceback(caplog)


@pytest.mark.parametrize("route", ITEM_ROUTES)
def test_item_ids_are_checked_before_any_lookup(site, caplog, monkeypatch, route):
    """The service checks the id itself, so a lookup that would overflow (the catalog's own guard
    removed, as SQLite binds an id) is never reached."""
    state = site["app"].state.serve
    database = state.catalog.db_path
    checked = state.catalog.item_by_id

    def raw_lookup(item_id: int):
        with sqlite3.connect(database) as db:
            db.execute("SELECT id FROM items WHERE id = ?", (item_id,)).fetchall()  # OverflowError past 64 bits
        return checked(item_id)

    monkeypatch.setattr(state.catalog, "item_by_id", raw_lookup)
    for item_id in ID_PAST_64_BITS:
        _problem(site["client"].request("GET", f"/api/v1/items/{item_id}{route}"), 404)
    assert site["client"].request("GET", f"/api/v1/items/{site['ids']['note.txt']}{route}").status == 200
    _assert_no_traceback(caplog)


# --- 2. bounded metric series ---------------------------------------------------------------------

def _series(client: AsgiClient) -> int:
    from prometheus_client.parser import text_string_to_metric_families

    text = client.request("GET", "/metrics").body.decode()
    return sum(len(family.samples) for family in text_string_to_metric_families(text)
               if family.name in METRIC_FAMILIES)


def test_made_up_methods_and_paths_add_a_bounded_number_of_series(site):
    client = site["client"]
    client.request("ZZ0000", "/api/v1/health")
    client.request("GET", "/no/such/path/0")
    before = _series(client)
    for index in range(200):
        reply = client.request(f"ZZ{index:04d}", "/api/v1/health")
        assert reply.status == 405, reply.status
        client.request("GET", f"/no/such/path/{index}")
        client.request(f"QQ{index:04d}", f"/made/up/{index}")
    after = _series(client)
    assert after - before <= 40, (before, after)  # one label set per histogram at most, not 600
    text = client.request("GET", "/metrics").body.decode()
    assert 'method="OTHER"' in text and 'route="unmatched"' in text
    assert "ZZ0001" not in text and "/no/such/path" not in text


# --- 3. a chunked upload over the cap --------------------------------------------------------------

@pytest.mark.parametrize("route", ["/api/v1/search", "/api/v1/classify"])
@pytest.mark.parametrize("size", [4 * UPLOAD_CAP,  # over the file's cap: the route stops spooling it
                                  UPLOAD_CAP + MAX_BODY_BYTES + 1])  # over the body's: the guard cuts it off
def test_a_chunked_upload_over_the_cap_is_413(site, route, size):
    photo = b"\xff\xd8\xff\xe0" + b"\0" * size
    body, headers = multipart({"labels": "a, b"}, {"file": ("big.jpg", photo)})
    chunks = [body[offset:offset + 1024] for offset in range(0, len(body), 1024)]
    body = _problem(site["client"].request("POST", route, headers=headers, chunks=chunks), 413)
    assert "4096 bytes" in body["detail"]  # the cap the app was given, not the default 25 MB


def test_a_chunked_upload_under_the_cap_is_read(site):
    body, headers = multipart({}, {"file": ("words.bin", b"\x00\x01 nothing a reader knows" * 4)})
    chunks = [body[offset:offset + 100] for offset in range(0, len(body), 100)]
    _problem(site["client"].request("POST", "/api/v1/search", headers=headers, chunks=chunks), 415)


# --- 4. no server paths in problem details ----------------------------------------------------------

BROKEN_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"this is not the rest of a picture" * 20


@pytest.mark.parametrize("route, fields", [("/api/v1/search", {}), ("/api/v1/classify", {"labels": "a cat, a dog"})])
def test_problem_details_name_no_server_paths(site, route, fields):
    body, headers = multipart(fields, {"file": ("photo.jpg", BROKEN_JPEG)})
    reply = site["client"].request("POST", route, headers=headers, body=body)
    assert 400 <= reply.status < 500, (reply.status, reply.body[:300])
    detail = _problem(reply, reply.status)["detail"]
    for folder in (tempfile.gettempdir(), str(site["collection"]), str(site["collection"].resolve()),
                   str(site["root"].resolve()), "sensorium-upload-"):
        assert folder not in detail, detail
    assert "the upload" in detail, detail  # still says what could not be read


def test_the_redactor_shows_root_files_as_the_api_does(tmp_path):
    from sensorium.serve.redact import PathRedactor

    root, collection = tmp_path / "root", tmp_path / "collection"
    redact = PathRedactor(collection, [root], upload_dir=str(tmp_path / "uploads"))
    assert redact(f"{root}/photos/cat.jpg: truncated") == "photos/cat.jpg: truncated"
    assert redact(f"{collection}/catalog.sqlite is locked") == "the collection folder is locked"
    assert redact(f"cannot read {tmp_path}/uploads/x/query.jpg: bad") == "cannot read the upload: bad"
    assert redact(f"{root}other/file.txt and /opt/models/model.onnx") == "file.txt and model.onnx"
    assert redact("1/2 of text/plain") == "1/2 of text/plain"


# --- 5. folders outside the roots: one answer, existing or not ----------------------------------

def test_index_folder_outside_the_roots_does_not_reveal_whether_it_exists(site):
    def answer(folder: str) -> tuple[int, str, str]:
        reply = site["client"].request("POST", "/api/v1/jobs/index", headers=site["auth"], json_body={"folder": folder})
        body = _problem(reply, reply.status)
        return reply.status, body["title"], body["detail"].replace(repr(folder), "FOLDER")

    outside = site["outside"]
    for existing, missing in [(str(outside), str(outside) + "_nothing_here"),
                              (str(outside / "secret.txt"), str(outside / "no_such.txt")),
                              ("/etc", "/no_such_folder_anywhere"),
                              ("escape", "escape/no_such_folder")]:
        assert answer(existing) == answer(missing) == (403, "Path not allowed", "FOLDER: outside the served roots")
    assert "no such file" in answer("no_such_folder")[2]  # inside the roots, existence is the client's business


# --- 6. Range errors and HEAD ----------------------------------------------------------------------

def test_bad_ranges_are_problems(site):
    url = f"/api/v1/items/{site['ids']['note.txt']}/media"
    size = len(NOTE_TEXT.encode())
    client = site["client"]
    unsatisfiable = client.request("GET", url, headers={"Range": f"bytes={size + 10}-"})
    assert "lies outside" in _problem(unsatisfiable, 416)["detail"]
    assert unsatisfiable.headers["content-range"] == f"bytes */{size}"
    for malformed in ("bytes=abc", "items=0-5", "bytes", "bytes=9-3"):
        _problem(client.request("GET", url, headers={"Range": malformed}), 400)
    part = client.request("GET", url, headers={"Range": "bytes=2-9"})
    assert part.status == 206 and part.body == NOTE_TEXT.encode()[2:10]


def test_head_on_media_and_thumbnail_gives_headers_only(site):
    url = f"/api/v1/items/{site['ids']['note.txt']}"
    media = site["client"].request("HEAD", url + "/media")
    assert media.status == 200 and media.body == b""
    assert int(media.headers["content-length"]) == len(NOTE_TEXT.encode())
    assert media.headers["content-type"].startswith("text/plain") and media.headers["accept-ranges"] == "bytes"
    thumbnail = site["client"].request("HEAD", url + "/thumbnail")
    assert thumbnail.status == 200 and thumbnail.body == b"" and thumbnail.headers["content-type"] == "image/jpeg"
    assert int(thumbnail.headers["content-length"]) > 0
    _problem(site["client"].request("HEAD", f"/api/v1/items/{site['ids']['secret.txt']}/media"), 404)


# --- 7. the OpenAPI security scheme ------------------------------------------------------------------

def test_openapi_declares_the_bearer_token_and_where_it_is_needed(site):
    spec = site["client"].request("GET", "/api/v1/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert len(schemes) == 1
    (name, scheme), = schemes.items()
    assert scheme["type"] == "http" and scheme["scheme"].lower() == "bearer"
    protected = [("/api/v1/jobs/index", "post"), ("/api/v1/jobs/{job_id}", "delete"), ("/api/v1/items/{item_id}", "delete")]
    for path, method in protected:
        assert {name: []} in spec["paths"][path][method]["security"], (path, method)
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if (path, method) not in protected:
                assert "security" not in operation, (path, method)
    for item_route in ("/api/v1/items/{item_id}/media", "/api/v1/items/{item_id}/thumbnail"):
        assert set(spec["paths"][item_route]) == {"get"}  # HEAD answers, without a second operation


# --- 8. top-k filled after the served-roots filter ------------------------------------------------------

class StandInView:
    """A collection that ranks `paths` in order and counts the searches asked of it."""

    def __init__(self, paths: list[Path]):
        self.paths = paths
        self.asked: list[int] = []

    def search(self, text=None, image=None, audio=None, modality=None, k=10):
        from sensorium.search import Hit

        self.asked.append(k)
        return [Hit(path=str(path), modality="text", score=1.0 - rank / 1000, start=None, end=None, why="stand-in",
                    item_id=rank + 1) for rank, path in enumerate(self.paths[:k])]


@pytest.fixture
def ranked(site, monkeypatch):
    """Installs a stand-in collection ranking the given paths; returns it."""
    def install(paths: list[Path]) -> StandInView:
        view = StandInView(paths)
        monkeypatch.setattr(site["app"].state.serve, "view", lambda: view)
        return view

    return install


def _names(site, k: int) -> list[str]:
    reply = site["client"].request("GET", f"/api/v1/search?q=cats&k={k}")
    assert reply.status == 200, reply.body
    assert reply.json()["count"] == len(reply.json()["results"])
    return [hit["name"] for hit in reply.json()["results"]]


def test_search_fills_k_with_visible_hits_when_some_lie_outside_the_roots(site, ranked):
    inside = [site["root"] / f"in_{index:02d}.txt" for index in range(30)]
    hidden = [site["outside"] / f"out_{index:02d}.txt" for index in range(30)]
    mixed = [path for pair in zip(inside, hidden) for path in pair]  # every second hit is hidden
    view = ranked(hidden[:3] + mixed)
    assert _names(site, 10) == [path.name for path in inside[:10]]  # all ten, in the collection's order
    assert len(view.asked) <= 4 and view.asked[0] == 10


def test_search_asks_once_when_nothing_is_hidden_and_gives_up_in_bounded_rounds(site, ranked):
    from sensorium.serve.api import MAX_SEARCH_FETCH, SEARCH_ROUNDS

    view = ranked([site["root"] / f"in_{index:02d}.txt" for index in range(30)])
    assert len(_names(site, 10)) == 10 and view.asked == [10]
    view = ranked([site["root"] / "in_00.txt"])
    assert len(_names(site, 10)) == 1 and view.asked == [10]  # fewer items than asked: no second search
    view = ranked([site["outside"] / f"out_{index:04d}.txt" for index in range(5000)])
    assert _names(site, 10) == []
    assert len(view.asked) <= SEARCH_ROUNDS and max(view.asked) <= MAX_SEARCH_FETCH


# --- 9. requests from other web pages ----------------------------------------------------------------

def _index(site, headers: dict) -> Reply:
    return site["client"].request("POST", "/api/v1/jobs/index", headers=headers, json_body={"folder": "no_such_folder"})


@pytest.mark.parametrize("headers, reason", [
    ({"Origin": FOREIGN_ORIGIN}, "Origin"),
    ({"Origin": "http://127.0.0.1:9999"}, "Origin"),  # another server on this machine
    ({"Origin": "https://127.0.0.1:8765"}, "Origin"),
    ({"Origin": "null"}, "Origin"),  # a sandboxed frame or a local file
    ({"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site"),
    ({"Sec-Fetch-Site": "same-site"}, "Sec-Fetch-Site"),
    ({"Origin": OWN_ORIGIN, "Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site"),
])
def test_foreign_pages_cannot_index_upload_delete_or_search(site, headers, reason):
    body = _problem(_index(site, {**site["auth"], **headers}), 403)
    assert reason in body["detail"] and "cross-site" in body["detail"]
    client = site["client"]
    _problem(client.request("GET", "/api/v1/search?q=cats", headers=headers), 403)
    upload, form = multipart({}, {"file": ("x.bin", b"\x00" * 10)})
    _problem(client.request("POST", "/api/v1/classify", headers={**form, **headers}, body=upload), 403)
    _problem(client.request("DELETE", "/api/v1/jobs/0123456789ab", headers={**site["auth"], **headers}), 403)
    assert client.request("GET", "/api/v1/health", headers=headers).status == 200  # reads stay open


@pytest.mark.parametrize("headers", [
    {},  # a program: curl, a script
    {"Origin": OWN_ORIGIN, "Sec-Fetch-Site": "same-origin"},  # the bundled page
    {"Origin": "http://localhost:8765"},
    {"Origin": "http://[::1]:8765"},
    {"Sec-Fetch-Site": "none"},  # typed into the address bar
    {"Origin": ALLOWED_ORIGIN, "Sec-Fetch-Site": "same-site"},  # named with allow_origins
    {"Origin": "HTTP://LOCALHOST:3000"},
])
def test_programs_the_own_page_and_allowed_origins_pass(site, headers):
    body = _problem(_index(site, {**site["auth"], **headers}), 403)
    assert body["title"] == "Path not allowed"  # past the origin check, refused by the route for its folder
    _problem(_index(site, headers), 401)


def test_a_malformed_allowed_origin_is_refused(tmp_path):
    from sensorium.errors import ConfigError
    from sensorium.serve.security import normalise_origin

    assert normalise_origin("HTTP://Example.COM:80/") == "http://example.com"
    assert normalise_origin("https://[::1]:8443") == "https://[::1]:8443"
    for bad in ("example.com", "ftp://example.com", "http://example.com/page", "http://u:p@example.com",
                "http://example.com:99999", "*"):
        with pytest.raises(ValueError):
            normalise_origin(bad)
    from sensorium.serve.app import create_app

    with pytest.raises(ConfigError):
        create_app(tmp_path / "collection", [tmp_path], allow_origins=["example.com"])
    result = run_cli("serve", "-c", str(tmp_path / "c"), "--root", str(tmp_path), "--allow-origin", "example.com",
                     "--port", "1")
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--allow-origin" in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "c").exists()


def test_cli_passes_allowed_origins_to_the_server(tmp_path):
    """`--allow-origin` reaches a real server process: it refuses a foreign page and lets the named
    origin and its own page through."""
    from sensorium.serve.process import start_server, stop_server

    process, port = start_server(tmp_path / "collection", [tmp_path], tmp_path / "server.log",
                                 options=["--allow-origin", ALLOWED_ORIGIN])
    try:
        def status(origin: str) -> int:
            return request(f"http://127.0.0.1:{port}/api/v1/jobs/index", "POST", json_body={"folder": "x"},
                           headers={"Origin": origin}).status

        assert status(FOREIGN_ORIGIN) == 403
        assert status(ALLOWED_ORIGIN) == 401  # past the origin check; the token is still needed
        assert status(f"http://127.0.0.1:{port}") == 401  # its own page
        assert status(f"http://localhost:{port}") == 401
    finally:
        stop_server(process)


def test_a_failed_jobs_message_names_no_server_path(tmp_path):
    """Index-job errors reach clients through GET /jobs/{id}: they pass the same redactor as problems."""
    from sensorium.errors import CollectionLockedError
    from sensorium.serve.jobs import FAILED, JobManager
    from sensorium.serve.redact import PathRedactor

    collection, root = tmp_path / "collection", tmp_path / "media"

    class LockedWriter:
        def index(self, folder, progress=None, should_stop=None):
            raise CollectionLockedError(f"{collection}/catalog.db is locked by another writer (pid 4242)")

        def close(self):
            pass

    jobs = JobManager(LockedWriter, redact=PathRedactor(collection, [root]))
    job = jobs.start(root / "photos", "photos")
    job.thread.join(10)
    assert job.state == FAILED
    assert str(tmp_path) not in job.error and "the collection folder" in job.error, job.error
