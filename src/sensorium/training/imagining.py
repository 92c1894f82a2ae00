"""Training a text-to-image model (`sensorium.diffusion`, drawn with `sensorium.generation.imagine`) with `sensorium train CONFIG --out RUN`.

A config with an [imagine] table is a text-to-image run (examples/imagine_mnist.toml):

    [imagine]
    data = "../../shared/data/mnist/mnist.npz"   # an .npz (x_train, y_train), a folder of IDX files
    prompts = "digits"                            # (Fashion-MNIST's), or a folder of class folders
    [train]                                       # the Trainer's options, as for any run
    epochs = 8

Every training picture is paired, each epoch anew, with one of its class's prompts in words
("a handwritten seven", "the digit 7", "7"); the prompt goes through MiniLM, as at drawing time.
The loop is the learning framework's Trainer (warm-up + cosine, clipping, bf16, checkpoints and
exact resume, metrics.jsonl, a progress bar); the objective is DDPM's (Ho et al. 2020) with a
v target, the prompt dropped for the null embedding at rate `drop_prompt` (classifier-free
guidance), and an exponential moving average of the weights kept in the model's own state, so
checkpoints carry it and resume exactly. RUN/model/ gets the averaged weights; RUN/samples.png a
row of pictures per concept.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..errors import ConfigError, ReadError
from ..diffusion import (ImagineConfig, TextToImage, planned_layouts, prompt_conditions, sample, save_model, schedulers,
                         tile, to_pixels)
from ..world.layout import layout_map
from .config import TrainConfig, fill_fields, read_toml
from .sources import read_idx
from .imagining_world import WORLD_PROMPTS, WORLD_SOURCE, check_world_settings, world_pictures
from .trainer import fit_own_loss, seed_everything, threads_for

IMAGINE_TABLE, RUN_RECORD, MODEL_DIR, RUNS_DIR, SAMPLES_FILE = "imagine", "imagine-run.json", "model", "runs", "samples.png"
PROMPT_SETS = ("digits", "fashion", "names", WORLD_PROMPTS)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
DIGIT_TEMPLATES = ["{word}", "{digit}", "the digit {digit}", "a handwritten {word}", "the number {word}",
                   "a {word}", "handwritten digit {digit}", "the numeral {digit}", "a hand-drawn {word}",
                   "number {digit}"]
# Fashion-MNIST's classes as people name them: a noun phrase per synonym, official name first
FASHION_NAMES = [["a t-shirt", "a top", "a tee"], ["trousers", "pants", "a pair of trousers"],
                 ["a pullover", "a sweater", "a jumper"], ["a dress", "a frock"], ["a coat", "a jacket", "an overcoat"],
                 ["a sandal", "sandals", "a summer sandal"], ["a shirt", "a button-up shirt", "a blouse"],
                 ["a sneaker", "a trainer", "a running shoe"], ["a bag", "a handbag", "a purse"],
                 ["an ankle boot", "a boot", "a short boot"]]
FASHION_CONCEPTS = ["t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                    "ankle boot"]
PHRASE_TEMPLATES = ["{phrase}", "{bare}", "a photo of {phrase}", "a picture of {phrase}", "a product photo of {phrase}"]


@dataclass
class ImagineTraining:
    """The [imagine] table: the data, its prompts, the model's shape and the diffusion objective."""

    data: str = ""
    prompts: str = "digits"
    per_class: int = 0  # at most this many training pictures per class (0 = all): for quick runs and tests
    size: int = 32
    image_size: int = 28
    channels: int = 1
    widths: list[int] = field(default_factory=lambda: [32, 64, 64])
    attention: bool = True
    patch: int = 1  # fold PATCH x PATCH pixel squares into channels before the UNet (2 for 64 px: faster)
    tokens: int = 0  # > 0: cross-attention over the prompt's first TOKENS token states too (relations need it)
    layout: bool = False  # data = "world": also read each scene's layout (objects' boxes); drawing plans one
    drop_layout: float = 0.1  # chance per picture of training without its layout (prompts no plan can read)
    drop_prompt: float = 0.1  # chance per picture of training without its prompt (classifier-free guidance)
    ema: float = 0.999  # decay of the weights' moving average; the drawn model is the average
    samples_steps: int = 20  # RUN/samples.png: DDIM steps ...
    samples_guidance: float = 3.0  # ... and guidance
    scenes: int = 40000  # data = "world": how many scenes to draw ...
    condition: str = "A"  # ... under which colour condition (A, B or all) ...
    object_sizes: list[str] = field(default_factory=lambda: ["large"])  # ... with objects of these sizes


