"""`sensorium align CONFIG.toml --out DIR`: train an image-text space from a TOML file.

The config names the pairs, the training settings (AlignConfig fields) and how the learned cosine
is combined with the label bridge's: `combine = "auto"` picks w by k-fold cross-validation BY
PHOTO on the training pairs, from candidates that include 0, so the attached space is never worse
than the bridge alone on the training data (benchmarks/coco_align.py: on 64 COCO photos the
learned space alone loses to the bridge, bridge + 0.25 x learned wins a little).

Heads: image <- EfficientNet native (1280) + bridge shared (384), the two vectors a collection
already stores for every photo and video shot, so attaching never re-runs the experts;
text <- the text expert's embedding (384), what a search query already computes.

Example (examples/align_coco.toml):

    combine = "auto"
    [pairs]
    manifest = "coco_pairs.csv"   # relative to this file; or folder = "photos/" (NAME.jpg + NAME.txt)
    image = "image"               # column with the photo path
    text = "caption"              # column with the caption
    [train]
    loss = "infonce"
    dim = 256
    epochs = 60
"""
from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ReadError
from .attach import ALIGN_FILE, IMAGE_HEAD, TEXT_HEAD
from .train import AlignConfig, train_space

WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
IMAGE_INPUTS = ["image", "shared"]  # catalog spaces concatenated for the image head, in this order
TOP_KEYS = {"combine", "combine_folds", "combine_weights", "pairs", "train", "features"}
PAIR_KEYS = {"manifest", "folder", "image", "text", "group"}
FEATURE_KEYS = {"cache", "ocr", "people"}

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class AlignJob:
    manifest: Path | None = None
    folder: Path | None = None
    image_column: str = "image"
    text_column: str = "caption"
    group_column: str | None = None
    train: AlignConfig = field(default_factory=AlignConfig)
    combine: str | float = "auto"
    combine_folds: int = 4
    combine_weights: tuple[float, ...] = WEIGHTS
    cache: Path | None = None
    ocr: bool = True
    people: bool = True
    source: str = ""


def _typed(value, kind, key: str):
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    return value


_TRAIN_TYPES = {"dim": int, "head": str, "hidden": int, "dropout": float, "loss": str, "epochs": int,
                "batch_size": int, "lr": float, "weight_decay": float, "warmup_steps": int,
                "min_lr_ratio": float, "seed": int, "hard_negatives": bool, "loss_options": dict,
                "threads": int}


