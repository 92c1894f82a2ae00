"""`sensorium align CONFIG.toml --out DIR [--resume]`: train a shared space from a TOML file.

Any two modalities: `[pairs]` names a manifest (CSV/JSONL) or a folder and, by modality, the two
columns: `image = "photo"`, `audio = "clip"`, `video = "clip"` (file paths, relative to the
manifest) or `text = "caption"` (inline text). Several `[[edges]]` tables (same keys) bind more
modalities through a hub into one space (bind.py), with `frozen = ["text"]` / `identity = ["text"]`
keeping a head fixed. The learning framework's Trainer does the training: checkpoints under DIR
(safetensors + JSON), `--resume` continues exactly, and it runs under `torchrun` (gloo).

Heads and the frozen features feeding them (cached on disk, see features.py):
  image <- EfficientNet native (1280) + bridge shared (384), the two vectors a collection already
           stores for every photo and video shot, so attaching never re-runs the experts;
           a video feeds this head too, with those vectors averaged over its keyframes;
  audio <- Whisper base encoder, mean-pooled (512), L2-normalised: the "audio" vector a collection
           stores for every sound window (the cache keeps the raw pooled features);
  text  <- the text expert's embedding (384), what a search query already computes.

An image-text job is combined with the label bridge's cosine: `combine = "auto"` picks w by
k-fold cross-validation BY PHOTO on the training pairs, from candidates that include 0, so the
attached space is never worse than the bridge alone on the training data (benchmarks/quality/coco_align.py).
An audio-text space attaches too (search.py: a sound window scores the bridge cosine of the speech
over it, if any, + w * learned cosine); its w is `combine = NUMBER`, default 1 (no CV: the bridge
part is a transcript, absent for sounds without words). Other spaces load with `Space.load`.

Example (examples/align_coco.toml; examples/align_speech.toml for audio + transcript):

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
from ..modality import AUDIO, IMAGE, TEXT, VIDEO, modality_of
from ..space.learned import ALIGN_FILE, IMAGE_HEAD, INPUT_NORM, TEXT_HEAD, head_input
from .bind import Edge
from .train import AlignConfig, train_space

WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
IMAGE_INPUTS = ["image", "shared"]  # catalog spaces concatenated for the image head, in this order
HEAD_OF = {IMAGE: IMAGE_HEAD, VIDEO: IMAGE_HEAD, AUDIO: "audio", TEXT: TEXT_HEAD}  # modality -> head it feeds
HEAD_INPUTS = {IMAGE_HEAD: (IMAGE_INPUTS, [1280, 384]), TEXT_HEAD: (["text"], [384]), "audio": (["audio"], [512])}
TOP_KEYS = {"combine", "combine_folds", "combine_weights", "pairs", "edges", "train", "features", "frozen", "identity"}
PAIR_KEYS = {"manifest", "folder", "group", *HEAD_OF}
FEATURE_KEYS = {"cache", "ocr", "people"}
DEFAULT_COLUMNS = {TEXT: "caption", IMAGE: "image"}  # the image-caption layout when columns are not named

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class PairSource:
    """One table of pairs ([pairs] or one [[edges]]): where they are and which column holds which modality."""

    key: str  # "pairs" or "edges[0]": named in every error about this table
    manifest: Path | None = None
    folder: Path | None = None
    columns: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_COLUMNS))  # modality -> column
    group_column: str | None = None


@dataclass
class AlignJob:
    sources: list[PairSource] = field(default_factory=list)
    train: AlignConfig = field(default_factory=AlignConfig)
    combine: str | float | None = "auto"  # None: the space has no image-text pair to combine with the bridge
    combine_folds: int = 4
    combine_weights: tuple[float, ...] = WEIGHTS
    frozen: tuple[str, ...] = ()
    identity: tuple[str, ...] = ()
    cache: Path | None = None
    ocr: bool = True
    people: bool = True
    source: str = ""

    @property
    def image_text(self) -> bool:
        """One source of photos or videos with texts: the case the label bridge can be combined with."""
        if len(self.sources) != 1:
            return False
        modalities = set(self.sources[0].columns)
        return self.sources[0].folder is not None or (TEXT in modalities and bool(modalities & {IMAGE, VIDEO}))


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


def _source(table, key: str, base: Path, where: str) -> PairSource:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {key}: expected a table")
    extra = sorted(set(table) - PAIR_KEYS)
    if extra:
        raise ConfigError(f"{where}: {key}.{extra[0]}: unknown key (allowed: {', '.join(sorted(PAIR_KEYS))}; "
                          f"modalities: {', '.join(HEAD_OF)})")
    if ("manifest" in table) == ("folder" in table):
        raise ConfigError(f"{where}: {key}: give exactly one of {key}.manifest or {key}.folder")
    source = PairSource(key)
    for name in ("manifest", "folder"):
        if name in table:
            value = Path(_typed(table[name], str, f"{key}.{name}")).expanduser()
            setattr(source, name, value if value.is_absolute() else base / value)
    named = {m: _typed(table[m], str, f"{key}.{m}") for m in table if m in HEAD_OF}
    if len(named) > 2:
        raise ConfigError(f"{where}: {key}: a table pairs two modalities, got {', '.join(named)}")
    for modality, column in DEFAULT_COLUMNS.items():  # fill up to two: text first, then image
        if len(named) < 2 and modality not in named:
            named[modality] = column
    files = [m for m in named if m != TEXT]  # the file side goes left
    source.columns = {m: named[m] for m in files + [m for m in named if m == TEXT]}
    if "group" in table:
        source.group_column = _typed(table["group"], str, f"{key}.group") or None
    return source


def _heads(values, key: str, where: str) -> tuple[str, ...]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{where}: {key}: expected a list of head names, got {values!r}")
    heads = set(HEAD_OF.values())
    for value in values:
        if value not in heads:
            raise ConfigError(f"{where}: {key}: {value!r} is not a head (heads: {', '.join(sorted(heads))})")
    return tuple(values)


def load_job(path: str | Path) -> AlignJob:
    """Read and validate an align TOML; every error names the key at fault."""
    path = Path(path)
    if not path.is_file():
        raise ReadError(path, "config file not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    base = path.parent
    where = str(path)
    extra = sorted(set(data) - TOP_KEYS)
    if extra:
        raise ConfigError(f"{where}: unknown key {extra[0]!r} (allowed: {', '.join(sorted(TOP_KEYS))})")
    job = AlignJob(source=str(path.resolve()))

    if ("pairs" in data) == ("edges" in data):
        raise ConfigError(f"{where}: pairs: give a [pairs] table (manifest = ... or folder = ...) "
                          "or [[edges]] tables, not both")
    if "pairs" in data:
        job.sources = [_source(data["pairs"], "pairs", base, where)]
    else:
        edges = data["edges"]
        if not isinstance(edges, list) or not edges:
            raise ConfigError(f"{where}: edges: expected one or more [[edges]] tables")
        job.sources = [_source(table, f"edges[{i}]", base, where) for i, table in enumerate(edges)]
    job.frozen = _heads(data.get("frozen", []), "frozen", where)
    job.identity = _heads(data.get("identity", []), "identity", where)

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

    combine = data.get("combine", "auto" if job.image_text else None)
    if isinstance(combine, str):
        if combine != "auto":
            raise ConfigError(f"{where}: combine: expected \"auto\" or a number >= 0, got {combine!r}")
        if not job.image_text:
            raise ConfigError(f"{where}: combine: \"auto\" needs one [pairs] table of image or video + text "
                              "(the label bridge scores photos against texts); give a number or leave it out")
    elif combine is not None:
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


# --- features ---------------------------------------------------------------------------------
@dataclass
class PairFeatures:
    image_in: np.ndarray  # (photos, 1664) native + shared, one row per distinct photo
    shared: np.ndarray  # (photos, 384) bridge vectors (what a collection stores as "shared")
    text: np.ndarray  # (pairs, 384) text expert embeddings (= a search query's vector)
    owner: np.ndarray  # (pairs,) photo row of each caption
    photos: list[str]


@dataclass
class SourceFeatures:
    """One source's pairs as frozen features: row i of left goes with row i of right."""

    key: str
    heads: tuple[str, str]
    left: np.ndarray
    right: np.ndarray
    groups: np.ndarray
    pair_features: PairFeatures | None = None  # image-text sources: what CV and the bridge metrics need

    def edge(self):
        from .trainer_bridge import AlignEdge

        return AlignEdge(self.heads[0], self.heads[1], Edge(self.left, self.right, self.groups))