def digit_prompts() -> tuple[list[str], list[list[str]]]:
    return DIGIT_WORDS, [[t.format(word=w, digit=d) for t in DIGIT_TEMPLATES] for d, w in enumerate(DIGIT_WORDS)]


def bare_noun(phrase: str) -> str:
    """"a pair of trousers" -> "trousers": the phrase without its article."""
    for article in ("a pair of ", "an ", "a "):
        if phrase.startswith(article):
            return phrase[len(article):]
    return phrase


def phrase_prompts(concepts: list[str], phrases: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    per = [sorted({t.format(phrase=p, bare=bare_noun(p)) for p in options for t in PHRASE_TEMPLATES}, key=str)
           for options in phrases]
    return concepts, per


def prompts_for(kind: str, class_names: list[str]) -> tuple[list[str], list[list[str]]]:
    """(concepts, training prompts per concept) of a prompt set, for a dataset's classes in order."""
    if kind == "digits":
        if len(class_names) != 10:
            raise ConfigError(f"imagine.prompts: 'digits' needs the 10 digit classes, the data has {len(class_names)}")
        return digit_prompts()
    if kind == "fashion":
        if len(class_names) != 10:
            raise ConfigError(f"imagine.prompts: 'fashion' needs Fashion-MNIST's 10 classes, the data has "
                              f"{len(class_names)}")
        return phrase_prompts(FASHION_CONCEPTS, FASHION_NAMES)
    names = [name.replace("_", " ").replace("-", " ").strip() for name in class_names]
    return phrase_prompts(names, [[f"an {n}" if n[:1] in "aeiou" else f"a {n}"] for n in names])


def read_labelled_images(source: Path, image_size: int, channels: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images (N, H, W[, 3]) uint8, labels (N,), class names) from an .npz, an IDX folder or class folders."""
    if not source.exists():
        raise ConfigError(f"imagine.data: {source} does not exist")
    if source.is_file() and source.suffix == ".npz":
        with np.load(source) as archive:
            for images_key, labels_key in (("x_train", "y_train"), ("images", "labels"), ("x", "y")):
                if images_key in archive and labels_key in archive:
                    images, labels = archive[images_key], archive[labels_key].astype(np.int64)
                    break
            else:
                raise ReadError(source, f"no (x_train, y_train), (images, labels) or (x, y) arrays; has {list(archive)}")
        names = [str(i) for i in range(int(labels.max()) + 1)]
    elif source.is_dir() and (source / "train-images-idx3-ubyte.gz").is_file():
        images = read_idx(source / "train-images-idx3-ubyte.gz")
        labels = read_idx(source / "train-labels-idx1-ubyte.gz").astype(np.int64)
        names = [str(i) for i in range(int(labels.max()) + 1)]
    elif source.is_dir():
        images, labels, names = _read_class_folders(source, image_size, channels)
    else:
        raise ConfigError(f"imagine.data: {source} is not an .npz file, a folder of IDX files or of class folders")
    if len(images) != len(labels) or not len(images):
        raise ReadError(source, f"{len(images)} images but {len(labels)} labels")
    if images.shape[1] != image_size or images.shape[2] != image_size:
        raise ConfigError(f"imagine.image_size: {image_size}, but {source} holds {images.shape[1]}x{images.shape[2]} "
                          "pictures")
    return images, labels, names


def _read_class_folders(folder: Path, image_size: int, channels: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from PIL import Image, UnidentifiedImageError

    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ConfigError(f"imagine.data: {folder} has no class folders")
    images, labels, skipped = [], [], []
    for label, class_folder in enumerate(classes):
        for path in sorted(class_folder.rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(path) as image:
                    image = image.convert("L" if channels == 1 else "RGB").resize((image_size, image_size))
                    images.append(np.asarray(image, dtype=np.uint8))
                    labels.append(label)
            except (OSError, UnidentifiedImageError) as error:
                skipped.append(f"{path}: {error}")  # one bad picture never stops the run
    if skipped:
        print(f"skipped {len(skipped)} unreadable pictures, first: {skipped[0]}")
    if not images:
        raise ConfigError(f"imagine.data: no readable pictures under {folder}")
    return np.stack(images), np.asarray(labels, dtype=np.int64), [p.name for p in classes]


def cap_per_class(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of at most `per_class` pictures of each class (all when 0), chosen by seed."""
    if per_class <= 0:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class]
                                   for c in np.unique(labels)]))


