"""Shared fixtures. Readers: the generated corpora of valid and malformed files (built once per run)."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def good_corpus(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """(folder, {name: description}) of small valid files of every supported kind."""
    from helpers.corpora import make_good_corpus

    folder = tmp_path_factory.mktemp("good")
    return folder, make_good_corpus(folder)


@pytest.fixture(scope="session")
def bad_corpus(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """(folder, {name: expected reason substring}) of malformed files."""
    from helpers.corpora import make_bad_corpus

    folder = tmp_path_factory.mktemp("bad")
    return folder, make_bad_corpus(folder)
