"""Routes under /api/v1: search, items (metadata, thumbnail, media), classify, index jobs, health.

Heavy handlers are plain `def` so FastAPI runs them in its thread pool: a slow search or an
indexing job never blocks the event loop, and concurrent searches keep working.
"""
from __future__ import annotations

import asyncio
import io
import json
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, Security, UploadFile
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from ..errors import CollectionLockedError
from ..index.catalog import MAX_ID, MIN_ID, Item
from ..modality import ALL as MODALITIES
from ..modality import VIDEO
from ..readers.sniff import sniff_bytes
from ..space.segments import SPEECH_SOURCES, Source
from .jobs import RUNNING
from .guard import size_text
from .media import MediaResponse, media_type
from .problems import Problem
from .security import token_matches
from .state import ServeState
from .work import until_client_leaves

MAX_QUERY_CHARS = 512
MAX_LABELS_CHARS = 2000
MAX_K = 100
SEARCH_ROUNDS = 4  # searches per request at most, when hits outside the roots had to be dropped
MAX_SEARCH_FETCH = 16 * MAX_K  # hits asked of the collection in one search at most
FETCH_MARGIN = 1.25  # ask a little more than the share dropped so far predicts
SNIFF_BYTES = 64

router = APIRouter(prefix="/api/v1")


def serve_state(request: Request) -> ServeState:
    return request.app.state.serve


State = Annotated[ServeState, Depends(serve_state)]


# declared in the OpenAPI document (components.securitySchemes), so clients see which routes need it
bearer = HTTPBearer(scheme_name="serveToken", auto_error=False,
                    description="the content of the collection folder's serve.token file")


def require_token(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None) -> None:
    """Writes and admin actions need `Authorization: Bearer <token>` (the token file's content)."""
    header = None if credentials is None else f"{credentials.scheme} {credentials.credentials}"
    if not token_matches(header, serve_state(request).token):
        raise Problem(401, "Unauthorized", "this action needs 'Authorization: Bearer <token>'; the token is in "
                      "the collection folder's serve.token file", headers={"WWW-Authenticate": "Bearer"})


Authorized = Depends(require_token)


# --- search ---------------------------------------------------------------------------------

def _hit_json(state: ServeState, hit) -> dict | None:
    shown = state.roots.relative(hit.path)
    if shown is None:  # indexed from outside the served roots: not ours to reveal
        return None
    thumbnail = f"/api/v1/items/{hit.item_id}/thumbnail"
    if hit.modality == VIDEO and hit.start is not None:  # a frame from inside the matched span, not the opening
        thumbnail += f"?t={round((hit.start + (hit.end if hit.end is not None else hit.start)) / 2, 2)}"
    return {"item_id": hit.item_id, "path": shown, "name": Path(hit.path).name, "modality": hit.modality,
            "kind": hit.modality,  # the older name of the same field, for clients written against it
            "score": round(hit.score, 4), "start": hit.start, "end": hit.end, "why": hit.why, "source": hit.source,
            "thumbnail_url": thumbnail, "media_url": f"/api/v1/items/{hit.item_id}/media",
            "item_url": f"/api/v1/items/{hit.item_id}"}


def _results(state: ServeState, search: Callable[[int], list], k: int, query: dict) -> dict:
    """The best `k` hits the client may see: `search(n)` gives the collection's top n.

    Hits outside the served roots are dropped after the collection ranked them, so a plain top-k
    could come back short; while some were dropped and the collection had more, ask again for
    more, sized by the share dropped so far. Each round encodes the query again (a recording is
    transcribed again), so the rounds are few and the size capped: a collection that hides nearly
    everything may answer short rather than slowly.
    """
    asked = k
    for _ in range(SEARCH_ROUNDS):
        hits = search(asked)
        results = [r for r in (_hit_json(state, h) for h in hits) if r is not None]
        exhausted = len(hits) < asked or len(results) == len(hits) or asked >= MAX_SEARCH_FETCH
        if len(results) >= k or exhausted:
            break
        asked = min(MAX_SEARCH_FETCH, max(2 * asked, math.ceil(asked * k / max(len(results), 1) * FETCH_MARGIN)))
    results = results[:k]
    return {"query": query, "count": len(results), "results": results}