class ImagePromptData(Dataset):
    """Item i: picture i in [-1, 1] padded to the model's side, and the embedding of one of its class's
    prompts, chosen afresh each epoch as a pure function of (seed, epoch) so a resumed run sees the same."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, prompt_ids: list[list[int]], embeddings: Tensor,
                 size: int, seed: int, layouts: np.ndarray | None = None):
        if images.ndim == 3:
            images = images[:, None]
        else:
            images = images.transpose(0, 3, 1, 2)
        pad = (size - images.shape[-1]) // 2
        padded = np.zeros((len(images), images.shape[1], size, size), dtype=np.uint8)
        padded[:, :, pad:pad + images.shape[2], pad:pad + images.shape[3]] = images
        self.images = torch.from_numpy(padded)
        self.labels = labels
        self.prompt_ids, self.embeddings, self.seed = prompt_ids, embeddings, seed
        self.layouts, self.size = layouts, size  # layout rows per picture (`world.layout`), painted when read
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.choice = np.random.default_rng([self.seed, epoch]).integers(0, 1 << 30, len(self.labels))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        options = self.prompt_ids[int(self.labels[index])]
        prompt = options[int(self.choice[index]) % len(options)]
        item = (self.images[index].float() / 127.5 - 1.0, self.embeddings[prompt])
        if self.layouts is None:
            return item
        return (*item, torch.from_numpy(layout_map(self.layouts[index], self.size)))


def collate_pictures(items) -> dict[str, Any]:
    batch = {"pixels": torch.stack([i[0] for i in items]), "prompts": torch.stack([i[1] for i in items]).float(),
             "size": len(items)}
    if len(items[0]) > 2:
        batch["layouts"] = torch.stack([i[2] for i in items])
    return batch


class DiffusionObjective(nn.Module):
    """The training-time wrapper: forward(batch) -> the denoising loss; after_step() -> EMA update."""

    computes_loss = True

    def __init__(self, model: TextToImage, ema: float, drop_prompt: float, drop_layout: float = 0.0):
        super().__init__()
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        self.model = model
        self.average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema), use_buffers=True)
        for parameter in self.average.parameters():
            parameter.requires_grad_(False)
        self.noise, _ = schedulers(model.config)
        self.drop_prompt, self.drop_layout = drop_prompt, drop_layout

    def forward(self, batch: dict[str, Any]) -> Tensor:
        x, prompts = batch["pixels"], batch["prompts"]
        noise = torch.randn_like(x)
        steps = torch.randint(0, self.model.config.timesteps, (x.shape[0],))
        noisy = self.noise.add_noise(x, noise, steps)
        target = self.noise.get_velocity(x, noise, steps) if self.model.config.prediction == "v_prediction" else noise
        keep = torch.rand(x.shape[0]) >= self.drop_prompt
        layouts = batch.get("layouts")
        keep_layout = keep & (torch.rand(x.shape[0]) >= self.drop_layout) if layouts is not None else None
        return F.mse_loss(self.model(noisy, steps, prompts, keep, layouts, keep_layout).float(), target)

    def after_step(self) -> None:
        self.average.update_parameters(self.model)

    @property
    def averaged(self) -> TextToImage:
        return self.average.module


def parse_run(raw: dict[str, Any]) -> tuple[ImagineTraining, TrainConfig]:
    """The [imagine] and [train] tables of a text-to-image config, checked; ConfigError names the field."""
    unknown = sorted(set(raw) - {IMAGINE_TABLE, "train"})
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section in a text-to-image config (known: imagine, train)")
    settings, train = ImagineTraining(), TrainConfig()
    table = raw.get(IMAGINE_TABLE)
    if not isinstance(table, dict):
        raise ConfigError("imagine: must be a table")
    fill_fields(settings, table, "imagine.")
    if not isinstance(raw.get("train", {}), dict):
        raise ConfigError("train: must be a table")
    fill_fields(train, raw.get("train", {}), "train.", skip=("ogm_ge", "augment"))
    if not settings.data:
        raise ConfigError("imagine.data: missing; name an .npz, a folder of IDX files or a folder of class folders")
    if settings.prompts not in PROMPT_SETS:
        raise ConfigError(f"imagine.prompts: one of {', '.join(PROMPT_SETS)}, got {settings.prompts!r}")
    if (settings.data == WORLD_SOURCE) != (settings.prompts == WORLD_PROMPTS):
        raise ConfigError(f'imagine.prompts: "{WORLD_PROMPTS}" goes with data = "{WORLD_SOURCE}" (scenes drawn with '
                          "their prompts), and only with it")
    if settings.data == WORLD_SOURCE:
        check_world_settings(settings)
    elif settings.layout:
        raise ConfigError(f'imagine.layout: only for data = "{WORLD_SOURCE}" (the world\'s scenes know where each '
                          "object stands)")
    if not 0 <= settings.drop_layout < 1:
        raise ConfigError(f"imagine.drop_layout: in [0, 1), got {settings.drop_layout}")
    if not 0 <= settings.drop_prompt < 1:
        raise ConfigError(f"imagine.drop_prompt: in [0, 1), got {settings.drop_prompt}")
    if not 0 < settings.ema < 1:
        raise ConfigError(f"imagine.ema: in (0, 1), got {settings.ema}")
    for key in ("epochs", "batch_size"):
        if getattr(train, key) <= 0:
            raise ConfigError(f"train.{key}: must be positive, got {getattr(train, key)}")
    try:
        model_config(settings, [], []).check()
    except ConfigError as error:
        raise ConfigError(f"imagine.{error}") from None
    return settings, train


def model_config(settings: ImagineTraining, concepts: list[str], prompts: list[list[str]]) -> ImagineConfig:
    """The model's config; PROMPTS are each concept's known prompts (what the unknown-prompt warning compares with)."""
    flat = [p for options in prompts for p in options]
    owners = [c for c, options in enumerate(prompts) for _ in options]
    return ImagineConfig(size=settings.size, image_size=settings.image_size, channels=settings.channels,
                         widths=list(settings.widths), attention=settings.attention, patch=settings.patch,
                         tokens=settings.tokens, layout=settings.layout, concepts=list(concepts),
                         prompts=flat, prompt_concepts=owners)


def is_imagine_config(path: str | Path) -> bool:
    """Whether a TOML config describes a text-to-image run (it has an [imagine] table)."""
    return IMAGINE_TABLE in read_toml(path)


def train_imaginer(config_path: str | Path, out: str | Path, resume: bool = False, *,
                   stop_after_steps: int | None = None, text_encoder=None) -> dict[str, Any]:
    """Everything `sensorium train` does for an [imagine] config; returns the Trainer's summary."""
    from ..experts.text import TextEncoder

    config_path, out = Path(config_path), Path(out)
    raw = read_toml(config_path)
    settings, train = parse_run(raw)
    record_path = out / RUN_RECORD
    if resume:
        if not record_path.is_file():
            raise ConfigError(f"--resume: {out} holds no text-to-image run to resume ({RUN_RECORD} missing)")
        if json.loads(record_path.read_text(encoding="utf-8"))["config"] != raw:
            raise ConfigError(f"--resume: {config_path} differs from the config {out} was started with")
    torch.set_num_threads(threads_for(train.threads))
    seed_everything(train.seed)
    encoder = text_encoder or TextEncoder()
    if settings.data == WORLD_SOURCE:
        pictures = world_data(settings, train.seed, encoder)
    else:
        pictures = class_data(settings, config_path, train.seed, encoder)
    config = pictures.config
    config.trained.update({"epochs": train.epochs, "batch_size": train.batch_size, "lr": train.lr, "seed": train.seed,
                           "drop_prompt": settings.drop_prompt, "ema": settings.ema})
    if settings.layout:
        config.trained["drop_layout"] = settings.drop_layout
    model = TextToImage(config)
    model.known_prompts.copy_(pictures.known)
    objective = DiffusionObjective(model, settings.ema, settings.drop_prompt, settings.drop_layout)
    data = ImagePromptData(pictures.images, pictures.labels, pictures.prompt_ids, pictures.embeddings, settings.size,
                           train.seed, pictures.layouts if settings.layout else None)
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        record_path.write_text(json.dumps({"config": raw, "settings": asdict(settings)}, indent=1), encoding="utf-8")
    summary = fit_own_loss(objective, data, collate_pictures, out / RUNS_DIR, train, resume, stop_after_steps)
    if summary["interrupted"]:
        return summary
    averaged = objective.averaged.eval()
    averaged.config = config
    save_model(averaged, out / MODEL_DIR)
    write_samples(averaged, out / SAMPLES_FILE, settings.samples_steps, settings.samples_guidance, train.seed, encoder)
    return summary


