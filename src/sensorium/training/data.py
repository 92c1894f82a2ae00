"""Training data as datasets: items named by a manifest or class folders (`training.manifest`),
or rows of arrays and tables (`training.sources`), decoded into what each encoder takes, cached,
normalised and batched.
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import ConfigError, ReadError
from .config import Config, ModalitySpec
from .manifest import Item, read_folder, read_manifest

def load_file(spec: ModalitySpec, path: Path) -> Tensor | str:
    """Decode one file into what the modality's encoder takes (before batching)."""
    from ..readers import read_audio, read_image, read_text

    if spec.kind == "image":
        return image_tensor(read_image(path).pixels, spec)
    if spec.kind == "audio":
        return torch.from_numpy(read_audio(path, max_seconds=spec.max_seconds).samples.astype(np.float32))
    if spec.kind == "text":
        return read_text(path).text
    return array_tensor(_read_array(path), spec, path)


def image_tensor(pixels: np.ndarray, spec: ModalitySpec) -> Tensor:
    """(C, size, size) uint8 from (H, W) or (H, W, C) pixels, resized and converted to the spec's channels."""
    from PIL import Image

    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.dtype != np.uint8:
        pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    picture = Image.fromarray(np.ascontiguousarray(pixels)).resize((spec.size, spec.size), Image.BILINEAR)
    picture = picture.convert("L" if spec.channels == 1 else "RGB")
    pixels = np.array(picture, dtype=np.uint8)
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(pixels).copy())


def array_tensor(values: np.ndarray, spec: ModalitySpec, where: Any, batched: bool = False) -> Tensor:
    """float32 tensor of one item's numbers, reshaped to `spec.shape` and divided by `spec.divide`;
    `batched`: `values` holds several items along its first axis, and so does the tensor."""
    if not np.issubdtype(values.dtype, np.number):
        raise ReadError(where, f"array of {values.dtype}, expected numbers")
    values = np.array(values, dtype=np.float32)  # a copy: rows read from a file are read-only views
    if spec.shape:
        size = values[0].size if batched and len(values) else values.size
        if int(np.prod(spec.shape)) != size:
            raise ReadError(where, f"{size} values cannot take the shape {list(spec.shape)} "
                                   f"(data.modalities.{spec.name}.shape)")
        values = values.reshape((len(values), *spec.shape) if batched else spec.shape)
    if spec.divide != 1.0:
        values = values / np.float32(spec.divide)
    if not np.isfinite(values).all():
        raise ReadError(where, "array holds NaN or infinite values")
    if spec.normalise == "item" and values.ndim >= 1:
        centred = values - values.mean(axis=-1, keepdims=True)
        values = centred / np.maximum(centred.std(axis=-1, keepdims=True), np.float32(1e-5))
    if spec.kind == "series" and not batched:
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2 or values.shape[0] == 0:
            raise ReadError(where, f"a series must be (time, channels), got shape {values.shape}")
    return torch.from_numpy(np.ascontiguousarray(values))


def _read_array(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        try:
            return np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
        except ValueError:
            return np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2, skiprows=1)
    except (ValueError, OSError, EOFError) as exc:
        raise ReadError(path, f"not a numeric array ({exc})") from exc


