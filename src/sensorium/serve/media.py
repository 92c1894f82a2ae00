"""Thumbnails and media streaming for items.

Thumbnails are small JPEGs made with Pillow (photos), PyAV (a frame of a video: at a hit's time
when one is asked for, so a hit shows the moment it matched), or drawn
(the waveform of a recording, the first lines of a note), and cached in the collection folder
under a name derived from the file's path, size and mtime (`sensorium.index.thumbnails`: a collection
forgetting a file deletes its thumbnails by the path's tag), so a changed file gets a new one;
the cache is bounded in bytes and drops the least recently used thumbnails first.
Streaming uses Starlette's FileResponse, which answers HTTP Range requests (206, Content-Range,
Accept-Ranges) itself; the browser's <audio>/<video> seeking relies on that. `MediaResponse` checks
the Range header first, so a bad one is a problem document like every other error (Starlette
would answer plain text), and a file gone since the route found it is a 404, not a 500.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from pathlib import Path

import anyio
import numpy as np
from PIL import Image, ImageDraw, ImageOps
from starlette.datastructures import Headers
from starlette.responses import FileResponse, MalformedRangeHeader, RangeNotSatisfiable
from starlette.types import Receive, Scope, Send

from ..index.thumbnails import THUMB_DIR, thumbnail_name  # noqa: F401 - THUMB_DIR re-exported
from ..modality import AUDIO, IMAGE, VIDEO
from .problems import problem_response

THUMB_SIZE = 320
BACKGROUND = (238, 240, 244)
INK = (52, 64, 84)

MEDIA_TYPES = {
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp", ".gif": "image/gif",
    ".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff",
    ".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".opus": "audio/ogg", ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4", ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime",
    ".webm": "video/webm", ".mkv": "video/x-matroska", ".avi": "video/x-msvideo",
    ".txt": "text/plain; charset=utf-8", ".md": "text/plain; charset=utf-8",
}


def media_type(path: Path) -> str:
    return MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")


class MediaResponse(FileResponse):
    """A file, whole or by Range; its errors are problem documents."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            info = await anyio.to_thread.run_sync(os.stat, self.path)
        except OSError:
            gone = problem_response(404, "Not Found", "the file no longer exists")
            await gone(scope, receive, send)
            return
        self.stat_result = info
        self.set_stat_headers(info)
        refusal = self._range_refusal(Headers(scope=scope), info.st_size)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def _range_refusal(self, headers: Headers, size: int):
        """The problem answering a Range header FileResponse would refuse, or None."""
        wanted, condition = headers.get("range"), headers.get("if-range")
        if wanted is None or (condition is not None and not self._should_use_range(condition)):
            return None
        try:
            self._parse_range_header(wanted, size)
        except MalformedRangeHeader as error:
            return problem_response(400, "Bad Range", f"Range header {wanted[:100]!r}: {error.content}")
        except RangeNotSatisfiable:
            return problem_response(416, "Range Not Satisfiable", f"Range {wanted[:100]!r} lies outside the "
                                    f"file's {size} bytes", headers={"Content-Range": f"bytes */{size}"})
        return None


