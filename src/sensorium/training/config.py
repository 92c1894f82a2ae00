"""A training run described in one TOML file, checked up front so a typo fails before any training.

Every error is a ConfigError naming the dotted field at fault ("model.fusion.method: ..."), since
a run that dies an hour in over a misspelt key is the failure this module exists to prevent.
"""
from __future__ import annotations

import copy
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..imported import is_import_path
from .augment import AugmentConfig
from .layout import LAYOUTS

KINDS = ("image", "audio", "text", "series", "array")
NORMALISE = ("none", "item", "group")
METRICS = ("accuracy", "macro_f1", "loss")
# which of several epochs tied on train.metric is kept: the one of lowest validation loss, or the
# first to reach the value (MultiBench's and Keras' ModelCheckpoint rule: only a strict gain counts)
TIE_BREAKS = ("loss", "first")
OPTIMIZERS = ("adamw", "sgd")


@dataclass
class ModalitySpec:
    """How one modality is read from its column: kind, and the few shaping options of that kind."""

    name: str
    kind: str
    column: str
    size: int = 32  # image: resized to size x size
    channels: int = 3  # image: 1 (grey) or 3 (RGB)
    max_seconds: float = 10.0  # audio: longer clips are cut
    max_length: int = 128  # text: tokens
    vocab_size: int = 2000  # text: WordPiece vocabulary trained on the training texts
    shape: list[int] = field(default_factory=list)  # array / series: each item reshaped to this ([] = as stored)
    divide: float = 1.0  # array / series: values divided by this (255 turns 0-255 pixels into 0-1)
    normalise: str = "none"  # array: "item" = each row of each item to mean 0, std 1 (per-band CMVN of a spectrogram);
    # "group" = the same with statistics over every item of the item's group (per-speaker CMVN), see `group`
    group: str = ""  # normalise = "group": the column naming each item's group (a speaker, a camera)


# A data source: a CSV manifest, a folder of class folders, an .npz, a Parquet / Arrow file, a
# `datasets` folder, or a table of one .npy file per column (`training.sources`).
Source = Path | dict[str, Path]
SOURCE_KEYS = ("train", "validation", "test")


@dataclass
class DataConfig:
    train: Source | None = None  # None when a program hands the trainer datasets
    validation: Source | None = None
    test: Source | None = None  # what `sensorium evaluate RUN` scores when no --data is given
    val_fraction: float = 0.2
    label: str = "label"
    cache_mb: int = 1024  # decoded inputs kept in memory after their first read; 0 = decode every epoch
    modalities: dict[str, ModalitySpec] = field(default_factory=dict)


@dataclass
class TaskConfig:
    name: str
    label: str  # column holding this task's class
    weight: float = 1.0


@dataclass
class ModelConfig:
    encoders: dict[str, dict[str, Any]] = field(default_factory=dict)  # modality -> {name, **kwargs}
    fusion: dict[str, Any] = field(default_factory=lambda: {"method": "late"})  # {method, output_dim, **kwargs}


@dataclass
class OGMConfig:
    """On-the-fly gradient modulation with generalisation enhancement (Peng et al., CVPR 2022)."""

    alpha: float = 0.0  # 0 turns it off
    start_epoch: int = 0
    end_epoch: int = 10_000
    noise: bool = True  # the GE part: Gaussian noise matching each gradient's spread


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adamw"  # or "sgd" (MultiBench's default), with `momentum`
    momentum: float = 0.0  # sgd only
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0  # 0 = no clipping
    accumulate: int = 1
    seed: int = 0
    bf16: bool = False
    patience: int = 0  # epochs without improvement before stopping; 0 = never stop early
    metric: str = "accuracy"
    tie_break: str = "loss"  # of epochs tied on `metric`, keep the lowest validation loss, or "first" reached
    checkpoint_every: int = 0  # optimizer steps; 0 = at each epoch end only
    max_steps: int = 0  # 0 = epochs decide
    num_workers: int = 0
    threads: int = 0  # torch threads per process; 0 = every core, split over replicas; -1 = the cores idle now
    layout: str = "auto"  # conv encoders' memory while training: "auto" (channels-last where measured faster),
    #                       "channels-last" (wherever it works) or "as-is" (training.layout)
    aux_loss_weight: float = 0.01  # weight of a fusion's own auxiliary loss (mixture-of-experts balance)
    modality_dropout: float = 0.0  # per sample, chance of hiding one modality while training (never the last)
    unimodal_loss_weight: float = 0.0  # weight of per-modality heads' losses (Gradient-Blending); 0 = no such heads
    mixup: float = 0.0  # > 0: mixup's Beta(alpha, alpha) (Zhang et al. 2018), e.g. 0.2
    label_smoothing: float = 0.0  # cross-entropy's target smoothing while training (Szegedy et al. 2016), e.g. 0.1
    ema: float = 0.0  # > 0: validate and keep an exponential moving average of the weights with this decay, e.g. 0.999
    progress: bool = True
    ogm_ge: OGMConfig = field(default_factory=OGMConfig)
    augment: dict[str, AugmentConfig] = field(default_factory=dict)  # [train.augment.<modality>]


