"""Training the world captioner (`sensorium.world.captioner`): a folder from `sensorium world make` in,
a captioner out.

The captioner reads pictures through the question answerer's detector and object reader, so those
are trained first (`world_reading`), or taken from OUT/vqa when `sensorium world train --model vqa`
made them there; then the word decoder learns the captions from what they see in each training
picture. The decoder is a Trainer run (`computes_loss`): warm-up + cosine, clipping, checkpoints
and exact resume, metrics.jsonl, a progress bar.

    captioner = train_world_captioner("worlds/A-train", "runs/world", CaptionTraining())
    captioner.caption([pixels], beam=3)
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError
from ..world.captioner import RUN_DIR, ObjectCaptioner, ObjectCaptionerConfig, WorldCaptioner, object_features, pack
from ..world.decoding import PAD_ID, build_vocabulary
from ..world.detector import ObjectDetector
from ..world.perception import ObjectPerception
from ..world.vocabulary import words_of
from ..world.writer import WorldError, read_pictures
from .config import TrainConfig
from .trainer import fit_own_loss, seed_everything, threads_for

MODEL_DIR = RUN_DIR


def read_pictures_and_captions(world: str | Path, scenes: int = 0) -> tuple[np.ndarray, list[list[str]], list[dict]]:
    """(pictures (N, S, S, 3) uint8, captions per picture, scene records) of a world folder."""
    pictures, records = read_pictures(Path(world), scenes)
    captions = [[c["text"] for c in record["captions"]] for record in records]
    if not any(captions):
        raise WorldError(f"{world}: the scenes have no captions (make it with --captions 1 or more)")
    return pictures, captions, records


@dataclass(frozen=True)
class CaptionTraining:
    epochs: int = 12  # of the word decoder
    detector_epochs: int = 6  # the detector and object reader, as `sensorium world train --model vqa` trains them
    object_epochs: int = 4
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    width: int = 128
    layers: int = 3
    heads: int = 4
    captions_per_step: int = 2
    scenes: int = 0
    seed: int = 0
    threads: int = 0
    progress: bool = True


class ObjectCaptionData(Dataset):
    """Item i: picture i's object tokens (K, FEATURES) and `per_step` of its captions (per_step, T)."""

    def __init__(self, features: list[np.ndarray], captions: list[list[str]], model: ObjectCaptioner, per_step: int):
        self.features = [torch.from_numpy(np.asarray(f, np.float32)) for f in features]
        per = max(len(c) for c in captions)
        self.captions = torch.full((len(captions), per, model.config.max_words), PAD_ID, dtype=torch.long)
        for i, texts in enumerate(captions):
            texts = texts or [""]
            for j in range(per):
                ids = model.encode_words(texts[j % len(texts)])
                self.captions[i, j, :len(ids)] = torch.tensor(ids)
        self.per_step = max(1, min(per_step, per))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int):
        per = self.captions.shape[1]
        rows = [(self.epoch * self.per_step + r) % per for r in range(self.per_step)]
        return self.features[index], self.captions[index, rows]


def collate_objects(items) -> dict:
    captions = torch.stack([item[1] for item in items])
    return {"memory": pack([item[0] for item in items]), "captions": captions,
            "size": int(captions[:, :, 0].ne(PAD_ID).sum())}


def perceive_all(detector, perception, pictures: np.ndarray, progress: bool, batch: int = 256) -> list[np.ndarray]:
    """Every picture's object tokens, read by the trained detector and object reader."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    out: list[np.ndarray] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=not progress, transient=True) as bar:
        task = bar.add_task("reading the objects of the training pictures", total=len(pictures))
        for start in range(0, len(pictures), batch):
            chunk = list(pictures[start:start + batch])
            out.extend(rows for _, rows in object_features(detector, perception, chunk))
            bar.advance(task, len(chunk))
    return out


def train_world_captioner(world: str | Path, out: str | Path, settings: CaptionTraining | None = None,
                          resume: bool = False) -> WorldCaptioner:
    """The grounded captioner: the detector and object reader (taken from OUT/vqa when
    `sensorium world train --model vqa` already made them there, trained otherwise), then the word
    decoder on what they see in each training picture. Everything goes to OUT/captioner."""
    from .world_reading import MODEL_DIR as VQA_DIR, RUNS_DIR, VQATraining, train_detector, train_perception

    settings = settings or CaptionTraining()
    if min(settings.epochs, settings.detector_epochs, settings.object_epochs, settings.batch_size) < 1:
        raise ConfigError("epochs and batch_size: at least 1")
    world, out = Path(world), Path(out)
    folder = out / MODEL_DIR
    torch.set_num_threads(threads_for(settings.threads))
    seed_everything(settings.seed)
    pictures, captions, records = read_pictures_and_captions(world, settings.scenes)
    record = {**asdict(settings), "world": str(world.resolve()), "scenes": len(records),
              "condition": records[0].get("condition")}
    reading = VQATraining(detector_epochs=settings.detector_epochs, object_epochs=settings.object_epochs,
                          scenes=settings.scenes, seed=settings.seed, threads=settings.threads,
                          progress=settings.progress)
    parts = {}
    for part, kind, train in (("detector", ObjectDetector, train_detector), ("objects", ObjectPerception,
                                                                           train_perception)):
        kept = next((f for f in (folder, out / VQA_DIR) if (f / f"{part}.safetensors").is_file()
                     and (resume or f != folder)), None)
        if kept is not None:
            parts[part] = kind.load(kept)
        else:
            runs = out / RUNS_DIR / part
            parts[part] = train(pictures, records, runs, reading, resume and (runs / "checkpoint").exists(), record)
            parts[part].save(folder)  # a trained part is kept at once, for --resume; kept ones are saved at the end
    features = perceive_all(parts["detector"], parts["objects"], pictures, settings.progress)
    vocabulary = build_vocabulary(c for texts in captions for c in texts)
    longest = max(len(words_of(c)) for texts in captions for c in texts) + 1
    model = ObjectCaptioner(ObjectCaptionerConfig(vocabulary=vocabulary, width=settings.width, layers=settings.layers,
                                                  heads=settings.heads, max_words=max(longest, 8), trained=record))
    data = ObjectCaptionData(features, captions, model, settings.captions_per_step)
    train = TrainConfig(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                        weight_decay=settings.weight_decay, warmup_steps=settings.warmup_steps, seed=settings.seed,
                        threads=settings.threads, progress=settings.progress, min_lr_ratio=0.05)
    summary = fit_own_loss(model, data, collate_objects, out / RUNS_DIR / "words", train, resume)
    captioner = WorldCaptioner(parts["detector"], parts["objects"], model.eval())
    captioner.save(folder)
    # beside the decoder's run, not OUT/summary.json: OUT may be the question answerer's run folder too
    (out / RUNS_DIR / "words" / "summary.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    return captioner
