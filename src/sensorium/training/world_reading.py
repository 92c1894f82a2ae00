"""Training the world's question answerer (`sensorium.world.vqa`) with the Trainer: a world folder in,
a detector, an object reader and a question parser out, each supervised by the world's exact
annotations (boxes, attributes, programs).

Each part is its own Trainer run (warm-up + cosine, clipping, checkpoints and exact resume,
metrics.jsonl, a progress bar) under OUT/runs/<part>; the finished parts go to OUT/vqa as
safetensors + JSON. A part already in OUT/vqa is kept, so an interrupted training carries on
with the part it was in (`resume`), and one part can be retrained alone (`parts`).

    vqa = train_vqa("worlds/A-train", "runs/vqa", VQATraining())
    vqa.ask(pixels, "How many cubes are there?")
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError
from ..world.detector import DetectorConfig, ObjectDetector, box_targets
from ..world.parser import ParserConfig, QuestionParser, build_vocabulary
from ..world.perception import ObjectPerception, PerceptionConfig, attribute_labels, crop_object
from ..world.program import SLOTS, flatten
from ..world.vocabulary import CANNOT_TELL
from ..world.vqa import WorldVQA
from ..world.writer import WorldError, read_pictures, read_scenes
from .config import TrainConfig
from .trainer import fit_own_loss, seed_everything, threads_for

MODEL_DIR, RUNS_DIR = "vqa", "runs"
PARTS = ("detector", "objects", "parser")


@dataclass(frozen=True)
class VQATraining:
    detector_epochs: int = 6
    object_epochs: int = 4
    parser_epochs: int = 3
    parser_lr: float = 2e-3  # a short run on a few thousand questions learns in fewer epochs at a higher one
    scenes: int = 0  # pictures for the detector and the object reader; 0 = every scene of the folder
    questions: int = 0  # questions for the parser; 0 = every question of those scenes
    unanswerable: bool = True  # train the parser on unanswerable questions too
    seed: int = 0
    threads: int = 0
    progress: bool = True


# ---- data -------------------------------------------------------------------------------------

class PictureBoxes(Dataset):
    """Item i: picture i (uint8, 3 x S x S) and its detector targets."""

    def __init__(self, pictures: np.ndarray, records: list[dict], config: DetectorConfig):
        if pictures.shape[1] != config.image_size:
            raise ConfigError(f"pictures are {pictures.shape[1]} px, the detector expects {config.image_size}")
        self.pictures = torch.from_numpy(pictures).permute(0, 3, 1, 2).contiguous()
        targets = [box_targets([o["box"] for o in r["objects"]], config) for r in records]
        self.heat, self.regress, self.mask = (torch.stack(parts) for parts in zip(*targets))

    def __len__(self) -> int:
        return len(self.pictures)

    def __getitem__(self, i: int):
        return self.pictures[i], self.heat[i], self.regress[i], self.mask[i]


def collate_boxes(items) -> dict:
    pictures, heat, regress, mask = (torch.stack(parts) for parts in zip(*items))
    return {"pictures": pictures.float() / 255.0, "heat": heat, "regress": regress, "mask": mask, "size": len(items)}


class Crops(Dataset):
    """Item i: annotated object i's crop (uint8, 7 x side x side) and its attribute indices."""

    def __init__(self, pictures: np.ndarray, records: list[dict], side: int):
        crops, labels = [], []
        for picture, record in zip(pictures, records):
            for obj in record["objects"]:
                crops.append(crop_object(picture, obj["box"], side))
                labels.append(attribute_labels(obj))
        if not crops:
            raise WorldError("no annotated objects to learn attributes from")
        self.crops = torch.from_numpy(np.stack(crops))
        self.labels = torch.tensor(labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int):
        return self.crops[i], self.labels[i]


def collate_crops(items) -> dict:
    crops, labels = (torch.stack(parts) for parts in zip(*items))
    return {"crops": crops.float() / 255.0, "labels": labels, "size": len(items)}


class QuestionPrograms(Dataset):
    """Item i: question i's word ids and its program's slot indices."""

    def __init__(self, questions: list[str], programs: list[dict], parser: QuestionParser):
        self.words = parser.ids(questions)
        values = parser.config.slot_values
        flat = [flatten(p) for p in programs]
        self.slots = torch.tensor([[values[s].index(f[s]) for s in SLOTS] for f in flat], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.words)

    def __getitem__(self, i: int):
        return self.words[i], self.slots[i]


def collate_questions(items) -> dict:
    words, slots = (torch.stack(parts) for parts in zip(*items))
    return {"words": words, "slots": slots, "size": len(items)}