@dataclass
class Config:
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    tasks: list[TaskConfig]
    source: Path | None = None

    @property
    def modalities(self) -> list[str]:
        return list(self.model.encoders)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, saved beside checkpoints so a run can be rebuilt from its folder."""
        raw = asdict(self)
        raw.pop("source")
        for key in SOURCE_KEYS:
            value = raw["data"][key]
            if isinstance(value, dict):
                raw["data"][key] = {column: str(file) for column, file in value.items()}
            else:
                raw["data"][key] = None if value is None else str(value)
        for spec in raw["data"]["modalities"].values():
            spec.pop("name")
        return raw


def read_toml(path: str | Path) -> dict[str, Any]:
    """The tables of a TOML file; ConfigError naming the file when it is missing or not TOML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config; relative data paths are taken from the config's folder."""
    path = Path(path)
    return config_from_dict(read_toml(path), base=path.parent, source=path)


def config_from_dict(raw: dict[str, Any], base: Path | None = None, source: Path | None = None) -> Config:
    raw = copy.deepcopy(raw)
    _known(raw, "", {"data", "model", "train", "tasks"})
    model = _model(_table(raw, "model", required=True), "model")
    data = _data(_table(raw, "data"), base, model)
    train = _train(_table(raw, "train"), list(model.encoders))
    tasks = _tasks(raw.get("tasks"), data.label)
    return Config(data=data, model=model, train=train, tasks=tasks, source=source)


def _table(raw: dict, key: str, where: str = "", required: bool = False) -> dict:
    name = f"{where}{key}"
    if key not in raw:
        if required:
            raise ConfigError(f"{name}: missing section [{name}]")
        return {}
    value = raw[key]
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: must be a table, got {type(value).__name__}")
    return value


def _known(raw: dict, where: str, allowed: set[str]) -> None:
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"{where}{key}: unknown key (known: {', '.join(sorted(allowed))})")


def _typed(value: Any, kind: type, name: str) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{name}: must be {kind.__name__}, got {value!r}")
    return value


def fill_fields(target: Any, raw: dict, where: str, skip: tuple[str, ...] = ()) -> None:
    """Copy raw keys onto a dataclass, checking names and types against its defaults; a ConfigError
    names the first unknown or mistyped key as WHERE + key."""
    known = {f.name: f for f in fields(target) if f.name not in skip}
    _known({k: v for k, v in raw.items() if k not in skip}, where, set(known))
    for key, value in raw.items():
        if key in skip:
            continue
        default = getattr(target, key)
        kind = type(default) if default is not None else str
        setattr(target, key, _typed(value, kind, f"{where}{key}"))