def load_job(path: str | Path) -> AlignJob:
    """Read and validate an align TOML; every error names the key at fault."""
    path = Path(path)
    if not path.is_file():
        raise ReadError(path, "config file not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    base = path.parent
    where = str(path)
    extra = sorted(set(data) - TOP_KEYS)
    if extra:
        raise ConfigError(f"{where}: unknown key {extra[0]!r} (allowed: {', '.join(sorted(TOP_KEYS))})")
    job = AlignJob(source=str(path.resolve()))

    pairs = data.get("pairs")
    if not isinstance(pairs, dict):
        raise ConfigError(f"{where}: pairs: missing [pairs] table (manifest = ... or folder = ...)")
    extra = sorted(set(pairs) - PAIR_KEYS)
    if extra:
        raise ConfigError(f"{where}: pairs.{extra[0]}: unknown key (allowed: {', '.join(sorted(PAIR_KEYS))})")
    if ("manifest" in pairs) == ("folder" in pairs):
        raise ConfigError(f"{where}: pairs: give exactly one of pairs.manifest or pairs.folder")
    for key in ("manifest", "folder"):
        if key in pairs:
            value = Path(_typed(pairs[key], str, f"pairs.{key}")).expanduser()
            setattr(job, key, value if value.is_absolute() else base / value)
    job.image_column = _typed(pairs.get("image", job.image_column), str, "pairs.image")
    job.text_column = _typed(pairs.get("text", job.text_column), str, "pairs.text")
    if "group" in pairs:
        job.group_column = _typed(pairs["group"], str, "pairs.group") or None

    train = data.get("train", {})
    if not isinstance(train, dict):
        raise ConfigError(f"{where}: train: expected a [train] table")
    extra = sorted(set(train) - set(_TRAIN_TYPES))
    if extra:
        raise ConfigError(f"{where}: train.{extra[0]}: unknown key (allowed: {', '.join(sorted(_TRAIN_TYPES))})")
    values = {key: _typed(value, _TRAIN_TYPES[key], f"train.{key}") for key, value in train.items()}
    job.train = AlignConfig(**values)
    try:
        job.train.validate()
    except ConfigError as exc:
        raise ConfigError(f"{where}: train.{exc}") from None
    if job.train.head not in ("linear", "mlp"):
        raise ConfigError(f"{where}: train.head: {job.train.head!r} is not one of linear, mlp")

    combine = data.get("combine", "auto")
    if isinstance(combine, str):
        if combine != "auto":
            raise ConfigError(f"{where}: combine: expected \"auto\" or a number >= 0, got {combine!r}")
    else:
        combine = _typed(combine, float, "combine")
        if not np.isfinite(combine) or combine < 0:
            raise ConfigError(f"{where}: combine: must be >= 0, got {combine}")
    job.combine = combine
    job.combine_folds = _typed(data.get("combine_folds", job.combine_folds), int, "combine_folds")
    if job.combine_folds < 2:
        raise ConfigError(f"{where}: combine_folds: must be >= 2, got {job.combine_folds}")
    weights = data.get("combine_weights", list(WEIGHTS))
    if not isinstance(weights, list) or not weights:
        raise ConfigError(f"{where}: combine_weights: expected a non-empty list of numbers")
    weights = sorted({_typed(w, float, "combine_weights") for w in weights})
    if weights[0] < 0:
        raise ConfigError(f"{where}: combine_weights: weights must be >= 0")
    job.combine_weights = tuple(sorted(set(weights) | {0.0}))  # 0 always allowed: never worse than the bridge

    features = data.get("features", {})
    if not isinstance(features, dict):
        raise ConfigError(f"{where}: features: expected a [features] table")
    extra = sorted(set(features) - FEATURE_KEYS)
    if extra:
        raise ConfigError(f"{where}: features.{extra[0]}: unknown key (allowed: {', '.join(sorted(FEATURE_KEYS))})")
    if "cache" in features:
        cache = Path(_typed(features["cache"], str, "features.cache")).expanduser()
        job.cache = cache if cache.is_absolute() else base / cache
    job.ocr = _typed(features.get("ocr", True), bool, "features.ocr")
    job.people = _typed(features.get("people", True), bool, "features.people")
    return job


# --- running ----------------------------------------------------------------------------------
@dataclass
class PairFeatures:
    image_in: np.ndarray  # (photos, 1664) native + shared, one row per distinct photo
    shared: np.ndarray  # (photos, 384) bridge vectors (what a collection stores as "shared")
    text: np.ndarray  # (pairs, 384) text expert embeddings (= a search query's vector)
    owner: np.ndarray  # (pairs,) photo row of each caption
    photos: list[str]


def extract(job: AlignJob, progress: Progress | None = None) -> tuple[PairFeatures, dict]:
    from ..paths import home
    from ..space.image_bridge import ImageBridge
    from .data import load_pairs, pairs_from_folder
    from .features import FeatureCache, image_bridge_extractor, text_extractor

    if job.manifest is not None:
        pairs = load_pairs(job.manifest, job.image_column, job.text_column, "image", "text", job.group_column)
    else:
        pairs = pairs_from_folder(job.folder)
    photos = sorted({str(p.left) for p in pairs})
    index = {p: i for i, p in enumerate(photos)}
    owner = np.asarray([index[str(p.left)] for p in pairs])
    captions = [str(p.right) for p in pairs]
    cache = FeatureCache(job.cache or home() / "align-features")
    bridge = ImageBridge(detect_people=job.people, ocr="auto" if job.ocr else "never")
    image_expert, text_expert = image_bridge_extractor(bridge), text_extractor(encoder=bridge.encoder)
    chunks: list[dict] = []
    step = image_expert.batch_size
    for first in range(0, len(photos), step):
        if progress:
            progress("photo features", first, len(photos))
        chunks.append(cache.image_features(image_expert, photos[first:first + step]))
    if progress:
        progress("photo features", len(photos), len(photos))
        progress("caption features", 0, len(captions))
    text = cache.text_features(text_expert, captions)["text"]
    if progress:
        progress("caption features", len(captions), len(captions))
    native = np.concatenate([c["native"] for c in chunks])
    shared = np.concatenate([c["shared"] for c in chunks])
    features = PairFeatures(np.concatenate([native, shared], axis=1), shared, text, owner, photos)
    stats = {"photos": len(photos), "pairs": len(pairs), "cache": str(cache.folder), "cache_hits": cache.stats.hits,
             "cache_misses": cache.stats.misses, "extract_seconds": round(cache.stats.extract_seconds, 2),
             "extractors": {"image": image_expert.checksum, "text": text_expert.checksum}}
    return features, stats


def _train(features: PairFeatures, photos: np.ndarray, config: AlignConfig):
    rows = np.flatnonzero(np.isin(features.owner, photos))
    return train_space(features.image_in[features.owner[rows]], features.text[rows], IMAGE_HEAD, TEXT_HEAD,
                       config, groups=features.owner[rows])


def _t2i_recall(scores: np.ndarray, owner_column: np.ndarray) -> tuple[float, float]:
    """R@1, R@5 of caption -> photo; scores (captions, photos), owner_column = each caption's column."""
    own = scores[np.arange(len(owner_column)), owner_column]
    ranks = (scores > own[:, None]).sum(axis=1)
    return float((ranks < 1).mean()), float((ranks < 5).mean())


def choose_weight(features: PairFeatures, job: AlignJob, progress: Progress | None = None) -> tuple[float, dict]:
    """k-fold CV by photo: w maximising caption->photo R@1 + R@5, counted among the held-out photos
    and among all training photos. Ties go to the smaller w, so w = 0 wins unless learning helps."""
    n = len(features.photos)
    if n < 2 * job.combine_folds:
        raise ConfigError(f"combine_folds: {job.combine_folds} folds need at least {2 * job.combine_folds} "
                          f"photos, the pairs have {n}")
    folds = np.array_split(np.random.default_rng(job.train.seed).permutation(n), job.combine_folds)
    bridge = features.text @ features.shared.T
    totals = np.zeros(len(job.combine_weights))
    for number, held in enumerate(folds):
        if progress:
            progress("choosing w", number, len(folds))
        fit = np.setdiff1d(np.arange(n), held)
        space = _train(features, fit, job.train).space
        learned = space.embed(TEXT_HEAD, features.text) @ space.embed(IMAGE_HEAD, features.image_in).T
        rows = np.flatnonzero(np.isin(features.owner, held))
        local = {p: i for i, p in enumerate(held)}
        for i, w in enumerate(job.combine_weights):
            scores = bridge[rows] + w * learned[rows]
            totals[i] += sum(_t2i_recall(scores[:, held], np.asarray([local[p] for p in features.owner[rows]])))
            totals[i] += sum(_t2i_recall(scores, features.owner[rows]))
    if progress:
        progress("choosing w", len(folds), len(folds))
    best = float(job.combine_weights[int(np.argmax(totals))])
    return best, {str(w): round(float(t) / (2 * len(folds)), 4) for w, t in zip(job.combine_weights, totals)}


def run_align(config: str | Path, out: str | Path, progress: Progress | None = None) -> dict:
    """Train the space described by `config` and write it to `out`; returns the summary written."""
    job = load_job(config)
    out = Path(out)
    started = time.perf_counter()
    features, stats = extract(job, progress)
    if len(features.photos) < 2:
        raise ConfigError(f"pairs: need at least 2 distinct photos, got {len(features.photos)}")
    cv = None
    if job.combine == "auto":
        weight, cv = choose_weight(features, job, progress)
    else:
        weight = float(job.combine)
    if progress:
        progress("training", 0, 1)
    result = _train(features, np.arange(len(features.photos)), job.train)
    if progress:
        progress("training", 1, 1)
    bridge = features.text @ features.shared.T
    learned = result.space.embed(TEXT_HEAD, features.text) @ result.space.embed(IMAGE_HEAD, features.image_in).T
    metrics = {}
    for name, scores in (("bridge", bridge), ("learned", learned), ("combined", bridge + weight * learned)):
        r1, r5 = _t2i_recall(scores, features.owner)
        metrics[name] = {"t2i_r1": round(r1, 4), "t2i_r5": round(r5, 4)}
    summary = {
        "source": job.source,
        "weight_policy": job.combine if job.combine == "auto" else "fixed",
        "cv": cv,
        "config": asdict(job.train),
        "data": stats,
        "history": [round(x, 5) for x in result.history],
        "train_seconds": round(result.seconds, 2),
        "pairs_per_second": round(result.pairs_per_second, 1),
        "metrics_train": metrics,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return save_space(out, result.space, weight, summary)


def save_space(out: str | Path, space, weight: float, summary: dict | None = None) -> dict:
    """Write an attachable space folder: heads (safetensors + JSON) and align.json (w, inputs, history,
    metrics). align.json is written last, so its presence marks a complete folder."""
    out = Path(out)
    summary = {"format": 1, "weight": float(weight), "inputs": {IMAGE_HEAD: IMAGE_INPUTS, TEXT_HEAD: ["text"]},
               "input_dims": {IMAGE_HEAD: [1280, 384], TEXT_HEAD: [384]}, "bridge": "shared", **(summary or {})}
    out.mkdir(parents=True, exist_ok=True)
    (out / ALIGN_FILE).unlink(missing_ok=True)
    space.meta["align"] = {"weight": float(weight), "inputs": summary["inputs"]}
    space.save(out)
    temporary = out / (ALIGN_FILE + ".tmp")
    temporary.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    temporary.replace(out / ALIGN_FILE)
    return summary


__all__ = ["AlignJob", "choose_weight", "extract", "load_job", "run_align", "save_space"]