class _Extractors:
    """The frozen experts a job needs, loaded on first use (an audio-text job never loads the bridge)."""

    def __init__(self, job: AlignJob):
        from ..paths import home
        from .features import FeatureCache

        self.job = job
        self.cache = FeatureCache(job.cache or home() / "align-features")
        self._made: dict[str, object] = {}
        self.checksums: dict[str, str] = {}

    def _bridge(self):
        if "bridge" not in self._made:
            from ..space.image_bridge import ImageBridge

            self._made["bridge"] = ImageBridge(detect_people=self.job.people, ocr="auto" if self.job.ocr else "never")
        return self._made["bridge"]

    def get(self, modality: str):
        if modality not in self._made:
            from . import features

            if modality == IMAGE:
                made = features.image_bridge_extractor(self._bridge())
            elif modality == VIDEO:
                made = features.video_bridge_extractor(self._bridge())
            elif modality == AUDIO:
                from .audio_features import audio_extractor

                made = audio_extractor()
            else:
                encoder = self._bridge().encoder if "bridge" in self._made else None
                made = features.text_extractor(encoder=encoder)
            self._made[modality] = made
            self.checksums[modality] = made.checksum
        return self._made[modality]

    def features(self, modality: str, items: list, progress: Progress | None, stage: str) -> dict[str, np.ndarray]:
        """{feature name: (len(items), d)}, in chunks so progress moves."""
        from .features import file_key, text_key

        extractor = self.get(modality)
        chunks = []
        step = max(extractor.batch_size, 64 if modality == TEXT else 1)
        for first in range(0, len(items), step):
            if progress:
                progress(stage, first, len(items))
            part = items[first:first + step]
            keys = [text_key(t) for t in part] if modality == TEXT else [file_key(p) for p in part]
            chunks.append(self.cache.features(extractor, part, keys))
        if progress:
            progress(stage, len(items), len(items))
        return {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}