def _model(raw: dict, where: str) -> ModelConfig:
    from .. import encoders, fusion

    _known(raw, f"{where}.", {"encoders", "fusion"})
    encoder_tables = _table(raw, "encoders", f"{where}.", required=True)
    if not encoder_tables:
        raise ConfigError(f"{where}.encoders: name at least one modality's encoder")
    chosen = {}
    for modality, table in encoder_tables.items():
        name = f"{where}.encoders.{modality}"
        if not isinstance(table, dict):
            raise ConfigError(f"{name}: must be a table like {{ name = \"image_cnn\" }}")
        table = dict(table)
        if "name" not in table:
            raise ConfigError(f"{name}.name: missing (choose from {', '.join(encoders.available())})")
        if not isinstance(table["name"], str):
            raise ConfigError(f"{name}.name: must be a string, got {table['name']!r}")
        if is_import_path(table["name"]):  # your own module: checked when the model is built
            chosen[modality] = table
            continue
        if table["name"] not in encoders.available() or table["name"] == "frozen":
            choices = [e for e in encoders.available() if e != "frozen"]
            raise ConfigError(f"{name}.name: unknown encoder {table['name']!r} (choose from {', '.join(choices)}, "
                              "or an import path 'mypackage.module:Class')")
        chosen[modality] = table
    fusion_table = dict(_table(raw, "fusion", f"{where}.") or {"method": "late"})
    method = fusion_table.setdefault("method", "late")
    if not isinstance(method, str) or (method not in fusion.available() and not is_import_path(method)):
        raise ConfigError(f"{where}.fusion.method: unknown method {method!r} (choose from "
                          f"{', '.join(fusion.available())}, or an import path 'mypackage.module:Class')")
    output_dim = fusion_table.setdefault("output_dim", 64)
    if isinstance(output_dim, bool) or not isinstance(output_dim, int) or output_dim <= 0:
        raise ConfigError(f"{where}.fusion.output_dim: must be a positive int, got {output_dim!r}")
    return ModelConfig(encoders=chosen, fusion=fusion_table)


def _data(raw: dict, base: Path | None, model: ModelConfig) -> DataConfig:
    data = DataConfig()
    fill_fields(data, {k: v for k, v in raw.items() if k not in SOURCE_KEYS}, "data.", skip=("modalities",))
    _known(raw, "data.", {f.name for f in fields(DataConfig)})

    def resolve(value: Any, field: str) -> Path:
        path = Path(_typed(value, str, field))
        return path if path.is_absolute() or base is None else Path(os.path.abspath(base / path))

    for key in SOURCE_KEYS:
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, dict):  # one .npy file per column, e.g. MultiBench's layout
            if not value:
                raise ConfigError(f"data.{key}: an empty table; name a .npy file per column")
            setattr(data, key, {str(column): resolve(file, f"data.{key}.{column}") for column, file in value.items()})
        else:
            setattr(data, key, resolve(value, f"data.{key}"))
    if data.cache_mb < 0:
        raise ConfigError(f"data.cache_mb: must not be negative, got {data.cache_mb}")
    if not 0.0 <= data.val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction: must be in [0, 1), got {data.val_fraction}")
    tables = _table(raw, "modalities", "data.")
    for modality in model.encoders:
        table = tables.get(modality, {})
        where = f"data.modalities.{modality}."
        if not isinstance(table, dict):
            raise ConfigError(f"data.modalities.{modality}: must be a table")
        kind = table.get("kind", modality if modality in KINDS else None)
        if kind not in KINDS:
            raise ConfigError(f"{where}kind: {kind!r} is not one of {', '.join(KINDS)}")
        spec = ModalitySpec(name=modality, kind=kind, column=table.get("column", modality))
        fill_fields(spec, {k: v for k, v in table.items() if k not in ("kind", "column")}, where, skip=("name",))
        _typed(spec.column, str, f"{where}column")
        if spec.channels not in (1, 3):
            raise ConfigError(f"{where}channels: must be 1 or 3, got {spec.channels}")
        for key in ("size", "max_length", "vocab_size"):
            if getattr(spec, key) <= 0:
                raise ConfigError(f"{where}{key}: must be positive, got {getattr(spec, key)}")
        if any(isinstance(n, bool) or not isinstance(n, int) or n <= 0 for n in spec.shape):
            raise ConfigError(f"{where}shape: must be a list of positive ints, got {spec.shape!r}")
        if spec.divide == 0:
            raise ConfigError(f"{where}divide: must not be 0")
        if spec.normalise not in NORMALISE:
            raise ConfigError(f"{where}normalise: {spec.normalise!r} is not one of {', '.join(NORMALISE)}")
        if (spec.normalise == "group") != bool(spec.group):
            raise ConfigError(f"{where}group: name the group column exactly when normalise = \"group\"")
        data.modalities[modality] = spec
    for modality in tables:
        if modality not in model.encoders:
            raise ConfigError(f"data.modalities.{modality}: no encoder for it under [model.encoders]")
    return data


