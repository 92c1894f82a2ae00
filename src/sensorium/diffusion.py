"""The text-to-image network: a small UNet denoiser conditioned on a sentence embedding, its noise
schedules and sampler, and its files (safetensors + JSON config).

Model parts only, below both the training code that fits them (`training.imagining`) and the
generation layer that draws with them (`generation.imagine`), so neither imports the other.

The prompt enters by FiLM: its MiniLM embedding is projected and added to the timestep
embedding, which scales and shifts every residual block of diffusers' `UNet2DModel`. A learned
null embedding stands in for "no prompt", so one network predicts both with and without the
prompt and sampling mixes them (classifier-free guidance, Ho & Salimans 2022):

    prediction = with_prompt + w * (with_prompt - without_prompt)

w = 0 follows the prompt alone (one pass per step); larger w follows it harder at some cost in
variety. DDIM (diffusers' `DDIMScheduler`) samples in 10-50 steps.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .errors import ConfigError, ReadError
from .progress import check_cancelled
from .weights import pack, unpack
from .world.layout import LAYOUT_CHANNELS

CONFIG_FILE, WEIGHTS_FILE = "imagine.json", "imagine.safetensors"
TEXT_DIM = 384  # the MiniLM sentence embedding


@dataclass
class ImagineConfig:
    """Everything that rebuilds a model besides its weights; saved as imagine.json beside them."""

    size: int = 32  # the UNet's side (MNIST's 28 px padded to 32: three halvings need a multiple of 8)
    image_size: int = 28  # what is drawn: the centre crop of `size`
    channels: int = 1
    widths: list[int] = field(default_factory=lambda: [32, 64, 64])
    attention: bool = True  # self-attention at the coarsest level
    tokens: int = 0  # > 0: the UNet also reads the prompt's first TOKENS token states by cross-attention
    patch: int = 1  # side of the pixel squares folded into channels before the UNet (2: a 64 px RGB picture
    # runs as 32 px of 12 channels, a quarter of the positions to convolve; Hoogeboom et al. 2023 fold likewise)
    layout: bool = False  # the UNet also reads a planned layout (`world.layout.layout_map`) beside the noisy picture
    timesteps: int = 1000
    schedule: str = "squaredcos_cap_v2"  # the cosine schedule (Nichol & Dhariwal 2021)
    prediction: str = "v_prediction"  # v (Salimans & Ho 2022) keeps few-step sampling sharp
    concepts: list[str] = field(default_factory=list)  # the classes it was trained on, in words
    prompts: list[str] = field(default_factory=list)  # every training prompt ...
    prompt_concepts: list[int] = field(default_factory=list)  # ... and the concept of each
    known_similarity: float = 0.5  # a prompt whose best cosine to a training prompt is below this is warned of
    trained: dict[str, Any] = field(default_factory=dict)  # data, epochs, seed, figures: the record of its run

    def check(self) -> None:
        if self.tokens and not 4 <= self.tokens <= 128:
            raise ConfigError(f"tokens: 0 (the sentence vector only) or 4-128, got {self.tokens}")
        if self.patch not in (1, 2, 4):
            raise ConfigError(f"patch: 1, 2 or 4, got {self.patch}")
        if self.size % (8 * self.patch) or self.size < 8:
            raise ConfigError(f"size: a multiple of {8 * self.patch} (three halvings after folding "
                              f"{self.patch} x {self.patch} squares), got {self.size}")
        if not 0 < self.image_size <= self.size:
            raise ConfigError(f"image_size: between 1 and size ({self.size}), got {self.image_size}")
        if self.channels not in (1, 3):
            raise ConfigError(f"channels: 1 (grey) or 3 (RGB), got {self.channels}")
        if len(self.widths) != 3 or any(w <= 0 or w % 8 for w in self.widths):
            raise ConfigError(f"widths: three positive multiples of 8, got {self.widths}")
        if self.prediction not in ("epsilon", "v_prediction"):
            raise ConfigError(f"prediction: epsilon or v_prediction, got {self.prediction!r}")
        if len(self.prompts) != len(self.prompt_concepts):
            raise ConfigError("prompts and prompt_concepts: one concept per prompt")

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> ImagineConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ReadError(where, f"unknown keys {unknown} (a model from a newer Sensorium?)")
        config = cls(**raw)
        try:
            config.check()
        except ConfigError as error:
            raise ReadError(where, str(error)) from None
        return config


def condition_width(config: ImagineConfig) -> tuple[int, ...]:
    """The shape of one prompt's condition: (384,) the sentence vector, or with `tokens` (1 + tokens, 384):
    the sentence vector, then the token states, zero rows after the prompt's end."""
    return (1 + config.tokens, TEXT_DIM) if config.tokens else (TEXT_DIM,)


