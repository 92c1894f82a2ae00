"""Text → image: drawing what a sentence asks for, with a small conditional diffusion model
(`sensorium.diffusion`).

The prompt is read by the same MiniLM sentence encoder that anchors Sensorium's shared space, so
words drive it, not class ids: "the digit 7", "a handwritten seven" and "7" land near each other.

    imaginer = load_imaginer("mnist")          # or a folder `sensorium train` wrote
    drawn = imaginer.imagine("a handwritten seven", n=8, steps=20, guidance=3, seed=1)
    drawn.images                                # (8, 28, 28) uint8
    write_png("sevens.png", drawn.grid(), drawn.metadata(drawn.grid()))

A prompt far from every prompt the model was trained on gets a warning naming its nearest known
concepts and their cosine similarity, since such a model can only draw what it has seen. A model
trained to read layouts (`layout = true`, the world's scenes) is drawn to a layout planned from the
prompt first (`sensorium.world.layout`: which objects, and where, so that "left of" holds); each
picture's plan comes back in `Imagined.layouts` and in its PNG. Files
carry their prompt, seed, model id and a SHA-256 of their pixels as PNG text chunks.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..diffusion import (CONFIG_FILE, WEIGHTS_FILE, ImagineConfig, TextToImage, load_model, planned_layouts,
                         prompt_conditions, sample, tile, to_pixels)
from ..errors import ModelError
from ..experts.base import ModelInfo, package_version, sha256_of

SHIPPED_DIR = Path(__file__).parent / "data"
SHIPPED = {name: SHIPPED_DIR / f"imagine-{name}" for name in ("mnist", "fashion")}  # models that come with the package
MAX_IMAGES, MAX_STEPS, MAX_GUIDANCE = 64, 250, 20.0
MAX_PROMPT_CHARS = 300


@dataclass
class Nearest:
    concept: str
    similarity: float


@dataclass
class Imagined:
    """What `Imaginer.imagine` drew, with everything needed to draw it again."""

    images: np.ndarray  # (n, H, W) or (n, H, W, 3) uint8
    prompt: str
    seed: int
    steps: int
    guidance: float
    model: str  # the model's id: the first 16 hex digits of its weights' SHA-256
    nearest: list[Nearest]  # the model's concepts nearest the prompt, best first
    warning: str | None = None  # set when the prompt is far from everything the model knows
    layouts: list[list[dict]] | None = None  # a layout-reading model's plan per picture: objects and boxes

    def metadata(self, pixels: np.ndarray, index: int | None = None) -> dict[str, str]:
        """PNG text chunks for PIXELS (one picture, or a grid of them): prompt, seed, model, and the
        SHA-256 of those pixels as drawn (`pixels_match` checks a file against it)."""
        record = {"prompt": self.prompt, "seed": str(self.seed), "steps": str(self.steps),
                  "guidance": f"{self.guidance:g}", "model": self.model, "pixels-sha256": pixels_digest(pixels),
                  "software": "sensorium"}
        if index is not None:
            record["index"] = str(index)
            if self.layouts is not None:
                record["layout"] = json.dumps(self.layouts[index])  # where the plan put each object
        return record

    def grid(self, columns: int = 0) -> np.ndarray:
        """All pictures in one, `columns` to a row (0: up to 8)."""
        return tile(self.images, columns or min(8, len(self.images)))

    def as_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "seed": self.seed, "steps": self.steps, "guidance": self.guidance,
                "model": self.model, "count": int(len(self.images)), "warning": self.warning,
                "nearest": [asdict(n) for n in self.nearest], "layouts": self.layouts}


class Imaginer:
    """A trained text-to-image model with its prompt reader: `imagine(prompt, ...)` -> Imagined."""

    def __init__(self, model: TextToImage, model_id: str, text_encoder=None, folder: Path | None = None):
        self.model = model.eval()
        self.model_id = model_id
        self._text = text_encoder
        self.folder = folder  # where its weights were read from (None: built in memory)

    def info(self) -> list[ModelInfo]:
        """The models a drawing uses, as `sensorium models` lists them (name, SHA-256 of the weights, ...):
        this text-to-image model, then the sentence encoder that reads the prompt. What a signed
        picture's provenance names."""
        if self.folder is None:
            raise ModelError("this text-to-image model was not loaded from a folder: it has no weights file to name")
        weights = self.folder / WEIGHTS_FILE
        shipped = self.folder.parent == SHIPPED_DIR.resolve()
        own = ModelInfo(name=f"sensorium-{self.folder.name}" if shipped else self.folder.name,
                        task="text to image", package="sensorium" if shipped else f"local:{self.folder}",
                        version=package_version("sensorium") if shipped else "-", file=str(weights),
                        sha256=sha256_of(weights), licence="Apache-2.0" if shipped else "-",
                        size_bytes=weights.stat().st_size)
        if self._text is None:
            self._text = stock_text_encoder()
        return [own, self._text.info()]

    @property
    def config(self) -> ImagineConfig:
        return self.model.config

    def embed(self, prompts: list[str]) -> Tensor:
        """Each prompt's condition as the model reads it (`diffusion.condition_width`)."""
        if self._text is None:
            self._text = stock_text_encoder()
        return prompt_conditions(self._text, prompts, self.config.tokens)

    def nearest(self, embedding: Tensor, top: int = 3) -> list[Nearest]:
        """The model's concepts by their best cosine to the prompt over that concept's training prompts."""
        config = self.config
        if not config.concepts or not len(self.model.known_prompts):
            return []
        sentence = embedding[0] if embedding.dim() == 2 else embedding
        similarity = (self.model.known_prompts.float() @ sentence.float()).numpy()
        best = np.full(len(config.concepts), -1.0)
        for value, concept in zip(similarity, config.prompt_concepts):
            best[concept] = max(best[concept], float(value))
        order = np.argsort(-best)[:top]
        return [Nearest(config.concepts[i], round(float(best[i]), 3)) for i in order]

    def imagine(self, prompt: str, n: int = 8, steps: int = 50, guidance: float = 3.0, seed: int = 0) -> Imagined:
        """N pictures of PROMPT; the same (prompt, n, steps, guidance, seed, model) draws the same pixels."""
        prompt = check_prompt(prompt)
        if not 1 <= n <= MAX_IMAGES:
            raise ValueError(f"n: between 1 and {MAX_IMAGES}, got {n}")
        if not 1 <= steps <= MAX_STEPS:
            raise ValueError(f"steps: between 1 and {MAX_STEPS}, got {steps}")
        if not 0 <= guidance <= MAX_GUIDANCE:
            raise ValueError(f"guidance: between 0 and {MAX_GUIDANCE:g}, got {guidance:g}")
        embedding = self.embed([prompt])[0]
        nearest = self.nearest(embedding)
        warning = None
        if nearest and nearest[0].similarity < self.config.known_similarity:
            names = ", ".join(f"{n.concept!r} ({n.similarity:.2f})" for n in nearest)
            warning = (f"{prompt!r} is far from anything this model was trained to draw (nearest: {names}); "
                       f"it knows: {', '.join(self.config.concepts)}")
        layouts, plans = self.plan([prompt] * n, int(seed))
        if plans is not None and not any(plans):
            unplanned = (f"no layout could be planned from {prompt!r} (no colour or shape read); drawn from its words "
                         "alone, which a layout-reading model does poorly (name a colour and a shape)")
            warning = f"{warning}; {unplanned}" if warning else unplanned
        generator = torch.Generator().manual_seed(int(seed))
        drawn = sample(self.model, embedding.expand(n, *embedding.shape).contiguous(), steps, guidance, generator,
                       layouts)
        return Imagined(to_pixels(drawn, self.config.image_size), prompt, int(seed), steps, float(guidance),
                        self.model_id, nearest, warning, plans)

    def plan(self, prompts: list[str], seed: int) -> tuple[Tensor | None, list[list[dict]] | None]:
        """For a layout-reading model, (layout maps, each picture's planned objects as dicts: colour,
        shape, size, material, box x0 y0 x1 y1 in pixels); (None, None) for other models. Picture i of
        PROMPTS gets plan i of SEED (`world.layout.planned_maps`)."""
        maps, scenes = planned_layouts(self.config, prompts, seed)
        if maps is None:
            return None, None
        plans = [[] if scene is None else
                 [{"colour": o.colour, "shape": o.shape, "size": o.size, "material": o.material,
                   "box": [round(float(v), 1) for v in o.box]} for o in scene.objects] for scene in scenes]
        return maps, plans


