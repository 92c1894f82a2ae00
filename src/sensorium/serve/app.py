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

from ..experts import SPEECH_IDLE_SECONDS
from .guard import GuardMiddleware
from .metrics import MetricsMiddleware
from .problems import install_problem_handlers
from .security import OriginPolicy, is_loopback
from .state import MAX_BODY_BYTES, MAX_UPLOAD_BYTES, ServeState

STATIC = Path(__file__).parent / "static"
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]

__all__ = ["create_app", "is_loopback", "run_server"]


def create_app(collection_dir: str | Path, roots: list[Path], token_path: Path | None = None,
               allowed_hosts: list[str] | None = None, thumbnail_mb: int = 256,
               allow_origins: list[str] | None = None, max_upload_bytes: int = MAX_UPLOAD_BYTES,
               calibrations: list[Path] | None = None,
               speech_idle_seconds: float | None = SPEECH_IDLE_SECONDS) -> FastAPI:
    """The service for one collection; clients may only reach files under `roots`, and browsers
    may make requests that change state or cost work only from its own page or `allow_origins`."""
    from .api import router
    from .generate import router as generate_router
    from .imagine import router as imagine_router

    origins = OriginPolicy(allow_origins or ())  # a malformed origin is a ConfigError before any state
    state = ServeState(Path(collection_dir), roots, token_path, thumbnail_bytes=thumbnail_mb * 1024**2,
                       max_upload_bytes=max_upload_bytes, calibrations=calibrations,
                       speech_idle_seconds=speech_idle_seconds)
    state.thumbnails.prune()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        state.jobs.shutdown()  # each job stops after its current file (one transaction each)

    app = FastAPI(title="Sensorium", version="1", lifespan=lifespan, openapi_url="/api/v1/openapi.json",
                  docs_url=None, redoc_url=None)  # the stock docs pages load scripts from a CDN
    app.state.serve = state
    app.state.redact = state.redact
    install_problem_handlers(app)
    app.include_router(router)
    app.include_router(generate_router)
    app.include_router(imagine_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index_page():
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    @app.get("/metrics", include_in_schema=False)
    def metrics():
        from fastapi import Response

        return Response(state.metrics.render(), media_type=state.metrics.content_type)

    app.add_middleware(GuardMiddleware, upload_bytes=max_upload_bytes, body_bytes=MAX_BODY_BYTES,
                       allowed_hosts=allowed_hosts, origins=origins)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app


def run_server(collection_dir: Path, roots: list[Path], host: str = "127.0.0.1", port: int = 8765,
               allow_remote: bool = False, log_level: str = "info", thumbnail_mb: int = 256,
               allow_origins: list[str] | None = None, calibrations: list[Path] | None = None,
               speech_idle_seconds: float | None = SPEECH_IDLE_SECONDS) -> None:
    """Serve until SIGINT/SIGTERM; on either, a running index job stops after its current file."""
    import uvicorn

    from ..errors import ConfigError

    if not is_loopback(host) and not allow_remote:
        raise ConfigError(f"--host {host}: listening beyond this machine needs --allow-remote")
    app = create_app(collection_dir, roots, allowed_hosts=LOOPBACK_HOSTS if is_loopback(host) else None,
                     thumbnail_mb=thumbnail_mb, allow_origins=allow_origins, calibrations=calibrations,
                     speech_idle_seconds=speech_idle_seconds)
    state: ServeState = app.state.serve

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            state.jobs.request_stop()  # ends event streams and the job loop before connections drain
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=10,
                            proxy_headers=False, server_header=False)
    Server(config).run()
