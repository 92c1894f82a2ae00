"""The two guards of the service: a bearer token for writes, and confinement of paths to roots.

Why a token file: the service may share a machine with other users; the token is created once,
readable by its owner only (0600), so only someone who can read the collection folder can index.
Why confinement: every path a client names (an index folder) or the service hands out (media of
an item) must resolve, symlinks followed, inside a folder the operator configured with --root.
"""
from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path, PurePosixPath

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