def _check_modality(modality: str | None, kind: str | None) -> str | None:
    """The modality filter of a search; `kind` is the parameter's older name, still accepted."""
    field = "modality" if modality not in (None, "") else "kind"
    modality = modality if modality not in (None, "") else kind
    if modality in (None, "", "any"):
        return None
    if modality not in MODALITIES:
        raise Problem(422, "Invalid request",
                      f"{field}: unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    return modality


@router.get("/search")
def search_text(state: State, q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS)],
                modality: Annotated[str | None, Query(max_length=16)] = None,
                k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
                kind: Annotated[str | None, Query(max_length=16, deprecated=True)] = None) -> dict:
    """Items matching a text query, best first, each with why it matched and where in time."""
    modality = _check_modality(modality, kind)
    view = state.view()
    return _results(state, lambda n: view.search(text=q, modality=modality, k=n), k,
                    {"text": q, "modality": modality, "kind": modality, "k": k})


@router.post("/search")
async def search_example(request: Request, state: State, file: Annotated[UploadFile, File()],
                   modality: Annotated[str | None, Form(max_length=16)] = None,
                   k: Annotated[int, Form(ge=1, le=MAX_K)] = 10,
                   q: Annotated[str | None, Form(max_length=MAX_QUERY_CHARS)] = None,
                   kind: Annotated[str | None, Form(max_length=16, deprecated=True)] = None) -> dict:
    """Items like an uploaded photo, or matching what is said in an uploaded recording."""
    wanted = _check_modality(modality, kind)

    def work() -> dict:  # in a worker thread, stopped when the client leaves (a recording is transcribed)
        with saved_upload(file, ("image", "audio", "video"), state.max_upload_bytes) as (path, uploaded):
            view, example = state.view(), {"image" if uploaded == "image" else "audio": path}
            return _results(state, lambda n: view.search(text=q or None, modality=wanted, k=n, **example), k,
                            {"upload": uploaded, "text": q, "modality": wanted, "kind": wanted, "k": k})

    return await until_client_leaves(request, work)


@router.post("/classify")
async def classify_upload(request: Request, state: State, file: Annotated[UploadFile, File()],
                          labels: Annotated[str, Form(min_length=1, max_length=MAX_LABELS_CHARS)],
                          confidence: Annotated[float | None, Form(gt=0.5, lt=1.0)] = None,
                          abstain: Annotated[bool, Form()] = False,
                          per_label: Annotated[bool, Form()] = False) -> dict:
    """Rank comma-separated `labels` for an uploaded file of any modality. Spoken labels this machine
    has not voiced yet cost ~3 s each: at most `work.MAX_NEW_SPOKEN_LABELS` per request (422 beyond).

    When the server was started with a calibration for exactly these labels (`serve --calibration`),
    the probabilities are calibrated, and `confidence` adds the label set holding the truth that
    often, `abstain` a decision that may be "uncertain"; without one, those two are a 422."""
    from ..classification import calibrated, classify, clean_labels

    profile = state.calibration_for(clean_labels(labels))
    if profile is None and (confidence is not None or abstain or per_label):
        raise Problem(422, "Invalid request", "confidence, abstain, per_label: this server has no calibration "
                      "for these labels (start it with --calibration FILE from `sensorium calibrate`)")

    def work() -> dict:  # in a worker thread, stopped when the client leaves
        with saved_upload(file, MODALITIES, state.max_upload_bytes) as (path, modality):
            result = classify(path, labels, experts=state.experts)
            if profile is not None:
                result = calibrated(result, profile, confidence=confidence, abstain=abstain, per_label=per_label)
            return result.as_dict()

    result = await until_client_leaves(request, work)
    result["path"] = "upload"
    return result


class saved_upload:
    """Spool an upload to a private temp file named by its sniffed content, never by its name."""

    def __init__(self, upload: UploadFile, allowed, limit: int):
        self.upload = upload
        self.allowed = allowed
        self.limit = limit
        self.folder = None

    def __enter__(self) -> tuple[Path, str]:
        head = self.upload.file.read(SNIFF_BYTES)
        modality = sniff_bytes(head)
        if modality not in self.allowed:
            raise Problem(415, "Unsupported Media Type",
                          f"file: content is {'not recognised' if modality is None else modality}; expected "
                          f"{' or '.join(self.allowed)} (the type is read from the bytes, not the name)")
        self.folder = tempfile.TemporaryDirectory(prefix="sensorium-upload-")
        path = Path(self.folder.name) / f"query{_suffix(head, modality)}"
        size = len(head)
        with open(path, "wb") as out:
            out.write(head)
            while chunk := self.upload.file.read(1 << 20):
                size += len(chunk)
                if size > self.limit:
                    raise Problem(413, "Payload Too Large", f"file: over the {size_text(self.limit)} cap")
                out.write(chunk)
        return path, modality

    def __exit__(self, *exc) -> None:
        if self.folder is not None:
            self.folder.cleanup()


