"""World pictures as model input: checked, resized to a model's size, as float tensors in [0, 1]."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def as_pixels(picture: np.ndarray, size: int, number: int = 0) -> np.ndarray:
    """(size, size, 3) uint8 from an (H, W, 3) uint8 array (resized when it is not that size);
    ValueError naming `images[number]` for anything else."""
    if not isinstance(picture, np.ndarray) or picture.ndim != 3 or picture.shape[2] != 3:
        raise ValueError(f"images[{number}]: expected an (H, W, 3) uint8 array, got "
                         f"{getattr(picture, 'shape', type(picture).__name__)}")
    if picture.shape[:2] != (size, size):
        from PIL import Image

        picture = np.asarray(Image.fromarray(np.asarray(picture, dtype=np.uint8)).resize((size, size), Image.BILINEAR))
    return np.asarray(picture, dtype=np.uint8)


def pictures_tensor(images: list[np.ndarray], size: int) -> Tensor:
    """(B, 3, size, size) float in [0, 1] from a list of (H, W, 3) uint8 pictures."""
    return torch.stack([torch.from_numpy(np.array(as_pixels(p, size, n))).permute(2, 0, 1).float() / 255.0
                        for n, p in enumerate(images)])