def decode_bytes(spec: ModalitySpec, data: bytes, where: str) -> Tensor:
    """An image or sound file's bytes (a table cell) decoded as `load_file` decodes the file."""
    if spec.kind == "image":
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as picture:
                pixels = np.array(picture.convert("L" if spec.channels == 1 else "RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ReadError(where, f"not a readable image ({exc})") from exc
        return image_tensor(pixels, spec)
    if spec.kind == "audio":
        import soundfile
        import soxr

        from ..readers.payloads import SAMPLE_RATE

        try:
            samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except (RuntimeError, soundfile.LibsndfileError, ValueError) as exc:
            raise ReadError(where, f"not a readable sound ({exc})") from exc
        mono = samples.mean(axis=1)[: int(spec.max_seconds * rate)]
        if rate != SAMPLE_RATE:
            mono = soxr.resample(mono, rate, SAMPLE_RATE)
        return torch.from_numpy(np.clip(np.nan_to_num(mono), -1.0, 1.0).astype(np.float32))
    raise ReadError(where, f"bytes cannot be a {spec.kind} input")


def decoded_bytes(value: Tensor | str) -> int:
    return len(value.encode("utf-8")) if isinstance(value, str) else value.element_size() * value.numel()


class DecodedCache:
    """Decoded inputs kept in memory after their first read, up to a byte budget.

    Decoding a PNG or WAV costs far more than a small model's step on it, so without this every
    epoch pays the first epoch's decoding again. Entries are keyed by (modality, file) and never
    evicted: once the budget is spent, further files are decoded each time, as before. Training and
    validation share one cache. A DataLoader worker fills its own copy, which dies with it, so the
    cache pays off in the main process (num_workers = 0) or in workers that persist.
    """

    def __init__(self, budget_bytes: int):
        self.budget_bytes = int(budget_bytes)
        self.used_bytes = 0
        self.entries: dict[tuple[str, Path], Tensor | str] = {}
        self.hits = self.misses = 0

    def get(self, modality: str, spec: ModalitySpec, path: Path) -> Tensor | str:
        key = (modality, path)
        found = self.entries.get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        value = load_file(spec, path)
        size = decoded_bytes(value)
        if self.used_bytes + size <= self.budget_bytes:
            self.entries[key] = value
            self.used_bytes += size
        return value


class ItemDataset(Dataset):
    """Items read lazily from their files; `labels` maps each task to class indices.

    With a `cache`, each file is decoded once and later epochs read the decoded tensor from memory.
    Samples hand out the cached tensors themselves, so nothing downstream may modify them in place
    (collation stacks them into new tensors).
    """

    def __init__(self, items: list[Item], specs: Mapping[str, ModalitySpec], label_of: Mapping[str, str],
                 classes: Mapping[str, list[str]], cache: DecodedCache | None = None):
        self.items, self.specs, self.cache = items, dict(specs), cache
        self.label_of = dict(label_of)  # task -> label column
        self.classes = {task: list(names) for task, names in classes.items()}
        index = {task: {name: i for i, name in enumerate(names)} for task, names in self.classes.items()}
        self.targets = {}
        for task, column in self.label_of.items():
            values = []
            for item in items:
                name = item.labels[column]
                if name not in index[task]:
                    raise ReadError(item.origin, f"label {name!r} of task {task!r} was never seen in training "
                                                 f"(classes: {', '.join(self.classes[task])})")
                values.append(index[task][name])
            self.targets[task] = torch.tensor(values, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.items[i]
        inputs = {name: item.texts[name] if name in item.texts else None if file is None else self._decode(name, file)
                  for name, file in item.files.items()}
        return {"inputs": inputs, "labels": {task: int(t[i]) for task, t in self.targets.items()}}

    def _decode(self, modality: str, file: Path) -> Tensor | str:
        if self.cache is None:
            return load_file(self.specs[modality], file)
        return self.cache.get(modality, self.specs[modality], file)

    def texts(self, modality: str) -> list[str]:
        return [item.texts[modality] if modality in item.texts else self._decode(modality, item.files[modality])
                for item in self.items if modality in item.texts or item.files[modality] is not None]

    def subset(self, indices: Sequence[int]) -> "ItemDataset":
        return ItemDataset([self.items[i] for i in indices], self.specs, self.label_of, self.classes, self.cache)


class TableDataset(Dataset):
    """Items as rows of array or table columns (`training.sources`): one column per modality, plus labels.

    Rows are decoded when asked for, as ItemDataset decodes files; nothing is cached, since reading
    a row back from its column costs little next to decoding a file.
    """

    def __init__(self, columns: Mapping[str, Any], specs: Mapping[str, ModalitySpec], label_of: Mapping[str, str],
                 labels: Mapping[str, list[str]], classes: Mapping[str, list[str]], origin: str,
                 rows: Sequence[int] | None = None, groups: Mapping[str, GroupNormaliser] | None = None):
        self.columns, self.specs, self.origin = dict(columns), dict(specs), origin
        self.groups = dict(groups or {})  # modality -> its per-group statistics
        self.label_of = dict(label_of)
        self.labels = {column: list(values) for column, values in labels.items()}
        self.classes = {task: list(names) for task, names in classes.items()}
        self.rows = list(range(len(next(iter(self.labels.values()))))) if rows is None else list(rows)
        self.targets = {}
        for task, column in self.label_of.items():
            index = {name: i for i, name in enumerate(self.classes[task])}
            values = []
            for row in self.rows:
                name = self.labels[column][row]
                if name not in index:
                    raise ReadError(origin, f"row {row}: label {name!r} of task {task!r} was never seen in training "
                                            f"(classes: {', '.join(self.classes[task])})")
                values.append(index[name])
            self.targets[task] = torch.tensor(values, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.rows[i]
        inputs = {name: self._decode(name, row) for name in self.specs}
        return {"inputs": inputs, "labels": {task: int(t[i]) for task, t in self.targets.items()}}

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """The samples of one batch (a DataLoader asks for them together): `array` columns of .npy files
        are read (one read per run of consecutive rows) and converted for the whole batch at once, the
        same tensors `__getitem__` gives row by row; a batch with a bad row is redone row by row, so the
        error names that row."""
        rows = [self.rows[i] for i in indices]
        inputs: dict[str, list] = {}
        for name, spec in self.specs.items():
            column = self.columns[name]
            if spec.kind == "array" and hasattr(column, "take") and name not in self.groups and rows:
                try:
                    inputs[name] = list(array_tensor(column.take(rows), spec, self.origin, batched=True).unbind(0))
                    continue
                except ReadError:
                    pass
            inputs[name] = [self._decode(name, row) for row in rows]
        return [{"inputs": {name: values[j] for name, values in inputs.items()},
                 "labels": {task: int(t[i]) for task, t in self.targets.items()}} for j, i in enumerate(indices)]

    def _decode(self, modality: str, row: int) -> Tensor | str | None:
        spec = self.specs[modality]
        value = self.columns[modality][row]
        if value is None:
            return None
        where = f"{self.origin} row {row}, column {spec.column!r}"
        if isinstance(value, (bytes, bytearray, memoryview)):
            return decode_bytes(spec, bytes(value), where)
        if spec.kind == "text":
            if not isinstance(value, str):
                raise ReadError(where, f"text must be a string, got {type(value).__name__}")
            return value
        if isinstance(value, str):
            raise ReadError(where, f"a string cannot be a {spec.kind} input")
        values = np.asarray(value)
        if spec.kind == "image":
            if spec.shape:
                values = values.reshape(spec.shape)
            if values.ndim == 3 and values.shape[0] in (1, 3) and values.shape[2] not in (1, 3):
                values = values.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
            if values.ndim not in (2, 3):
                raise ReadError(where, f"an image must be (H, W) or (H, W, C) pixels, got shape {values.shape}")
            if values.dtype != np.uint8 and spec.divide == 1.0 and values.size and float(values.max()) <= 1.0:
                values = values * 255.0  # pixels in [0, 1]
            elif spec.divide != 1.0:
                values = values / spec.divide * 255.0
            return image_tensor(values, spec)
        if spec.kind == "audio":
            return torch.from_numpy(np.clip(np.asarray(values, np.float32).reshape(-1), -1.0, 1.0))
        tensor = array_tensor(values, spec, where)
        if modality in self.groups:
            tensor = self.groups[modality].apply(tensor, row)
        return tensor

    def texts(self, modality: str) -> list[str]:
        return [t for t in (self._decode(modality, row) for row in self.rows) if t is not None]

    def subset(self, indices: Sequence[int]) -> "TableDataset":
        return TableDataset(self.columns, self.specs, self.label_of, self.labels, self.classes, self.origin,
                            [self.rows[i] for i in indices], self.groups)


class GroupNormaliser:
    """Per-group (per-speaker) normalisation: each group's mean and spread of every row of an item
    (a spectrogram's frequency band), over all of that group's items and the last axis (time).

    Statistics come from the data being read, labels unused: a new speaker at test time is
    normalised with its own recordings' statistics (speaker-level CMVN), so this assumes the test
    set holds several items of each group.
    """

    def __init__(self, groups: list[str], stats: dict[str, tuple[np.ndarray, np.ndarray]]):
        self.groups, self.stats = groups, stats

    @classmethod
    def fit(cls, dataset: "TableDataset", modality: str, groups: list[str]) -> "GroupNormaliser":
        sums: dict[str, list] = {}
        for row in dataset.rows:
            value = dataset._decode(modality, row)
            if value is None:
                continue
            values = value.numpy().astype(np.float64)
            slot = sums.setdefault(groups[row], [0.0, 0.0, 0])
            slot[0] = slot[0] + values.sum(axis=-1, keepdims=True)
            slot[1] = slot[1] + (values ** 2).sum(axis=-1, keepdims=True)
            slot[2] += values.shape[-1]
        stats = {}
        for group, (total, squares, count) in sums.items():
            mean = total / count
            spread = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
            stats[group] = (mean.astype(np.float32), np.maximum(spread, 1e-5).astype(np.float32))
        return cls(groups, stats)

    def apply(self, tensor: Tensor, row: int) -> Tensor:
        mean, spread = self.stats[self.groups[row]]
        return (tensor - torch.from_numpy(mean)) / torch.from_numpy(spread)


def class_order(names: Sequence[str]) -> list[str]:
    """Distinct class names sorted; numerically when every name is an integer ("2" before "10")."""
    distinct = set(names)
    try:
        return sorted(distinct, key=int)
    except ValueError:
        return sorted(distinct)


def open_table(source: Any, specs: Mapping[str, ModalitySpec], label_of: Mapping[str, str],
               classes: Mapping[str, list[str]] | None = None) -> TableDataset:
    """A TableDataset over an array / table source; every spec's column and label column must be there."""
    from .sources import label_strings, open_columns

    columns, names, origin = open_columns(source)
    missing = [s.column for s in specs.values() if s.column not in columns]
    missing += [c for c in sorted(set(label_of.values())) if c not in columns]
    if missing:
        raise ReadError(origin, f"no column {', '.join(repr(m) for m in missing)} (columns: {', '.join(columns)})")
    lengths = {name: len(columns[name]) for name in [s.column for s in specs.values()] + list(label_of.values())}
    if len(set(lengths.values())) != 1:
        raise ReadError(origin, "columns differ in length: " + ", ".join(f"{k} {v}" for k, v in lengths.items()))
    labels = {column: label_strings(columns[column], names.get(column), origin, column)
              for column in sorted(set(label_of.values()))}
    if classes is None:
        classes = {}
        for task, column in label_of.items():
            known = names.get(column)
            classes[task] = list(known) if known else class_order(labels[column])
    by_modality = {name: columns[spec.column] for name, spec in specs.items()}
    dataset = TableDataset(by_modality, specs, label_of, labels, classes, origin)
    for name, spec in specs.items():
        if spec.normalise == "group":
            if spec.group not in columns:
                raise ReadError(origin, f"no column {spec.group!r} (data.modalities.{name}.group; columns: {', '.join(columns)})")
            groups = label_strings(columns[spec.group], names.get(spec.group), origin, spec.group)
            dataset.groups[name] = GroupNormaliser.fit(dataset, name, groups)
    return dataset


def open_dataset(source: Any, config: Config, classes: Mapping[str, list[str]] | None = None,
                 cache: DecodedCache | None = None) -> ItemDataset | TableDataset:
    """The labelled items a data source holds: a CSV manifest, class folders, or arrays / tables.

    `classes` fixes the class order (validation and test data take the training set's); without
    it the order is read from the data.
    """
    from .sources import is_table_source

    label_of = {task.name: task.label for task in config.tasks}
    specs = config.data.modalities
    if is_table_source(source):
        return open_table(source, specs, label_of, classes)
    grouped = [name for name, spec in specs.items() if spec.normalise == "group"]
    if grouped:
        raise ConfigError(f"data.modalities.{grouped[0]}.normalise: \"group\" reads its groups from an array or "
                          "table source (.npy columns, .npz, Parquet, Arrow), not from a manifest or folders")
    path = Path(source)
    columns = sorted(set(label_of.values()))
    if path.is_dir():
        if len(columns) != 1:
            raise ConfigError("tasks: a folder layout carries one label; use a manifest for several tasks")
        items = read_folder(path, specs, columns[0])
    else:
        items = read_manifest(path, specs, columns)
    if classes is None:
        classes = {task: class_order([item.labels[col] for item in items]) for task, col in label_of.items()}
    return ItemDataset(items, specs, label_of, classes, cache)


class ArrayDataset(Dataset):
    """In-memory tensors (N, ...) per modality and (N,) labels per task; `present` marks missing cells."""

    def __init__(self, inputs: Mapping[str, Tensor], labels: Mapping[str, Tensor],
                 present: Mapping[str, Tensor] | None = None, classes: Mapping[str, list[str]] | None = None):
        sizes = {len(v) for v in list(inputs.values()) + list(labels.values())}
        if len(sizes) != 1:
            raise ValueError(f"every input and label tensor must have the same length, got {sorted(sizes)}")
        self.inputs, self.targets = dict(inputs), {k: torch.as_tensor(v).long() for k, v in labels.items()}
        self.present = {k: torch.as_tensor(v).bool() for k, v in (present or {}).items()}
        self.classes = dict(classes) if classes else {
            task: [str(c) for c in range(int(t.max()) + 1)] for task, t in self.targets.items()}

    def __len__(self) -> int:
        return len(next(iter(self.targets.values())))

    def __getitem__(self, i: int) -> dict[str, Any]:
        inputs = {m: (None if m in self.present and not self.present[m][i] else v[i]) for m, v in self.inputs.items()}
        return {"inputs": inputs, "labels": {task: int(t[i]) for task, t in self.targets.items()}}


class Collate:
    """Stacks samples into a batch: pads variable-length inputs with a mask, marks missing modalities.

    A modality missing from every sample of a batch is left out of it entirely (fusion handles
    subsets); text is tokenised here with the run's tokenizer.
    """

    def __init__(self, tokenizers: Mapping[str, Any] | None = None, max_lengths: Mapping[str, int] | None = None,
                 sequences: Sequence[str] = ()):
        self.tokenizers = dict(tokenizers or {})
        self.max_lengths = dict(max_lengths or {})
        self.sequences = set(sequences)  # modalities always given a (B, T) mask (audio, series)

    @classmethod
    def for_specs(cls, specs: Mapping[str, ModalitySpec], tokenizers: Mapping[str, Any] | None = None) -> "Collate":
        return cls(tokenizers, {n: s.max_length for n, s in specs.items()},
                   [n for n, s in specs.items() if s.kind in ("audio", "series")])

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = {"inputs": {}, "masks": {}, "present": {}, "labels": {}}
        for name in samples[0]["inputs"]:
            values = [s["inputs"][name] for s in samples]
            here = torch.tensor([v is not None for v in values])
            if not here.any():
                continue
            if name in self.tokenizers:
                texts = [v if v is not None else "" for v in values]
                ids, mask = self.tokenizers[name].encode(texts, max_length=self.max_lengths.get(name, 128))
                batch["inputs"][name], batch["masks"][name] = ids, mask
            else:
                tensor, mask = _stack(values, name, name in self.sequences)
                batch["inputs"][name] = tensor
                if mask is not None:
                    batch["masks"][name] = mask
            batch["present"][name] = here
        for task in samples[0]["labels"]:
            batch["labels"][task] = torch.tensor([s["labels"][task] for s in samples], dtype=torch.long)
        return batch


def _stack(values: list[Tensor | None], name: str, sequence: bool = False) -> tuple[Tensor, Tensor | None]:
    real = [v for v in values if v is not None]
    shapes = {tuple(v.shape) for v in real}
    if len(shapes) == 1 and not sequence:
        template = torch.zeros_like(real[0])
        return torch.stack([template if v is None else v for v in values]), None
    ranks = {len(s) for s in shapes}
    if len(ranks) != 1 or any(s[1:] != next(iter(shapes))[1:] for s in shapes):
        raise ValueError(f"{name}: samples differ in more than their first (time) axis: {sorted(shapes)}")
    length = max(s[0] for s in shapes)
    rest = real[0].shape[1:]
    out = torch.zeros((len(values), length, *rest), dtype=real[0].dtype)
    mask = torch.zeros((len(values), length), dtype=torch.bool)
    for i, v in enumerate(values):
        if v is not None:
            out[i, : v.shape[0]] = v
            mask[i, : v.shape[0]] = True
    return out, mask


def load_datasets(config: Config) -> tuple[Dataset, Dataset | None]:
    """Training and validation datasets a config names; validation split off when none is given."""
    data = config.data
    if data.train is None:
        raise ConfigError("data.train: missing (a CSV manifest, a folder of class folders, arrays or a table)")
    cache = DecodedCache(data.cache_mb * 2**20) if data.cache_mb > 0 else None
    train = open_dataset(data.train, config, cache=cache)
    if data.validation is not None:
        return train, open_dataset(data.validation, config, train.classes, cache)
    if data.val_fraction == 0:
        return train, None
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(config.train.seed)).tolist()
    cut = max(1, int(round(len(order) * data.val_fraction)))
    if cut >= len(order):
        raise ConfigError(f"data.val_fraction: {data.val_fraction} leaves no training items out of {len(order)}")
    return train.subset(order[cut:]), train.subset(order[:cut])
