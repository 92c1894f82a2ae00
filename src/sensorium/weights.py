"""A model's weights on disk: safetensors for the tensors, JSON for the config that rebuilds it.

One pair of functions, and a mixin over them, so that every small model Sensorium trains (the world's
captioner, detector, object reader and question parser; the grid-world agent's policy) reads and writes
the same way, checks what it reads, and never unpickles anything.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor, nn

from .errors import ReadError

INT8_SCALE = ".int8_scale"  # suffix of the per-output-channel scale stored beside an int8 tensor
PRECISIONS = ("float32", "float16", "int8")


def save_model(model: nn.Module, folder: str | Path, stem: str, record: dict) -> Path:
    """FOLDER/STEM.safetensors (the state dict) and FOLDER/STEM.json (`record`, which names the format)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(folder / f"{stem}.safetensors"))
    (folder / f"{stem}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return folder


def pack(tensors: dict[str, Tensor], precision: str, smallest: int = 1024) -> dict[str, Tensor]:
    """The state dict as it is stored at PRECISION: float32 as it is; float16 halves the file; int8
    quarters it for weight matrices and convolution kernels of at least SMALLEST numbers (symmetric,
    one float32 scale per output channel under NAME + INT8_SCALE), the rest in float16. Shipped
    models use int8 so the package stays small; `unpack` turns any of them back into float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    packed = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().cpu()
        if not tensor.is_floating_point() or precision == "float32":
            packed[name] = tensor.contiguous()
        elif precision == "int8" and tensor.dim() >= 2 and tensor.numel() >= smallest:
            rows = tensor.float().reshape(tensor.shape[0], -1)
            scale = rows.abs().amax(dim=1).clamp_min(1e-12) / 127.0
            packed[name] = (rows / scale[:, None]).round().clamp(-127, 127).to(torch.int8).reshape(tensor.shape)
            packed[name + INT8_SCALE] = scale.contiguous()
        else:
            packed[name] = tensor.to(torch.float16).contiguous()
    return packed


def unpack(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """`pack`'s output (any precision) back to a float32 state dict."""
    state = {}
    for name, tensor in tensors.items():
        if name.endswith(INT8_SCALE):
            continue
        scale = tensors.get(name + INT8_SCALE)
        if scale is not None:
            shape = (-1,) + (1,) * (tensor.dim() - 1)
            state[name] = tensor.float() * scale.float().reshape(shape)
        else:
            state[name] = tensor.float() if tensor.is_floating_point() else tensor
    return state


def read_record(folder: str | Path, stem: str, expected_format: str, hint: str) -> dict:
    """FOLDER/STEM.json, checked to be a `expected_format` record; the format key removed.
    `hint` says how to make one (shown when the file is missing)."""
    path = Path(folder) / f"{stem}.json"
    if not path.is_file():
        raise ReadError(folder, f"no {path.name}: {hint}")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReadError(path, f"not valid JSON ({exc})") from exc
    if not isinstance(record, dict) or record.pop("format", None) != expected_format:
        raise ReadError(path, f"not a {expected_format} config")
    return record


def load_weights(model: nn.Module, folder: str | Path, stem: str) -> nn.Module:
    """Fill `model` from FOLDER/STEM.safetensors; ReadError when the file is damaged or does not fit."""
    from safetensors.torch import load_file

    path = Path(folder) / f"{stem}.safetensors"
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own types for a missing or damaged file
        raise ReadError(path, f"not a valid safetensors file ({exc})") from exc
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise ReadError(path, f"weights do not fit the config (missing {len(missing)}, unexpected {len(unexpected)})")
    return model.eval()


class SavedModel:
    """Mixin for a model with a dataclass `config`: `save(folder)` and `load(folder)` as
    STEM.safetensors + STEM.json. A subclass names `stem`, `file_format`, `hint` (how to make one,
    shown when none is there) and turns the stored record back into its config (`config_from`: JSON
    lists back to tuples)."""

    stem: str
    file_format: str
    hint: str

    @classmethod
    def config_from(cls, record: dict):
        raise NotImplementedError

    def save(self, folder: str | Path) -> Path:
        return save_model(self, folder, self.stem, {"format": self.file_format, **asdict(self.config)})

    @classmethod
    def load(cls, folder: str | Path):
        record = read_record(folder, cls.stem, cls.file_format, cls.hint)
        return load_weights(cls(cls.config_from(record)), folder, cls.stem)