@dataclass
class TrainingPictures:
    """What a text-to-image run learns from: pictures, each with a label whose prompts may stand for it."""

    config: ImagineConfig  # the model's config, its `trained` record begun
    images: np.ndarray  # (N, H, W[, 3]) uint8
    labels: np.ndarray  # (N,) a class, or (the world) the scene's own number
    prompt_ids: list[list[int]]  # per label: rows of EMBEDDINGS that may stand for it
    embeddings: Tensor  # (P, *condition_width) every training prompt's condition (sentence vector[, token states])
    known: Tensor  # (K, 384) the known prompts' sentence vectors: what the far-prompt warning compares with
    layouts: np.ndarray | None = None  # the world's: each scene's layout rows (`world.layout.layout_rows`)


def class_data(settings: ImagineTraining, config_path: Path, seed: int, encoder) -> TrainingPictures:
    """Labelled pictures (an .npz, IDX files or class folders), each paired with its class's prompts (which are
    also the known prompts)."""
    source = Path(settings.data)
    source = source if source.is_absolute() else (config_path.parent / source).resolve()
    images, labels, class_names = read_labelled_images(source, settings.image_size, settings.channels)
    chosen = cap_per_class(labels, settings.per_class, seed)
    images, labels = images[chosen], labels[chosen]
    concepts, prompts = prompts_for(settings.prompts, class_names)
    config = model_config(settings, concepts, prompts)
    config.trained = {"data": str(source), "pictures": int(len(labels)), "prompts": settings.prompts}
    embeddings = training_conditions(encoder, config.prompts, settings.tokens)
    starts = np.cumsum([0] + [len(options) for options in prompts])
    prompt_ids = [list(range(starts[c], starts[c + 1])) for c in range(len(prompts))]
    known = embeddings[:, 0].float() if settings.tokens else embeddings
    return TrainingPictures(config, images, labels, prompt_ids, embeddings, known)


