"""Server paths never leave in an error message: they are rewritten before a problem is answered.

Why: a problem's `detail` goes to whoever sent the request. The library names files by their full
path in its errors (`ReadError(path, reason)`), which is right on the command line but tells a
client where the server keeps its collection, its uploads and its roots, and helps aim an attack.
A file inside a served root is shown as the API shows it (relative to its root), an upload as
"the upload", the collection folder by that name, and any other absolute path by its last part.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

UPLOAD = "the upload"
COLLECTION = "the collection folder"
END = r"(?=[\s'\":,;.)]|$)"  # where a folder's name ends, so /srv/a never matches /srv/ab
ABSOLUTE_PATH = re.compile(r"(?<![\w/.~-])/[^\s'\"]*[^\s'\":,;.)]")


class PathRedactor:
    """Rewrites the server's folders in a text: `redactor(text) -> text`."""

    def __init__(self, collection_dir: Path, roots: list[Path], upload_dir: str | None = None):
        temporary = Path(upload_dir or tempfile.gettempdir())
        named: list[tuple[str, str]] = []  # (folder, what it becomes)
        for root in roots:
            named.append((str(root), "" if len(roots) == 1 else root.name))
        named += [(str(collection_dir), COLLECTION)]
        for folder in {temporary, temporary.resolve()}:
            named.append((str(folder), UPLOAD))
        self._named = sorted(named, key=lambda pair: -len(pair[0]))  # the most specific folder first
        self._pattern = re.compile("|".join(rf"{re.escape(folder)}(?:/[^\s'\"]*[^\s'\":,;.)]|/|{END})"
                                            for folder, _ in self._named))

    def __call__(self, text: str) -> str:
        return ABSOLUTE_PATH.sub(_last_part, self._pattern.sub(self._shown, text))

    def _shown(self, match: re.Match) -> str:
        found = match.group(0)
        for folder, shown in self._named:
            if found == folder or found.startswith(folder + "/"):
                if shown in (UPLOAD, COLLECTION):
                    return shown
                inside = found[len(folder) + 1:].rstrip("/")
                return "/".join(part for part in (shown, inside) if part) or "."
        return _last_part(match)


def _last_part(match: re.Match) -> str:
    return Path(match.group(0)).name or "a file"
