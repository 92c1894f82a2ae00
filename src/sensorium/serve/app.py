"""The FastAPI application over one collection, and the uvicorn runner with graceful shutdown.

Why one `ServeState`: the experts (seconds to load) are created once per app and shared by the
search view and the indexing job; the search view is reopened when a job ends so new items are
findable, while searches running meanwhile keep using the previous view.
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from .metrics import MetricsMiddleware
from .problems import install_problem_handlers, problem_response
from .state import MAX_BODY_BYTES, MAX_UPLOAD_BYTES, ServeState

STATIC = Path(__file__).parent / "static"
UPLOAD_ROUTES = ("/api/v1/search", "/api/v1/classify")
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; object-src 'none'; "
     b"frame-ancestors 'none'"),
]


class GuardMiddleware:
    """Checks the Host header (DNS rebinding), caps request bodies (by Content-Length and while
    streaming) and adds security headers to every response."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str] | None = None):
        self.app = app
        self.allowed_hosts = set(allowed_hosts or ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.allowed_hosts:
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in self.allowed_hosts:
                response = problem_response(400, "Bad Request", f"Host header {host!r} is not this server")
                await response(scope, receive, send)
                return
        limit = MAX_UPLOAD_BYTES + MAX_BODY_BYTES if scope["path"] in UPLOAD_ROUTES else MAX_BODY_BYTES
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            response = problem_response(413, "Payload Too Large",
                                        f"request body over {limit} bytes (uploads are capped at "
                                        f"{MAX_UPLOAD_BYTES // (1024 * 1024)} MB)")
            await response(scope, receive, send)
            return
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    from .problems import Problem

                    raise Problem(413, "Payload Too Large", f"request body over {limit} bytes")
            return message

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, counted, with_headers)


def create_app(collection_dir: str | Path, roots: list[Path], token_path: Path | None = None,
               allowed_hosts: list[str] | None = None, thumbnail_mb: int = 256) -> FastAPI:
    """The service for one collection; clients may only reach files under `roots`."""
    from .api import router

    state = ServeState(Path(collection_dir), roots, token_path, thumbnail_bytes=thumbnail_mb * 1024**2)
    state.thumbnails.prune()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        state.jobs.shutdown()  # each job stops after its current file (one transaction each)

    app = FastAPI(title="Sensorium", version="1", lifespan=lifespan, openapi_url="/api/v1/openapi.json",
                  docs_url=None, redoc_url=None)  # the stock docs pages load scripts from a CDN
    app.state.serve = state
    install_problem_handlers(app)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index_page():
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    @app.get("/metrics", include_in_schema=False)
    def metrics():
        from fastapi import Response

        return Response(state.metrics.render(), media_type=state.metrics.content_type)

    app.add_middleware(GuardMiddleware, allowed_hosts=allowed_hosts)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run_server(collection_dir: Path, roots: list[Path], host: str = "127.0.0.1", port: int = 8765,
               allow_remote: bool = False, log_level: str = "info", thumbnail_mb: int = 256) -> None:
    """Serve until SIGINT/SIGTERM; on either, a running index job stops after its current file."""
    import uvicorn

    from ..errors import ConfigError

    if not is_loopback(host) and not allow_remote:
        raise ConfigError(f"--host {host}: listening beyond this machine needs --allow-remote")
    app = create_app(collection_dir, roots, allowed_hosts=LOOPBACK_HOSTS if is_loopback(host) else None,
                     thumbnail_mb=thumbnail_mb)
    state: ServeState = app.state.serve

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            state.jobs.request_stop()  # ends event streams and the job loop before connections drain
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=10,
                            proxy_headers=False, server_header=False)
    Server(config).run()