def _load_source(source: PairSource, where: str):
    from .data import load_pairs, pairs_from_folder

    try:
        if source.manifest is not None:
            (left, left_col), (right, right_col) = source.columns.items()
            pairs = load_pairs(source.manifest, left_col, right_col, left, right, source.group_column)
            return pairs, (left, right)
        pairs = pairs_from_folder(source.folder)
    except (ReadError, ConfigError) as exc:
        raise ConfigError(f"{where}: {source.key}.{'manifest' if source.manifest else 'folder'}: {exc}") from None
    modalities = sorted({modality_of(p.left) for p in pairs})
    if len(modalities) != 1:
        raise ConfigError(f"{where}: {source.key}.folder: {source.folder} mixes {', '.join(modalities)} files; "
                          "one modality per folder")
    return pairs, (modalities[0], TEXT)


def _side_features(extractors: _Extractors, modality: str, values: list, source: PairSource, where: str,
                   progress: Progress | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(features of each distinct item, its bridge "shared" part or None, row of each pair's item)."""
    distinct = list(dict.fromkeys(values))
    index = {v: i for i, v in enumerate(distinct)}
    stage = f"{source.key} {modality} features"
    try:
        out = extractors.features(modality, distinct, progress, stage)
    except ReadError as exc:
        row = next((n for n, v in enumerate(values, 1) if str(v) == exc.path), None)
        at = f" row {row}" if row else ""
        raise ConfigError(f"{where}: {source.key}.manifest{at}: {exc}") from None
    if modality in (IMAGE, VIDEO):
        return np.concatenate([out["native"], out["shared"]], axis=1), out["shared"], \
            np.asarray([index[v] for v in values])
    if modality == AUDIO:  # the audio head reads what a collection stores: unit vectors
        return head_input(HEAD_OF[AUDIO], out[AUDIO]), None, np.asarray([index[v] for v in values])
    return out["text"], None, np.asarray([index[v] for v in values])


def extract(job: AlignJob, progress: Progress | None = None) -> tuple[list[SourceFeatures], dict]:
    """Frozen features of every source's pairs (cached on disk) and statistics for the summary."""
    extractors = _Extractors(job)
    where = job.source or "config"
    out, counts = [], []
    for source in job.sources:
        pairs, modalities = _load_source(source, where)
        if len(pairs) < 2:
            raise ConfigError(f"{where}: {source.key}: need at least 2 pairs, got {len(pairs)}")
        left, left_shared, left_row = _side_features(extractors, modalities[0], [p.left for p in pairs], source,
                                                     where, progress)
        right, _, right_row = _side_features(extractors, modalities[1], [p.right for p in pairs], source, where, progress)
        groups = np.unique([p.group for p in pairs], return_inverse=True)[1]
        heads = (HEAD_OF[modalities[0]], HEAD_OF[modalities[1]])
        if heads[0] == heads[1]:
            raise ConfigError(f"{where}: {source.key}: {modalities[0]} and {modalities[1]} feed the same head {heads[0]!r}")
        found = SourceFeatures(source.key, heads, left[left_row], right[right_row], groups)
        if heads == (IMAGE_HEAD, TEXT_HEAD):
            photos = list(dict.fromkeys(str(p.left) for p in pairs))
            found.pair_features = PairFeatures(left, left_shared, right[right_row], left_row, photos)
            groups = left_row if source.group_column is None else groups
            found.groups = groups
        out.append(found)
        counts.append({"key": source.key, "modalities": list(modalities), "pairs": len(pairs),
                       "items": [len(set(map(str, (p.left for p in pairs)))), len(set(map(str, (p.right for p in pairs))))]})
    stats = {"sources": counts, "pairs": sum(c["pairs"] for c in counts), "cache": str(extractors.cache.folder),
             "cache_hits": extractors.cache.stats.hits, "cache_misses": extractors.cache.stats.misses,
             "extract_seconds": round(extractors.cache.stats.extract_seconds, 2),
             "extractors": dict(extractors.checksums)}
    if len(out) == 1 and out[0].pair_features is not None:
        stats["photos"] = len(out[0].pair_features.photos)
    return out, stats


# --- training ---------------------------------------------------------------------------------
def _train(features: PairFeatures, photos: np.ndarray, config: AlignConfig):
    """A quick fit on some photos for cross-validating w (the small loop: folds keep no checkpoints)."""
    rows = np.flatnonzero(np.isin(features.owner, photos))
    return train_space(features.image_in[features.owner[rows]], features.text[rows], IMAGE_HEAD, TEXT_HEAD,
                       config, groups=features.owner[rows])


def _recall_at_1(space, found: SourceFeatures) -> float:
    """Right -> left R@1 over the training pairs, a hit when the top left row is of the pair's group."""
    right = space.embed(found.heads[1], found.right)
    left = space.embed(found.heads[0], found.left)
    top = np.argmax(right @ left.T, axis=1)
    return round(float((found.groups[top] == found.groups).mean()), 4)


def _t2i_recall(scores: np.ndarray, owner_column: np.ndarray) -> tuple[float, float]:
    """R@1, R@5 of caption -> photo; scores (captions, photos), owner_column = each caption's column."""
    own = scores[np.arange(len(owner_column)), owner_column]
    ranks = (scores > own[:, None]).sum(axis=1)
    return float((ranks < 1).mean()), float((ranks < 5).mean())


def choose_weight(features: PairFeatures, job: AlignJob, progress: Progress | None = None) -> tuple[float, dict]:
    """k-fold CV by photo for w. Caption->photo R@1 and R@5 are counted among the held-out photos
    and among all training photos (the seen ones act as distractors, as an indexed collection's
    do). A w > 0 is eligible only if NONE of the four figures falls below w = 0's: a trained
    space must never make search worse than the bridge alone. Among eligible weights the best sum
    wins, ties to the smaller w; so w = 0 unless learning helps on every count.

    (An earlier rule maximised the plain sum; on COCO-mini it chose w = 0.25 in 3 of 5 folds and
    lost 4.2 points R@1 over all 80 photos while gaining 1.0 over the 16 held out.)"""
    n = len(features.photos)
    if n < 2 * job.combine_folds:
        raise ConfigError(f"combine_folds: {job.combine_folds} folds need at least {2 * job.combine_folds} "
                          f"photos, the pairs have {n}")
    folds = np.array_split(np.random.default_rng(job.train.seed).permutation(n), job.combine_folds)
    bridge = features.text @ features.shared.T
    figures = np.zeros((len(job.combine_weights), 4))  # R@1, R@5 held out; R@1, R@5 among all
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
            figures[i, :2] += _t2i_recall(scores[:, held], np.asarray([local[p] for p in features.owner[rows]]))
            figures[i, 2:] += _t2i_recall(scores, features.owner[rows])
    if progress:
        progress("choosing w", len(folds), len(folds))
    figures /= len(folds)
    weights = [float(w) for w in job.combine_weights]
    baseline = figures[weights.index(0.0)] if 0.0 in weights else None
    eligible = [i for i in range(len(weights))
                if baseline is None or weights[i] == 0.0 or bool(np.all(figures[i] >= baseline - 1e-9))]
    best = max(eligible, key=lambda i: (round(float(figures[i].sum()), 9), -weights[i]))
    return weights[best], {str(w): [round(float(v), 4) for v in figures[i]] for i, w in enumerate(weights)}


def train_and_save(job: AlignJob, found: list[SourceFeatures], out: str | Path, *, resume: bool = False,
                   context=None, data_stats: dict | None = None, progress: Progress | None = None) -> dict:
    """Train the job's space on extracted features with the Trainer (checkpoints in `out`), then write
    the space (rank 0). The library entry point behind `sensorium align`, also under torchrun."""
    from ..training.distributed import DistContext
    from .trainer_bridge import train_edges

    context = context or DistContext()
    out = Path(out)
    started = time.perf_counter()
    image_text = found[0].pair_features if len(found) == 1 else None
    cv = None
    if job.combine == "auto":
        if image_text is None:
            raise ConfigError("combine: \"auto\" needs one image-text source")
        if len(image_text.photos) < 2:
            raise ConfigError(f"pairs: need at least 2 distinct photos, got {len(image_text.photos)}")
        weight, cv = choose_weight(image_text, job, progress)
    else:
        weight = 1.0 if job.combine is None else float(job.combine)
    if progress:
        progress("training", 0, 1)
    result = train_edges([f.edge() for f in found], job.train, out, frozen=job.frozen, identity=job.identity,
                         resume=resume, context=context)
    if progress:
        progress("training", 1, 1)
    metrics: dict = {f.key: {"r1_right_to_left": _recall_at_1(result.space, f)} for f in found}
    if image_text is not None:
        bridge = image_text.text @ image_text.shared.T
        learned = result.space.embed(TEXT_HEAD, image_text.text) @ result.space.embed(IMAGE_HEAD, image_text.image_in).T
        for name, scores in (("bridge", bridge), ("learned", learned), ("combined", bridge + weight * learned)):
            r1, r5 = _t2i_recall(scores, image_text.owner)
            metrics[name] = {"t2i_r1": round(r1, 4), "t2i_r5": round(r5, 4)}
    summary = {
        "source": job.source,
        "weight_policy": "auto" if job.combine == "auto" else "none" if job.combine is None else "fixed",
        "cv": cv,
        "config": asdict(job.train),
        "frozen": list(job.frozen),
        "identity": list(job.identity),
        "edges": [{"key": f.key, "heads": list(f.heads), "pairs": len(f.left)} for f in found],
        "data": data_stats or {"pairs": sum(len(f.left) for f in found)},
        "history": [round(x, 5) for x in result.history],
        "trainer": {k: result.summary.get(k) for k in ("step", "epoch", "interrupted")},
        "resumed": resume,
        "train_seconds": round(result.seconds, 2),
        "pairs_per_second": round(result.pairs_per_second, 1),
        "metrics_train": metrics,
        "seconds": round(time.perf_counter() - started, 2),
    }
    if context.is_main:
        summary = save_space(out, result.space, weight, summary)
    context.barrier()
    return summary


def run_align(config: str | Path, out: str | Path, progress: Progress | None = None, resume: bool = False) -> dict:
    """Train the space described by `config` and write it to `out`; returns the summary written.

    Under torchrun every rank joins the process group; rank 0 extracts (and caches) the features
    first, the others then read them from the cache, so no two processes write one cache file."""
    from ..training.distributed import setup, teardown

    job = load_job(config)
    context = setup()
    try:
        if not context.is_main:
            context.barrier()
        started = time.perf_counter()
        found, stats = extract(job, progress if context.is_main else None)
        if context.is_main:
            context.barrier()
        summary = train_and_save(job, found, out, resume=resume, context=context, data_stats=stats,
                                 progress=progress if context.is_main else None)
        summary["seconds"] = round(time.perf_counter() - started, 2)
        return summary
    finally:
        teardown(context)


def save_space(out: str | Path, space, weight: float, summary: dict | None = None) -> dict:
    """Write a space folder: heads (safetensors + JSON) and align.json (w, which stored vectors feed
    each head and how they are normalised (`attach.head_input`: the caller trained on those), history,
    metrics). align.json is written last, so its presence marks a complete folder."""
    out = Path(out)
    inputs, dims = {}, {}
    for head, module in space.heads.items():
        names, parts = HEAD_INPUTS.get(head, ([head], [module.in_dim]))
        inputs[head] = list(names) if sum(parts) == module.in_dim else [head]
        dims[head] = list(parts) if sum(parts) == module.in_dim else [module.in_dim]
    has_bridge = IMAGE_HEAD in inputs and TEXT_HEAD in inputs
    norms = {head: INPUT_NORM[head] for head in inputs if head in INPUT_NORM}
    summary = {"format": 1, "weight": float(weight), "inputs": inputs, "input_dims": dims, "input_norm": norms,
               "bridge": "shared" if has_bridge else None, **(summary or {})}
    out.mkdir(parents=True, exist_ok=True)
    (out / ALIGN_FILE).unlink(missing_ok=True)
    space.meta["align"] = {"weight": float(weight), "inputs": summary["inputs"], "input_norm": norms}
    space.save(out)
    temporary = out / (ALIGN_FILE + ".tmp")
    temporary.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    temporary.replace(out / ALIGN_FILE)
    return summary


__all__ = ["AlignJob", "PairFeatures", "PairSource", "SourceFeatures", "choose_weight", "extract", "load_job",
           "run_align", "save_space", "train_and_save"]
