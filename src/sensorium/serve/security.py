"""The three guards of the service: a bearer token for writes, confinement of paths to roots, and
the refusal of requests a foreign web page makes on a visitor's behalf.

Why a token file: the service may share a machine with other users; the token is created once,
readable by its owner only (0600), so only someone who can read the collection folder can index.
Why confinement: every path a client names (an index folder) or the service hands out (media of
an item) must resolve, symlinks followed, inside a folder the operator configured with --root.
Why an origin check: a page on any web site can make its visitor's browser send requests to a
loopback server (a form post, an image tag); the browser says where they come from in `Origin`
and `Sec-Fetch-Site`, so requests that change state or cost work are refused unless they come
from this server's own page, from a program (no such headers), or from an origin the operator named.
"""
from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from ..errors import ConfigError

TOKEN_FILE = "serve.token"
OUTSIDE_ROOTS = "outside the served roots"


def load_or_create_token(path: Path) -> str:
    """The token stored at `path`, creating it (owner read/write only) on first start."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = path.read_text(encoding="utf-8").strip()
        if len(token) < 32:
            raise ConfigError(f"{path}: token file is empty or too short; delete it to make a new one")
        return token
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token


def token_matches(header: str | None, token: str) -> bool:
    """True when an `Authorization: Bearer <token>` header carries this token (constant time)."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


class PathNotAllowed(Exception):
    """A client-named path is malformed or falls outside every configured root."""

    def __init__(self, raw: str, reason: str):
        self.raw = raw
        self.reason = reason
        super().__init__(f"{raw!r}: {reason}")


class Roots:
    """The folders the service may index and stream from, resolved once at start."""

    def __init__(self, folders: list[Path]):
        self.folders = [Path(f).expanduser().resolve(strict=True) for f in folders]

    def owner(self, path: Path) -> Path | None:
        """The root containing the already resolved `path`, or None."""
        for root in self.folders:
            if path == root or path.is_relative_to(root):
                return root
        return None

    def relative(self, path: str | Path) -> str | None:
        """`path` relative to its root (for display), or None when outside every root."""
        resolved = Path(path).resolve()
        root = self.owner(resolved)
        if root is None:
            return None
        relative = resolved.relative_to(root).as_posix()
        return relative if len(self.folders) == 1 else f"{root.name}/{relative}"

    def confine(self, raw: str) -> Path:
        """Resolve a client-named folder: relative to a root or absolute inside one, no `..`.

        `..` is refused outright rather than normalised, percent signs are taken literally (the
        API never decodes a path twice), and symlinks are followed before the root check, so a
        link pointing out of a root is refused too.
        """
        if not isinstance(raw, str) or not raw.strip():
            raise PathNotAllowed(str(raw), "empty path")
        if "\x00" in raw or len(raw) > 4096:
            raise PathNotAllowed(raw, "malformed path")
        if ".." in PurePosixPath(raw.replace("\\", "/")).parts:
            raise PathNotAllowed(raw, "'..' is not allowed in paths")
        candidates = [Path(raw)] if os.path.isabs(raw) else [root / raw for root in self.folders]
        for candidate in candidates:
            try:
                # not strict: a path outside every root gets one answer whether or not it exists
                leads_to = candidate.resolve(strict=False)
            except (OSError, RuntimeError):  # a symlink loop
                continue
            if self.owner(leads_to) is None:
                raise PathNotAllowed(raw, OUTSIDE_ROOTS)
            try:
                resolved = candidate.resolve(strict=True)
            except (OSError, RuntimeError):
                continue
            if self.owner(resolved) is not None:
                return resolved
            raise PathNotAllowed(raw, OUTSIDE_ROOTS)
        raise PathNotAllowed(raw, "no such file or folder inside the served roots")


# --- requests from other web pages -------------------------------------------------------------

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
EXPENSIVE_READS = frozenset({"/api/v1/search"})  # a GET that runs the experts
FOREIGN_FETCH_SITES = frozenset({"cross-site", "same-site"})  # same-site: another port or subdomain
DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def normalise_origin(text: str) -> str:
    """`scheme://host[:port]` as browsers send it in `Origin` (lower case, default port left out);
    ValueError for anything else (a path, a query, credentials, another scheme)."""
    try:
        parts = urlsplit(str(text).strip())
        port = parts.port
    except ValueError as error:
        raise ValueError(f"{text!r}: not an origin ({error})") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.username or parts.password \
            or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{text!r}: an origin is scheme://host[:port], e.g. http://localhost:3000")
    return _origin(parts.scheme, parts.hostname, port)


def _origin(scheme: str, host: str, port: int | None) -> str:
    host = host.lower()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"{scheme}://{host}" if port in (None, DEFAULT_PORTS.get(scheme)) else f"{scheme}://{host}:{port}"


class OriginPolicy:
    """Decides whether a browser request comes from a page allowed to make it.

    This server's own origin is the scheme, address and port it answers on (the socket, never the
    Host header, which a DNS-rebinding page controls), with the loopback names counted as one.
    """

    def __init__(self, allowed: Iterable[str] = ()):
        try:
            self.allowed = frozenset(normalise_origin(origin) for origin in allowed)
        except ValueError as error:
            raise ConfigError(f"allowed origin {error}") from None

    def guards(self, method: str, path: str) -> bool:
        """Whether a request of this method to this path must pass the check."""
        return method.upper() not in SAFE_METHODS or path in EXPENSIVE_READS

    def own(self, scheme: str, server: tuple[str, int] | None) -> set[str]:
        if server is None:
            return set()
        host, port = server[0], server[1]
        names = LOOPBACK_NAMES if is_loopback(host) else (host,)
        return {_origin(scheme, name, port) for name in names}

    def refusal(self, origin: str | None, fetch_site: str | None, scheme: str,
                server: tuple[str, int] | None) -> str | None:
        """Why the request is refused, or None when it may go on."""
        if origin is not None:
            try:
                named = normalise_origin(origin)
            except ValueError:
                named = None  # "null" (a sandboxed frame, a file) or garbage: nobody's page
            if named is not None and named in self.allowed:
                return None
            if named is None or named not in self.own(scheme, server):
                return (f"cross-site request refused: Origin {origin!r} is not this server's page "
                        f"(serve --allow-origin ORIGIN allows a named one)")
        if fetch_site is not None and fetch_site.lower() in FOREIGN_FETCH_SITES:
            return f"cross-site request refused: Sec-Fetch-Site is {fetch_site!r}, not this server's page"
        return None
