"""The checks every request passes before any route sees it, as one pure ASGI middleware.

Why pure ASGI: the checks read headers and count body bytes as they arrive, and streamed answers
(media, server-sent events) pass through unbuffered. Why here and not in each route: a refusal
must hold for every route, including those added later. In order: the Host header (DNS
rebinding), the page a browser request comes from (`OriginPolicy`), then the body size, by
Content-Length and while streaming, so a chunked upload over the cap gets its 413 too. Every
answer gets the security headers.
"""
from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .problems import problem_response
from .security import OriginPolicy

UPLOAD_ROUTES = ("/api/v1/search", "/api/v1/classify")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),  # other sites' pages cannot embed media or thumbnails
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; object-src 'none'; "
     b"frame-ancestors 'none'"),
]
TOO_LARGE = (413, "Payload Too Large")


class BodyTooLarge(Exception):
    """Raised to the app reading a request body once it passes the cap."""


def size_text(size: int) -> str:
    return f"{size // (1024 * 1024)} MB" if size >= 1024 * 1024 else f"{size} bytes"


class GuardMiddleware:
    """Refuses requests for a foreign Host, from a foreign page, or with a body over its cap."""

    def __init__(self, app: ASGIApp, upload_bytes: int, body_bytes: int, allowed_hosts: list[str] | None = None,
                 origins: OriginPolicy | None = None):
        self.app = app
        self.upload_bytes = upload_bytes
        self.body_bytes = body_bytes
        self.allowed_hosts = set(allowed_hosts or ())
        self.origins = origins or OriginPolicy()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send_guarded)
            return
        await self._capped(scope, receive, send_guarded)

    def _refusal(self, scope: Scope):
        """The problem response refusing this request by its headers, or None."""
        headers = dict(scope["headers"])
        if self.allowed_hosts:
            host = headers.get(b"host", b"").decode("latin-1")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in self.allowed_hosts:
                return problem_response(400, "Bad Request", f"Host header {host!r} is not this server")
        if self.origins.guards(scope["method"], scope["path"]):
            origin, site = headers.get(b"origin"), headers.get(b"sec-fetch-site")
            reason = self.origins.refusal(None if origin is None else origin.decode("latin-1"),
                                          None if site is None else site.decode("latin-1"),
                                          scope.get("scheme", "http"), scope.get("server"))
            if reason is not None:
                return problem_response(403, "Forbidden", reason)
        limit = self._limit(scope)
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return problem_response(*TOO_LARGE, self._too_large(limit))
        return None

    def _limit(self, scope: Scope) -> int:
        return self.upload_bytes + self.body_bytes if scope["path"] in UPLOAD_ROUTES else self.body_bytes

    def _too_large(self, limit: int) -> str:
        return f"request body over {size_text(limit)} (uploads are capped at {size_text(self.upload_bytes)})"

    async def _capped(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app, cutting the body off at the cap; whatever the app then answers (a multipart
        parser reports a cut-off body as malformed, a 400), the client gets the 413 that fits."""
        limit, received, over, started = self._limit(scope), 0, False, False

        async def counted() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise BodyTooLarge(self._too_large(limit))
            return message

        async def unless_over(message: Message) -> None:
            nonlocal started
            if over:
                return  # the app's answer to a body it could not finish reading
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, unless_over)
        except Exception:  # noqa: BLE001 - BodyTooLarge, or what the app made of it
            if not over:
                raise
        if over and not started:
            await problem_response(*TOO_LARGE, self._too_large(limit))(scope, receive, send)
