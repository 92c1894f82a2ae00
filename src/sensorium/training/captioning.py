"""Training the world captioner with the Trainer: a folder from `sensorium world make` in, a captioner out.

The Trainer optimises the captioner's own teacher-forced word loss (`computes_loss`), so the run
gets what every run gets: warm-up + cosine, clipping, checkpoints and exact resume, metrics.jsonl,
a progress bar. Each item is one picture with all its captions, so a picture is encoded once per
step however many captions it has.

    model = train_captioner("worlds/A-train", "runs/captioner", CaptionTraining(epochs=12))
    model.caption([pixels], beam=3)
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError
from ..world.captioner import PAD_ID, cell_targets, Captioner, CaptionerConfig, build_vocabulary
from ..world.vocabulary import words_of
from ..world.writer import WorldError, read_pictures
from .config import TrainConfig
from .trainer import fit_own_loss, seed_everything, threads_for

MODEL_DIR = "captioner"


@dataclass(frozen=True)
class CaptionTraining:
    epochs: int = 12
    batch_size: int = 32  # pictures per step (each with `captions_per_step` of its captions)
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 200
    width: int = 128
    layers: int = 3
    heads: int = 4
    seed: int = 0
    threads: int = 0
    scenes: int = 0  # 0 = every scene of the folder
    captions_per_step: int = 2  # of each picture's captions, per epoch
    progress: bool = True


def read_pictures_and_captions(world: str | Path, scenes: int = 0) -> tuple[np.ndarray, list[list[str]], list[dict]]:
    """(pictures (N, S, S, 3) uint8, captions per picture, scene records) of a world folder."""
    pictures, records = read_pictures(Path(world), scenes)
    captions = [[c["text"] for c in record["captions"]] for record in records]
    if not any(captions):
        raise WorldError(f"{world}: the scenes have no captions (make it with --captions 1 or more)")
    return pictures, captions, records


class CaptionData(Dataset):
    """Item i: picture i and `per_step` of its captions as word ids (per_step, T), PAD-filled.

    Why not all of them: the decoder costs as much as the encoder per caption, so each epoch reads
    `per_step` captions of every picture, taking the next ones each epoch (`set_epoch`), and every
    caption is read once per C / per_step epochs. Pictures with fewer captions repeat theirs."""

    def __init__(self, pictures: np.ndarray, captions: list[list[str]], model: Captioner, per_step: int = 2,
                 records: list[dict] | None = None):
        self.pictures = torch.from_numpy(pictures).permute(0, 3, 1, 2).contiguous()  # uint8 (N, 3, S, S)
        per = max(len(c) for c in captions)
        steps = model.config.max_words
        self.captions = torch.full((len(captions), per, steps), PAD_ID, dtype=torch.long)
        for i, texts in enumerate(captions):
            texts = texts or [""]
            for j in range(per):
                ids = model.encode_words(texts[j % len(texts)])
                self.captions[i, j, :len(ids)] = torch.tensor(ids)
        grid = model.config.image_size // 8
        self.cells = torch.stack([cell_targets(r["objects"], r["size"], grid) for r in records]) \
            if records is not None else None
        self.per_step = max(1, min(per_step, per))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pictures)

    def __getitem__(self, index: int):
        per = self.captions.shape[1]
        rows = [(self.epoch * self.per_step + r) % per for r in range(self.per_step)]
        cells = self.cells[index] if self.cells is not None else None
        return self.pictures[index], self.captions[index, rows], cells


def collate(items) -> dict:
    pictures = torch.stack([item[0] for item in items]).float() / 255.0
    captions = torch.stack([item[1] for item in items])
    batch = {"pictures": pictures, "captions": captions, "size": int(captions[:, :, 0].ne(PAD_ID).sum())}
    if items[0][2] is not None:
        batch["cells"] = torch.stack([item[2] for item in items])
    return batch


def train_captioner(world: str | Path, out: str | Path, settings: CaptionTraining | None = None,
                    resume: bool = False) -> Captioner:
    """Train on a world folder's pictures and captions; the model goes to OUT/captioner (safetensors + JSON),
    checkpoints to OUT/checkpoint, the loss per epoch to OUT/metrics.jsonl."""
    settings = settings or CaptionTraining()
    if settings.epochs < 1 or settings.batch_size < 1:
        raise ConfigError("epochs and batch_size: at least 1")
    out = Path(out)
    torch.set_num_threads(threads_for(settings.threads))
    seed_everything(settings.seed)
    pictures, captions, records = read_pictures_and_captions(world, settings.scenes)
    vocabulary = build_vocabulary(c for texts in captions for c in texts)
    longest = max(len(words_of(c)) for texts in captions for c in texts) + 1  # the end marker
    config = CaptionerConfig(vocabulary=vocabulary, image_size=pictures.shape[1], width=settings.width,
                             layers=settings.layers, heads=settings.heads, max_words=max(longest, 8),
                             trained={**asdict(settings), "world": str(Path(world).resolve()),
                                      "scenes": len(records), "condition": records[0].get("condition")})
    model = Captioner(config)
    data = CaptionData(pictures, captions, model, settings.captions_per_step, records)
    train = TrainConfig(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                        weight_decay=settings.weight_decay, warmup_steps=settings.warmup_steps, seed=settings.seed,
                        threads=settings.threads, progress=settings.progress, min_lr_ratio=0.05)
    summary = fit_own_loss(model, data, collate, out, train, resume)
    model.save(out / MODEL_DIR)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    return model.eval()

