"""Shared fixtures. Readers: the generated corpora of valid and malformed files (built once per run).
Every run signs with a throwaway identity: the user's own `~/.config/sensorium` is never touched."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# set before any test (and any CLI process a test starts, which inherits it) can make a signing key
os.environ["SENSORIUM_CONFIG"] = tempfile.mkdtemp(prefix="sensorium-test-config-")
os.environ.pop("SENSORIUM_SIGNING_KEY", None)
os.environ.pop("SENSORIUM_SIGNING_CHAIN", None)


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