@lru_cache(maxsize=1)
def stock_text_encoder():
    """The packaged MiniLM the models were trained with, loaded once per process (the service builds an
    Imaginer per request; a collection's own text model may differ, so it is not used)."""
    from ..experts.text import TextEncoder

    return TextEncoder()


def check_prompt(prompt: str) -> str:
    prompt = " ".join(str(prompt).split())
    if not prompt:
        raise ValueError("prompt: empty; say what to draw")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"prompt: at most {MAX_PROMPT_CHARS} characters, got {len(prompt)}")
    return prompt


def png_bytes(pixels: np.ndarray, metadata: dict[str, str], scale: int = 1) -> bytes:
    """A PNG of PIXELS (H, W[, 3]) uint8 with METADATA as text chunks; SCALE enlarges by whole pixels
    (nearest neighbour, so the checksum of the drawn pixels still describes what is shown)."""
    import io

    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    image = Image.fromarray(np.ascontiguousarray(pixels))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    info = PngInfo()
    for key, value in {**metadata, "scale": str(max(1, scale))}.items():
        info.add_itxt(key, value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def write_png(path: str | Path, pixels: np.ndarray, metadata: dict[str, str], scale: int = 1) -> Path:
    """png_bytes written beside PATH and renamed into place, so a stopped run leaves no half file."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(png_bytes(pixels, metadata, scale))
    temporary.replace(path)
    return path


def pixels_digest(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()).hexdigest()


def pixels_match(path: str | Path) -> bool:
    """Whether a PNG's pixels (taken back to the drawn size when it was enlarged) still hash to the
    pixels-sha256 it carries: False for an edited picture or one without the chunk."""
    from PIL import Image

    with Image.open(path) as image:
        expected = getattr(image, "text", {}).get("pixels-sha256")
        scale = int(getattr(image, "text", {}).get("scale", "1"))
        pixels = np.asarray(image)
    return expected is not None and pixels_digest(pixels[::scale, ::scale]) == expected


def read_png_metadata(path: str | Path) -> dict[str, str]:
    """The text chunks of a PNG (what `write_png` stored: prompt, seed, model, pixels-sha256 ...)."""
    from PIL import Image

    with Image.open(path) as image:
        return {str(k): str(v) for k, v in getattr(image, "text", {}).items()}


def model_folder(model: str | Path) -> Path:
    """A shipped model's name ("mnist") or a folder holding imagine.json (a run folder's model/ too)."""
    if isinstance(model, str) and model in SHIPPED:
        return SHIPPED[model]
    folder = Path(model)
    for candidate in (folder, folder / "model"):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    if not folder.exists():
        raise ModelError(f"{model}: neither a shipped model ({', '.join(SHIPPED)}) nor a folder; train one with "
                         "`sensorium train examples/imagine_fashion.toml --out RUN` and pass --model RUN")
    raise ModelError(f"{folder}: no {CONFIG_FILE} here; pass the folder `sensorium train` wrote for a text-to-image "
                     "config")


def load_imaginer(model: str | Path = "mnist", text_encoder=None) -> Imaginer:
    """The model a name or folder names, ready to draw (loaded once per process and file version)."""
    folder = model_folder(model).resolve()
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelError(f"{weights}: missing; the model folder is incomplete")
    loaded, digest = load_model(str(folder), weights.stat().st_mtime)
    return Imaginer(loaded, digest, text_encoder, folder)


def imagine(prompt: str, model: str | Path = "mnist", n: int = 8, steps: int = 50, guidance: float = 3.0,
            seed: int = 0) -> Imagined:
    """`sensorium.imagine(...)`: N pictures of PROMPT from a shipped model or a trained folder."""
    return load_imaginer(model).imagine(prompt, n=n, steps=steps, guidance=guidance, seed=seed)