def _suffix(head: bytes, modality: str) -> str:
    """A file extension matching the content, so the reader for that format is used."""
    if modality == "image":
        from PIL import Image

        formats = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}
        for signature, suffix in ((b"\xff\xd8", ".jpg"), (b"\x89PNG", ".png"), (b"GIF8", ".gif"), (b"BM", ".bmp"),
                                  (b"II*\x00", ".tif"), (b"MM\x00*", ".tif")):
            if head.startswith(signature):
                return suffix
        if head[8:12] == b"WEBP":
            return ".webp"
        try:
            return formats.get(Image.open(io.BytesIO(head)).format, ".png")
        except Exception:  # noqa: BLE001 - the reader will explain what is wrong
            return ".png"
    if modality == "audio":
        if head[8:12] == b"WAVE":
            return ".wav"
        if head.startswith(b"fLaC"):
            return ".flac"
        if head.startswith(b"OggS"):
            return ".ogg"
        if head[4:8] == b"ftyp":
            return ".m4a"
        return ".mp3"
    if modality == "video":
        if head[8:12] == b"AVI ":
            return ".avi"
        if head.startswith(b"\x1a\x45\xdf\xa3"):
            return ".mkv"
        return ".mp4"
    return ".txt"


# --- items ----------------------------------------------------------------------------------

def served_item(state: ServeState, item_id: int) -> Item:
    # an id past SQLite's signed 64 bits is simply unknown: checked here, at the edge, so no lookup
    # below can overflow on a client's number
    item = state.catalog.item_by_id(item_id) if MIN_ID <= item_id <= MAX_ID else None
    if item is None or state.roots.relative(item.path) is None:
        raise Problem(404, "Not Found", f"item {item_id}: no such item in the served roots")
    return item


def served_file(state: ServeState, item: Item) -> Path:
    resolved = Path(item.path).resolve()
    if state.roots.owner(resolved) is None:  # a symlink swapped in since indexing
        raise Problem(404, "Not Found", f"item {item.id}: file is outside the served roots")
    if not resolved.is_file():
        raise Problem(404, "Not Found", f"item {item.id}: file no longer exists")
    return resolved


@router.get("/items/{item_id}")
def item_details(state: State, item_id: int) -> dict:
    """An item's metadata and what the experts found in it: labels, transcript, OCR text, passages."""
    item = served_item(state, item_id)
    _, segments = state.catalog.item_detail(item.id) or (item, [])
    labels: dict[str, float] = {}
    transcript, passages, scenes, ocr = [], [], [], []
    for segment in segments:
        for name, score in segment.labels:
            labels[name] = max(labels.get(name, 0.0), float(score))
        if segment.source in SPEECH_SOURCES:
            transcript.append({"start": segment.start, "end": segment.end, "text": segment.text,
                               "words": [{"start": s, "end": e, "text": w} for s, e, w in segment.words]})
        elif segment.source == Source.FRAME:
            scenes.append({"start": segment.start, "end": segment.end, "text": segment.text})
        elif segment.source == Source.TEXT and segment.text:
            passages.append(segment.text)
        if segment.ocr and segment.ocr not in ocr:
            ocr.append(segment.ocr)
    return {"id": item.id, "path": state.roots.relative(item.path), "name": Path(item.path).name,
            "modality": item.modality, "kind": item.modality,
            "size": item.size, "duration": item.duration, "meta": item.meta, "indexed_at": item.indexed_at,
            "labels": [{"label": n, "score": round(s, 4)} for n, s in sorted(labels.items(), key=lambda p: -p[1])],
            "transcript": transcript, "ocr_text": "\n".join(ocr), "scenes": scenes, "passages": passages,
            "thumbnail_url": f"/api/v1/items/{item.id}/thumbnail", "media_url": f"/api/v1/items/{item.id}/media"}


