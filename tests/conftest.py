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

from helpers.cores import share_the_cores_among_workers  # noqa: E402 - after the environment above

share_the_cores_among_workers()

import torch  # noqa: E402 - after the environment above

TORCH_THREADS = torch.get_num_threads()  # read before any test module is imported


@pytest.fixture(autouse=True, scope="module")
def default_torch_threads():
    """Every test module starts on the machine's default torch threads. A module-level
    `torch.set_num_threads(1)` ran at collection and held for the whole suite (the small text-to-image
    training took 84 s in the suite against 32 s alone); modules that need one thread ask for
    `one_torch_thread` instead."""
    torch.set_num_threads(TORCH_THREADS)
    yield


@pytest.fixture(autouse=True, scope="module")
def released_default_experts():
    """Every test module ends by releasing the process's shared experts: a Whisper model left loaded
    keeps CTranslate2 threads that make torch's threads sleep between parallel regions, and the small
    trainings later in the suite ran up to 1.8x slower (`release_default_experts`)."""
    yield
    from sensorium.experts import release_default_experts

    release_default_experts()


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for this module's tests (bit-for-bit comparisons with one-thread worker processes,
    timings measured that way), the default again after it."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(TORCH_THREADS)


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


@pytest.fixture(scope="session")
def world_reader(tmp_path_factory):
    """A question answerer trained for about a minute on 64 px pictures of a small condition-A world
    (tests/test_world_vqa.py); the grounded captioner's tests train their word decoder on what its
    detector and object reader see (tests/test_world_captioner.py)."""
    from sensorium.training.world_reading import VQATraining, train_vqa
    from sensorium.world import Condition, SceneOptions, WorldSpec, make_world

    root = tmp_path_factory.mktemp("world_vqa")
    options = SceneOptions(size=64, min_objects=3, max_objects=5, condition=Condition.A)
    make_world(root / "train", 300, WorldSpec(seed=1, options=options), workers=1)
    make_world(root / "test", 40, WorldSpec(seed=2, options=options), workers=1)
    settings = VQATraining(detector_epochs=10, object_epochs=6, parser_epochs=12, parser_lr=6e-3, progress=False)
    vqa = train_vqa(root / "train", root / "run", settings)
    return root, vqa


@pytest.fixture(scope="session")
def worker_media(tmp_path_factory) -> Path:
    """The folder the worker, Ray and export tests embed (tests/helpers/workers.py), made once."""
    from helpers.workers import make_folder

    return make_folder(tmp_path_factory.mktemp("worker-media"))


@pytest.fixture(scope="session")
def one_process_index(worker_media, tmp_path_factory) -> dict:
    """What one process stores for `worker_media` (the reference the pools must match), indexed once."""
    from helpers.workers import PHOTOS, snapshot

    from sensorium import Collection

    directory = tmp_path_factory.mktemp("one-process") / "col"
    with Collection(directory) as col:
        report = col.index(worker_media)
    assert report.added == PHOTOS + 5 and [Path(p).name for p, _ in report.failed] == ["broken.png"]
    return snapshot(directory, worker_media)