def world_questions(world: str | Path, limit: int = 0, unanswerable: bool = True) -> tuple[list[str], list[dict]]:
    """(questions, programs) of a world folder, in order; the first `limit` (0 = all), without the
    unanswerable ones when `unanswerable` is False."""
    questions, programs = [], []
    for record in read_scenes(Path(world)):
        for question in record["questions"]:
            if "program" not in question:
                raise WorldError(f"{world}: questions without programs (made by an older version); "
                                 "make the world again")
            if not unanswerable and question["answer"] == CANNOT_TELL:
                continue
            questions.append(question["question"])
            programs.append(question["program"])
            if limit and len(questions) >= limit:
                return questions, programs
    if not questions:
        raise WorldError(f"{world}: no questions (make it with --questions 1 or more)")
    return questions, programs


# ---- training ---------------------------------------------------------------------------------

def _fit(model, data: Dataset, collate, out: Path, epochs: int, batch_size: int, lr: float, warmup: int,
         settings: VQATraining, resume: bool) -> dict:
    train = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, warmup_steps=warmup, seed=settings.seed,
                        threads=settings.threads, progress=settings.progress, min_lr_ratio=0.05)
    return fit_own_loss(model, data, collate, out, train, resume)


def train_detector(pictures: np.ndarray, records: list[dict], out: Path, settings: VQATraining,
                   resume: bool = False, trained: dict | None = None) -> ObjectDetector:
    model = ObjectDetector(DetectorConfig(image_size=pictures.shape[1], trained=trained or {}))
    _fit(model, PictureBoxes(pictures, records, model.config), collate_boxes, out, settings.detector_epochs, 32,
         2e-3, 100, settings, resume)
    return model.eval()


def train_perception(pictures: np.ndarray, records: list[dict], out: Path, settings: VQATraining,
                     resume: bool = False, trained: dict | None = None) -> ObjectPerception:
    model = ObjectPerception(PerceptionConfig(trained=trained or {}))
    _fit(model, Crops(pictures, records, model.config.side), collate_crops, out, settings.object_epochs, 128, 3e-3,
         50, settings, resume)
    return model.eval()


def train_parser(questions: list[str], programs: list[dict], out: Path, settings: VQATraining,
                 resume: bool = False, trained: dict | None = None) -> QuestionParser:
    flat = [flatten(p) for p in programs]
    values = {slot: tuple(sorted({f[slot] for f in flat})) for slot in SLOTS}
    model = QuestionParser(ParserConfig(vocabulary=build_vocabulary(questions), slot_values=values,
                                        trained=trained or {}))
    _fit(model, QuestionPrograms(questions, programs, model), collate_questions, out, settings.parser_epochs, 128,
         settings.parser_lr, 50, settings, resume)
    return model.eval()


def train_vqa(world: str | Path, out: str | Path, settings: VQATraining | None = None, resume: bool = False,
              parts: tuple[str, ...] = PARTS) -> WorldVQA:
    """Train the parts named in `parts` on a world folder (the others must already be in OUT/vqa, or
    are trained too); the model goes to OUT/vqa, each part's run to OUT/runs/<part>."""
    settings = settings or VQATraining()
    if min(settings.detector_epochs, settings.object_epochs, settings.parser_epochs) < 1:
        raise ConfigError("epochs: at least 1 for every part")
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ConfigError(f"parts: {sorted(unknown)} are not among {PARTS}")
    world, out = Path(world), Path(out)
    folder = out / MODEL_DIR
    torch.set_num_threads(threads_for(settings.threads))
    seed_everything(settings.seed)
    record = {**asdict(settings), "world": str(world.resolve())}
    built = {"detector": ObjectDetector, "objects": ObjectPerception, "parser": QuestionParser}
    # kept: parts not asked for, and with `resume` also parts finished before an interruption
    have = {part: built[part].load(folder) for part in PARTS
            if (resume or part not in parts) and (folder / f"{part}.safetensors").is_file()}
    todo = [part for part in PARTS if part not in have]
    if {"detector", "objects"} & set(todo):
        pictures, records = read_pictures(world, settings.scenes)
        record["scenes"] = len(records)
        record["condition"] = records[0].get("condition")
    for part in todo:
        runs = out / RUNS_DIR / part
        resume_part = resume and (runs / "checkpoint").exists()
        if part == "detector":
            model = train_detector(pictures, records, runs, settings, resume_part, record)
        elif part == "objects":
            model = train_perception(pictures, records, runs, settings, resume_part, record)
        else:
            questions, programs = world_questions(world, settings.questions, settings.unanswerable)
            model = train_parser(questions, programs, runs, settings, resume_part,
                                 {**record, "questions": len(questions)})
        model.save(folder)  # each finished part is kept at once
        have[part] = model
    vqa = WorldVQA(have["detector"], have["objects"], have["parser"])
    vqa.save(folder)
    (out / "summary.json").write_text(json.dumps({"trained": todo, **record}, indent=1), encoding="utf-8")
    return vqa