@router.get("/items/{item_id}/thumbnail")
@router.head("/items/{item_id}/thumbnail", include_in_schema=False)  # headers only: a client checking first
def item_thumbnail(state: State, item_id: int,
                   t: Annotated[float | None, Query(ge=0, le=1e7, description="seconds: a video's frame at this time")] = None):
    item = served_item(state, item_id)
    try:
        picture = state.thumbnails.get(served_file(state, item), item.modality, at=t if item.modality == VIDEO else None)
    except Problem:
        raise
    except Exception as error:  # noqa: BLE001 - an undecodable file gets a clear 422, not a 500
        raise Problem(422, "No thumbnail", f"item {item_id}: cannot draw a thumbnail ({type(error).__name__})")
    return MediaResponse(picture, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/items/{item_id}/media")
@router.head("/items/{item_id}/media", include_in_schema=False)  # headers only: size and type before a download
def item_media(state: State, item_id: int):
    """The file itself; Range requests are answered with 206 (seeking in audio and video)."""
    path = served_file(state, served_item(state, item_id))
    return MediaResponse(path, media_type=media_type(path), content_disposition_type="inline", filename=path.name)


@router.delete("/items/{item_id}", dependencies=[Authorized])
def forget_item(state: State, item_id: int) -> dict:
    """Forget an item: its text, vectors and thumbnails are erased from the collection's files. The
    file itself stays where it is (the next index of its folder adds it again); 409 while indexing."""
    item = served_item(state, item_id)
    if state.jobs.running() is not None:
        raise Problem(409, "Conflict", "an index job is running; forget the item when it has finished")
    try:
        result = state.forget(item.path)
    except CollectionLockedError:
        raise Problem(409, "Conflict", "the collection is being written by another process; try again later")
    return {"id": item.id, "path": state.roots.relative(item.path), "forgotten": result["items"] == 1,
            "segments": result["segments"], "thumbnails": result["thumbnails"]}


# --- jobs -----------------------------------------------------------------------------------

class IndexRequest(BaseModel):
    folder: str = Field(min_length=1, max_length=4096, description="relative to a root, or absolute inside one")


@router.post("/jobs/index", status_code=202, dependencies=[Authorized])
def start_index(state: State, body: IndexRequest) -> dict:
    """Start indexing a folder inside a served root; 409 while another job runs."""
    folder = state.roots.confine(body.folder)
    if not folder.is_dir():
        raise Problem(422, "Invalid request", f"folder: {body.folder!r} is not a folder")
    job = state.jobs.start(folder, shown_as=state.roots.relative(folder) or ".")
    return job.as_dict() | {"events_url": f"/api/v1/jobs/{job.id}/events", "url": f"/api/v1/jobs/{job.id}"}


def _job(state: ServeState, job_id: str):
    job = state.jobs.get(job_id)
    if job is None:
        raise Problem(404, "Not Found", f"job {job_id!r}: no such job")
    return job


@router.get("/jobs/{job_id}")
def job_status(state: State, job_id: str) -> dict:
    return _job(state, job_id).as_dict()


@router.delete("/jobs/{job_id}", dependencies=[Authorized])
def cancel_job(state: State, job_id: str) -> dict:
    """Ask a job to stop after the file it is on (each file is one transaction)."""
    _job(state, job_id)
    return state.jobs.cancel(job_id).as_dict()


@router.get("/jobs/{job_id}/events")
async def job_events(request: Request, state: State, job_id: str):
    """Server-sent events: `progress` on every change, then `end` with the final state."""
    job = _job(state, job_id)

    async def stream():
        seen = -1
        idle = 0.0
        while True:
            if job.version != seen:
                seen = job.version
                snapshot = job.as_dict()
                name = "progress" if snapshot["state"] == RUNNING or snapshot["finished"] is None else "end"
                yield f"event: {name}\nid: {seen}\ndata: {json.dumps(snapshot)}\n\n"
                if name == "end":
                    return
                idle = 0.0
            elif idle >= 15.0:
                yield ": keep-alive\n\n"
                idle = 0.0
            if await request.is_disconnected() or (state.jobs.closing.is_set() and job.finished is not None):
                return
            await asyncio.sleep(0.2)
            idle += 0.2

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# --- health ---------------------------------------------------------------------------------

@router.get("/health")
def health(state: State) -> dict:
    modalities, segments = state.index_size()
    running = state.jobs.running()
    return {"status": "ok", "items": modalities, "segments": segments, "job": running.id if running else None,
            "roots": [root.name for root in state.roots.folders]}