def prompt_conditions(encoder, prompts: list[str], tokens: int = 0) -> Tensor:
    """PROMPTS as a model of `tokens` reads them: ENCODER's sentence vectors (N, 384), or with tokens
    (N, 1 + tokens, 384) the vectors followed by the token states (`TextEncoder.encode_with_tokens`,
    one pass of the text model for both)."""
    if not tokens:
        return torch.from_numpy(np.asarray(encoder.encode(list(prompts)), dtype=np.float32))
    sentence, states = encoder.encode_with_tokens(list(prompts), tokens)
    return torch.cat([torch.from_numpy(np.asarray(sentence, np.float32))[:, None],
                      torch.from_numpy(np.asarray(states, np.float32))], 1)


class TextToImage(nn.Module):
    """The denoiser: forward(noisy, timesteps, prompt conditions, keep) -> the prediction (v or noise).

    The sentence vector scales and shifts every residual block (FiLM). A sentence vector barely tells
    "a red cube left of a blue ball" from "a blue ball left of a red cube" (cosine 0.986), so with
    `tokens` the UNet's coarsest level and its middle also read the token states by cross-attention,
    where which words go with which stay apart. (Widths [64, 96, 128], 64 px folded: 92.6 samples/s
    without, 72.3 with cross-attention there, 48.1 with it at the middle level too;
    `benchmarks/speed/imagine_training.py`.)

    With `layout` the UNet also reads a planned layout beside the noisy picture (each asked object's
    colour and shape painted over its box: `world.layout`), so where things stand is decided by a
    plan, not left to the words; a layout of zeros means none.

    `keep` (B,) bool: False rows see the learned null embedding (and a learned null token) instead
    of their prompt, and no layout (`keep_layout` drops the layout alone). The training prompts' sentence vectors ride along as a buffer, so the warning
    for unknown prompts needs nothing but the weights file.
    """

    def __init__(self, config: ImagineConfig):
        super().__init__()
        from diffusers import UNet2DModel

        config.check()
        self.config = config
        coarse = "Attn" if config.attention else ""
        embedding = config.widths[0] * 4  # diffusers' timestep embedding width
        folded = config.channels * config.patch ** 2
        reads = (config.channels + (LAYOUT_CHANNELS if config.layout else 0)) * config.patch ** 2
        common = dict(sample_size=config.size // config.patch, in_channels=reads, out_channels=folded,
                      block_out_channels=tuple(config.widths), layers_per_block=1, norm_num_groups=8,
                      class_embed_type="identity", resnet_time_scale_shift="scale_shift")
        if config.tokens:
            from diffusers import UNet2DConditionModel

            self.unet = UNet2DConditionModel(
                **common, cross_attention_dim=TEXT_DIM, attention_head_dim=[w // 32 for w in config.widths],
                down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
                mid_block_type="UNetMidBlock2DCrossAttn",
                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"))
            self.null_token = nn.Parameter(torch.zeros(TEXT_DIM))
        else:
            self.unet = UNet2DModel(
                **common, attention_head_dim=32, down_block_types=("DownBlock2D", "DownBlock2D", f"{coarse}DownBlock2D"),
                up_block_types=(f"{coarse}UpBlock2D", "UpBlock2D", "UpBlock2D"))
        self.condition = nn.Sequential(nn.Linear(TEXT_DIM, embedding), nn.SiLU(), nn.Linear(embedding, embedding))
        self.null = nn.Parameter(torch.zeros(TEXT_DIM))
        self.register_buffer("known_prompts", torch.zeros(len(config.prompts), TEXT_DIM))

    def forward(self, noisy: Tensor, timesteps: Tensor, prompts: Tensor, keep: Tensor | None = None,
                layouts: Tensor | None = None, keep_layout: Tensor | None = None) -> Tensor:
        if self.config.layout:
            noisy = torch.cat([noisy, self.layout_input(noisy, layouts, keep if keep_layout is None else keep_layout)], 1)
        if self.config.patch > 1:
            noisy = nn.functional.pixel_unshuffle(noisy, self.config.patch)
        if self.config.tokens:
            if prompts.shape[1:] != condition_width(self.config):
                raise ValueError(f"prompts: conditions of shape {condition_width(self.config)}, got "
                                 f"{tuple(prompts.shape[1:])}")
            sentence, tokens = prompts[:, 0], prompts[:, 1:]
            if keep is not None:
                sentence = torch.where(keep[:, None], sentence, self.null.to(sentence.dtype).expand_as(sentence))
                alone = torch.zeros_like(tokens)
                alone[:, 0] = self.null_token.to(tokens.dtype)
                tokens = torch.where(keep[:, None, None], tokens, alone)
            mask = tokens.abs().sum(-1) > 0
            out = self.unet(noisy, timesteps, tokens, class_labels=self.condition(sentence),
                            encoder_attention_mask=mask).sample
        else:
            if keep is not None:
                prompts = torch.where(keep[:, None], prompts, self.null.to(prompts.dtype).expand_as(prompts))
            out = self.unet(noisy, timesteps, class_labels=self.condition(prompts)).sample
        return nn.functional.pixel_shuffle(out, self.config.patch) if self.config.patch > 1 else out


    def layout_input(self, noisy: Tensor, layouts: Tensor | None, keep: Tensor | None) -> Tensor:
        """The layout channels a layout-reading model sees: LAYOUTS (B, LAYOUT_CHANNELS, S, S), all zeros
        ("no layout") where absent or where KEEP is False (dropped with the prompt for guidance)."""
        shape = (noisy.shape[0], LAYOUT_CHANNELS, *noisy.shape[2:])
        if layouts is None:
            return noisy.new_zeros(shape)
        if tuple(layouts.shape) != shape:
            raise ValueError(f"layouts: shape {shape}, got {tuple(layouts.shape)}")
        layouts = layouts.to(noisy.dtype)
        return layouts if keep is None else layouts * keep[:, None, None, None].to(noisy.dtype)


def planned_layouts(config: ImagineConfig, prompts: list[str], seed: int) -> tuple[Tensor | None, list | None]:
    """For a layout-reading model, (the layout maps, the planned scenes: None where none could be planned),
    one per prompt (`world.layout.planned_maps`: the asked objects placed by the world's rules so that the
    asked relation holds, sizes among those the model was trained with); (None, None) for other models."""
    if not config.layout:
        return None, None
    from .world.layout import planned_maps

    sizes = tuple(config.trained.get("object_sizes", ("large",)))
    maps, scenes = planned_maps(list(prompts), config.size, seed, sizes)
    return torch.from_numpy(maps), scenes


def schedulers(config: ImagineConfig):
    """(DDPM scheduler for training, DDIM scheduler for sampling), both from diffusers."""
    from diffusers import DDIMScheduler, DDPMScheduler

    common = {"num_train_timesteps": config.timesteps, "beta_schedule": config.schedule,
              "prediction_type": config.prediction}
    # "trailing" spacing starts sampling at the last timestep (pure noise) even with 10 steps. No
    # clipping of the predicted clean picture: DDIM clips it without recomputing the noise it implies,
    # and with a v target and guidance that mismatch drew the wrong digit (adherence 0.0 at w = 3,
    # 50 steps, against 1.0 unclipped; docs/experiments/2026-12-05-text-to-image.md).
    return (DDPMScheduler(**common, clip_sample=False),
            DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing"))


@torch.inference_mode()
def sample(model: TextToImage, prompts: Tensor, steps: int = 50, guidance: float = 3.0,
           generator: torch.Generator | None = None, layouts: Tensor | None = None) -> Tensor:
    """Draw one picture per prompt embedding row: (n, C, size, size) in [-1, 1]. A layout-reading model
    takes LAYOUTS (n, LAYOUT_CHANNELS, size, size), a row of zeros where there is none."""
    if steps < 1:
        raise ValueError(f"steps: at least 1, got {steps}")
    model.eval()
    config = model.config
    _, scheduler = schedulers(config)
    scheduler.set_timesteps(steps)
    n = prompts.shape[0]
    x = torch.randn((n, config.channels, config.size, config.size), generator=generator)
    guided = guidance != 0
    both = torch.cat([prompts, prompts]) if guided else prompts
    keep = torch.cat([torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)]) if guided else None
    plans = None if layouts is None else (torch.cat([layouts, layouts]) if guided else layouts)
    for t in scheduler.timesteps:
        check_cancelled()  # a service request whose client left stops here
        batch = torch.cat([x, x]) if guided else x
        out = model(batch, t.expand(batch.shape[0]), both, keep, plans)
        if guided:
            with_prompt, without = out.chunk(2)
            out = with_prompt + guidance * (with_prompt - without)
        x = scheduler.step(out, t, x, generator=generator).prev_sample
    return x.clamp(-1, 1)


def to_pixels(x: Tensor, image_size: int) -> np.ndarray:
    """[-1, 1] (n, C, S, S) -> uint8 (n, image_size, image_size[, 3]), the centre crop."""
    side = x.shape[-1]
    top = (side - image_size) // 2
    x = x[..., top:top + image_size, top:top + image_size]
    pixels = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    return pixels[:, 0] if pixels.shape[1] == 1 else pixels.transpose(0, 2, 3, 1)


def tile(pixels: np.ndarray, columns: int, gap: int = 2) -> np.ndarray:
    """Pictures (n, H, W[, 3]) laid out in rows of `columns`, `gap` black pixels apart."""
    n, h, w = pixels.shape[:3]
    rows = -(-n // columns)
    grid = np.zeros((rows * (h + gap) - gap, columns * (w + gap) - gap, *pixels.shape[3:]), dtype=np.uint8)
    for i, picture in enumerate(pixels):
        r, c = divmod(i, columns)
        grid[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = picture
    return grid


def save_model(model: TextToImage, folder: str | Path, precision: str = "float32") -> Path:
    """imagine.json + imagine.safetensors into FOLDER, stored at PRECISION (`weights.pack`: int8
    quarters the file for shipping)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = pack(model.state_dict(), precision)
    temporary = folder / (WEIGHTS_FILE + ".tmp")
    save_file(tensors, str(temporary), metadata={"format": "sensorium-imagine"})
    temporary.replace(folder / WEIGHTS_FILE)
    (folder / CONFIG_FILE).write_text(json.dumps(asdict(model.config), indent=1), encoding="utf-8")
    return folder


@lru_cache(maxsize=4)
def load_model(folder: str, stamp: float) -> tuple[TextToImage, str]:
    """(the model in FOLDER, its id: 16 hex digits of its weights' SHA-256); cached per folder and
    modification time, so a process loads a model once and sees a retrained one."""
    from safetensors.torch import load_file

    folder_path = Path(folder)
    config_path, weights_path = folder_path / CONFIG_FILE, folder_path / WEIGHTS_FILE
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ReadError(config_path, f"unreadable model config ({error})") from None
    if not isinstance(raw, dict):
        raise ReadError(config_path, "not a JSON object")
    config = ImagineConfig.from_dict(raw, str(config_path))
    model = TextToImage(config)
    try:
        tensors = load_file(str(weights_path))
    except Exception as error:  # noqa: BLE001 - safetensors raises its own types for bad headers
        raise ReadError(weights_path, f"not a valid safetensors file ({error})") from None
    tensors = unpack(tensors)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    if set(tensors) != set(shapes) or any(tensors[k].shape != shapes[k] for k in shapes):
        raise ReadError(weights_path, "weights do not fit the model its config describes")
    model.load_state_dict(tensors)
    digest = hashlib.sha256(weights_path.read_bytes()).hexdigest()[:16]
    return model.eval(), digest