def _train(raw: dict, modalities: list[str]) -> TrainConfig:
    train = TrainConfig()
    fill_fields(train, raw, "train.", skip=("ogm_ge", "augment"))
    for modality, table in _table(raw, "augment", "train.").items():
        where = f"train.augment.{modality}"
        if modality not in modalities:
            raise ConfigError(f"{where}: no encoder for {modality!r} under [model.encoders]")
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: must be a table")
        plan = AugmentConfig()
        fill_fields(plan, table, f"{where}.")
        for key in ("freq_masks", "freq_mask_width", "time_masks", "time_mask_width"):
            if getattr(plan, key) < 0:
                raise ConfigError(f"{where}.{key}: must not be negative, got {getattr(plan, key)}")
        for key in ("time_stretch", "freq_warp"):
            if not 0.0 <= getattr(plan, key) < 1.0:
                raise ConfigError(f"{where}.{key}: must be in [0, 1), got {getattr(plan, key)}")
        train.augment[modality] = plan
    ogm = OGMConfig()
    fill_fields(ogm, _table(raw, "ogm_ge", "train."), "train.ogm_ge.")
    train.ogm_ge = ogm
    positive = ("epochs", "batch_size", "accumulate")
    for key in positive:
        if getattr(train, key) <= 0:
            raise ConfigError(f"train.{key}: must be positive, got {getattr(train, key)}")
    for key in ("lr", "weight_decay", "grad_clip", "warmup_steps", "patience", "checkpoint_every", "max_steps",
                "num_workers", "aux_loss_weight", "min_lr_ratio",
                "unimodal_loss_weight", "mixup"):
        if getattr(train, key) < 0:
            raise ConfigError(f"train.{key}: must not be negative, got {getattr(train, key)}")
    if train.threads < -1:
        raise ConfigError(f"train.threads: a count, 0 (every core) or -1 (the idle ones), got {train.threads}")
    if not 0.0 <= train.modality_dropout <= 1.0:
        raise ConfigError(f"train.modality_dropout: must be in [0, 1], got {train.modality_dropout}")
    if train.lr == 0:
        raise ConfigError("train.lr: must be positive, got 0")
    if train.layout not in LAYOUTS:
        raise ConfigError(f"train.layout: unknown layout {train.layout!r} (choose from {', '.join(LAYOUTS)})")
    if train.optimizer not in OPTIMIZERS:
        raise ConfigError(f"train.optimizer: unknown optimizer {train.optimizer!r} (choose from {', '.join(OPTIMIZERS)})")
    if not 0.0 <= train.momentum < 1.0:
        raise ConfigError(f"train.momentum: must be in [0, 1), got {train.momentum}")
    if not 0.0 <= train.label_smoothing < 1.0:
        raise ConfigError(f"train.label_smoothing: must be in [0, 1), got {train.label_smoothing}")
    if not 0.0 <= train.ema < 1.0:
        raise ConfigError(f"train.ema: a decay in [0, 1) (0 = no average), got {train.ema}")
    if train.metric not in METRICS:
        raise ConfigError(f"train.metric: unknown metric {train.metric!r} (choose from {', '.join(METRICS)})")
    if train.tie_break not in TIE_BREAKS:
        raise ConfigError(f"train.tie_break: unknown rule {train.tie_break!r} (choose from {', '.join(TIE_BREAKS)})")
    if ogm.alpha < 0:
        raise ConfigError(f"train.ogm_ge.alpha: must not be negative, got {ogm.alpha}")
    return train


def _tasks(raw: Any, default_label: str) -> list[TaskConfig]:
    if raw is None:
        return [TaskConfig(name="label", label=default_label)]
    if not isinstance(raw, list) or not raw:
        raise ConfigError("tasks: must be a non-empty array of tables ([[tasks]])")
    tasks, seen = [], set()
    for i, table in enumerate(raw):
        where = f"tasks[{i}]."
        if not isinstance(table, dict) or "name" not in table:
            raise ConfigError(f"{where}name: missing")
        task = TaskConfig(name=_typed(table["name"], str, f"{where}name"), label=table.get("label", table["name"]))
        fill_fields(task, {k: v for k, v in table.items() if k not in ("name", "label")}, where, skip=("name", "label"))
        _typed(task.label, str, f"{where}label")
        if task.name in seen:
            raise ConfigError(f"{where}name: duplicate task {task.name!r}")
        if task.weight < 0:
            raise ConfigError(f"{where}weight: must not be negative, got {task.weight}")
        seen.add(task.name)
        tasks.append(task)
    return tasks
