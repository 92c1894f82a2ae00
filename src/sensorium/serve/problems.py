"""Every error the service returns is an RFC 9457 problem document, never a stack trace, and names
no server path (the library's messages go through the app's `PathRedactor` first)."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import Cancelled, CollectionLockedError, ConfigError, ModelError, QueryError, ReadError, SensoriumError
from .jobs import JobConflict
from .security import PathNotAllowed

PROBLEM_TYPE = "about:blank"
CLIENT_CLOSED_REQUEST = 499  # nginx's status for work abandoned because its client hung up
log = logging.getLogger("sensorium.serve")


class Problem(Exception):
    """Raise to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str, headers: dict | None = None, **extra):
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers
        self.extra = extra
        super().__init__(detail)


def problem_response(status: int, title: str, detail: str, headers: dict | None = None, **extra) -> JSONResponse:
    body = {"type": PROBLEM_TYPE, "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, error: Problem):
        return problem_response(error.status, error.title, error.detail, headers=error.headers, **error.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException):
        titles = {401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large"}
        detail = error.detail if isinstance(error.detail, str) else "request refused"
        return problem_response(error.status_code, titles.get(error.status_code, "HTTP error"), detail,
                                headers=getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError):
        fields = [{"field": ".".join(str(p) for p in e.get("loc", ())), "reason": e.get("msg", "")}
                  for e in error.errors()]
        detail = "; ".join(f"{f['field']}: {f['reason']}" for f in fields) or "invalid request"
        return problem_response(422, "Invalid request", detail, errors=fields)

    @app.exception_handler(PathNotAllowed)
    async def _path(request: Request, error: PathNotAllowed):
        return problem_response(403, "Path not allowed", f"{error.raw!r}: {error.reason}")

    @app.exception_handler(JobConflict)
    async def _conflict(request: Request, error: JobConflict):
        return problem_response(409, "An indexing job is already running", str(error), running_job=error.running.id)

    @app.exception_handler(SensoriumError)
    async def _sensorium(request: Request, error: SensoriumError):
        detail = request.app.state.redact(str(error))  # library messages name files by their full path
        if isinstance(error, (QueryError, ReadError)):
            return problem_response(400, "Bad query", detail)
        if isinstance(error, CollectionLockedError):
            return problem_response(409, "Collection busy", detail)
        if isinstance(error, Cancelled):  # the client left: nobody reads this, but the log shows why
            return problem_response(CLIENT_CLOSED_REQUEST, "Client closed request", detail)
        if isinstance(error, (ModelError, ConfigError)):
            return problem_response(503, "Service unavailable", detail)
        return problem_response(400, "Request failed", detail)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(500, "Internal error", "the server failed to answer; see its log")