def world_data(settings: ImagineTraining, seed: int, encoder) -> TrainingPictures:
    """The world's scenes drawn now, each its own label with its own true prompts; the known prompts are the
    single-object phrases of the 40 colour-shape concepts."""
    world = world_pictures(settings.scenes, settings.size, settings.condition, seed, tuple(settings.object_sizes))
    by_concept = [[] for _ in world.concepts]
    for text, owner in zip(world.known, world.known_concepts):
        by_concept[owner].append(text)
    config = model_config(settings, world.concepts, by_concept)
    config.trained = {"data": WORLD_SOURCE, "pictures": settings.scenes, "prompts": WORLD_PROMPTS,
                      "condition": settings.condition, "object_sizes": list(settings.object_sizes)}
    distinct = sorted({text for options in world.prompts for text in options})
    number = {text: i for i, text in enumerate(distinct)}
    embeddings = training_conditions(encoder, distinct, settings.tokens)
    prompt_ids = [[number[text] for text in options] for options in world.prompts]
    known = torch.from_numpy(np.asarray(encoder.encode(config.prompts), np.float32))
    return TrainingPictures(config, world.images, np.arange(len(world.images)), prompt_ids, embeddings, known,
                            world.layouts)


def training_conditions(encoder, texts: list[str], tokens: int) -> Tensor:
    """Every training prompt's condition (`diffusion.prompt_conditions`); with token states, float16 rows
    (a world run holds tens of thousands of prompts: 25 KB each in float32)."""
    if not tokens:
        return prompt_conditions(encoder, texts, tokens)
    chunk = 4096  # float32 states only a chunk at a time
    return torch.cat([prompt_conditions(encoder, texts[s:s + chunk], tokens).half()
                      for s in range(0, len(texts), chunk)])


def write_samples(model: TextToImage, path: Path, steps: int, guidance: float, seed: int, encoder,
                  per_concept: int = 8) -> None:
    """A grid: one row per concept, drawn from its first training prompt."""
    from PIL import Image

    config = model.config
    first = [config.prompt_concepts.index(c) for c in range(len(config.concepts))]
    prompts = prompt_conditions(encoder, [config.prompts[i] for i in first], config.tokens)
    texts = [config.prompts[i] for i in first for _ in range(per_concept)]
    prompts = prompts.repeat_interleave(per_concept, 0)
    layouts, _ = planned_layouts(config, texts, seed)
    pixels = to_pixels(sample(model, prompts, steps, guidance, torch.Generator().manual_seed(seed), layouts),
                       config.image_size)
    Image.fromarray(tile(pixels, per_concept)).save(path)