class ThumbnailCache:
    """JPEG thumbnails on disk, bounded in bytes, least recently used dropped first.

    Entries are named by the source's path, size and mtime, so an edited or deleted file leaves
    its old thumbnail behind; the byte budget is what eventually clears those. A hit refreshes the
    entry's mtime (at most once a minute per entry), which is the recency that pruning reads.
    """

    def __init__(self, directory: Path, max_bytes: int = 256 * 1024**2):
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._bytes: int | None = None  # known total, counted on first use

    def get(self, path: Path, modality: str, at: float | None = None) -> Path:
        """The thumbnail of `path`, made on first request; for a video, `at` seconds picks the frame
        (to a tenth of a second, so the cache holds a handful per video, not one per request)."""
        stat = path.stat()
        at = None if at is None else round(float(at), 1)
        target = self.directory / thumbnail_name(path, stat.st_size, stat.st_mtime_ns, THUMB_SIZE, at)
        try:
            seen = target.stat().st_mtime
        except FileNotFoundError:
            return self._make(path, modality, target, at)
        now = time.time()
        if now - seen > 60:
            with contextlib.suppress(OSError):  # pruned by another request meanwhile: still served once
                os.utime(target, (now, now))
        return target

    def prune(self, keep: Path | None = None) -> int:
        """Delete least recently used thumbnails until the cache is within budget; returns the count.

        `keep` (the thumbnail about to be served) is never deleted. Also clears temporary files
        left by a process killed while writing one."""
        with self._lock:
            entries, total, removed = [], 0, 0
            if not self.directory.is_dir():
                self._bytes = 0
                return 0
            stale_before = time.time() - 3600
            keep_name = str(keep) if keep is not None else None
            for entry in os.scandir(self.directory):
                try:
                    info = entry.stat()
                except FileNotFoundError:
                    continue
                if entry.name.endswith(".tmp"):
                    if info.st_mtime < stale_before:
                        removed += _unlink(entry.path)
                    continue
                entries.append((info.st_mtime, info.st_size, entry.path))
                total += info.st_size
            if total > self.max_bytes:
                entries.sort()
                goal = int(self.max_bytes * 0.8)  # hysteresis: not a prune on every new thumbnail
                for _, size, name in entries:
                    if total <= goal:
                        break
                    if name != keep_name and _unlink(name):
                        total -= size
                        removed += 1
            self._bytes = total
            return removed

    def recount(self) -> None:
        """Thumbnails were deleted behind the cache's back (a forgotten file's): count again on next use."""
        with self._lock:
            self._bytes = None

    def size_bytes(self) -> int:
        if self._bytes is None:
            self.prune()
        return self._bytes or 0

    def _make(self, path: Path, modality: str, target: Path, at: float | None = None) -> Path:
        before = self.size_bytes()  # counted before the new file exists, so it is counted once
        picture = _render(path, modality, at)
        picture.thumbnail((THUMB_SIZE, THUMB_SIZE))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")  # atomic: no half-written thumbnail
        with os.fdopen(fd, "wb") as handle:
            picture.convert("RGB").save(handle, "JPEG", quality=82)
        size = os.path.getsize(tmp)
        os.replace(tmp, target)
        if before + size > self.max_bytes:
            self.prune(keep=target)
        else:
            with self._lock:
                self._bytes = (self._bytes or 0) + size
        return target


def _unlink(name: str) -> int:
    try:
        os.unlink(name)
        return 1
    except FileNotFoundError:
        return 0


def _render(path: Path, modality: str, at: float | None = None) -> Image.Image:
    if modality == IMAGE:
        with Image.open(path) as image:
            image.draft("RGB", (THUMB_SIZE, THUMB_SIZE))  # JPEG: decode at reduced size
            return ImageOps.exif_transpose(image).convert("RGB")
    if modality == VIDEO:
        return video_keyframe(path) if at is None else video_frame_at(path, at)
    if modality == AUDIO:
        return _waveform(path)
    return _text_card(path)


def video_keyframe(path: Path) -> Image.Image:
    """The first keyframe at or after 10% of the video (the opening frame is often black)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"
        if stream.duration and stream.time_base:
            try:
                container.seek(int(stream.duration * 0.1), stream=stream)
            except av.error.FFmpegError:
                container.seek(0)
        for frame in container.decode(stream):
            return frame.to_image()
    raise ValueError(f"{path}: no video frame")


def video_frame_at(path: Path, seconds: float) -> Image.Image:
    """The frame shown at `seconds` (the last one when the video is shorter): seek to the keyframe
    before it, then decode forward to it. Like the video reader that timed the hit, `seconds` counts
    from the video's first frame, not from the container's clock (MPEG-TS and cut files start later)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.time_base and stream.start_time is not None:
            seconds += float(stream.start_time * stream.time_base)
        if stream.time_base:
            try:
                container.seek(int(seconds / stream.time_base), stream=stream, backward=True)
            except av.error.FFmpegError:
                container.seek(0)
        shown = None
        for frame in container.decode(stream):
            if shown is not None and frame.time is not None and frame.time > seconds:
                break
            shown = frame
        if shown is None:
            raise ValueError(f"{path}: no video frame")
        return shown.to_image()


def _waveform(path: Path) -> Image.Image:
    from ..readers import read

    payload = read(path)
    samples = payload.audio.samples if getattr(payload, "modality", "") == "video" else payload.samples
    width, height = THUMB_SIZE, THUMB_SIZE * 3 // 4
    picture = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(picture)
    if samples.size:
        columns = np.array_split(np.abs(samples), width)
        peaks = np.array([c.max() if c.size else 0.0 for c in columns])
        peaks = peaks / max(float(peaks.max()), 1e-6)
        middle = height // 2
        for x, peak in enumerate(peaks):
            reach = int(peak * (height * 0.42))
            draw.line([(x, middle - reach), (x, middle + reach)], fill=INK)
    return picture


def _text_card(path: Path) -> Image.Image:
    with open(path, "rb") as handle:
        text = handle.read(2000).decode("utf-8", errors="replace")
    picture = Image.new("RGB", (THUMB_SIZE, THUMB_SIZE * 3 // 4), (255, 255, 250))
    draw = ImageDraw.Draw(picture)
    lines = [line[:44] for line in text.splitlines() if line.strip()][:14]
    for row, line in enumerate(lines):
        draw.text((10, 8 + row * 16), line, fill=INK)
    return picture
