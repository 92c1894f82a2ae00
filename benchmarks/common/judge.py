"""The judge of generated digits and garments: a small CNN trained on the real training pictures.

It is ours and never seen by the generator. Three uses: its prediction says whether a generated
picture shows the prompted class (prompt adherence); its 128-d penultimate features are what FID
and diversity are measured on (Inception's weights would download at run time); the same network
trained on generated pictures only and tested on real ones gives the classification accuracy
score (CAS, Ravuri & Vinyals 2019).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F


class Judge(nn.Module):
    num_features = 128  # torchmetrics' FID reads the feature width from here

    def __init__(self, classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(128, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(128, classes))

    def features(self, pixels: Tensor) -> Tensor:
        """uint8 (N, 1, 28, 28) or (N, 28, 28) -> (N, 128)."""
        if pixels.dim() == 3:
            pixels = pixels[:, None]
        return self.body(pixels.float() / 127.5 - 1.0)

    def forward(self, pixels: Tensor) -> Tensor:  # FID calls the module: features, not logits
        return self.features(pixels)

    def logits(self, pixels: Tensor) -> Tensor:
        return self.head(self.features(pixels))


def fit(model: nn.Module, count: int, loss_of, epochs: int, seed: int, batch: int = 128, label: str = "judge",
        lr: float = 2e-3) -> nn.Module:
    """AdamW with one-cycle over EPOCHS shuffled passes of COUNT rows; `loss_of(rows, rng)` gives a batch's loss.
    (The caller seeds torch before building MODEL.)"""
    from rich.progress import Progress

    rng = np.random.default_rng(seed)
    steps = epochs * -(-count // batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps)
    model.train()
    with Progress(transient=True) as bar:
        task = bar.add_task(f"training the {label}", total=steps)
        for _ in range(epochs):
            order = torch.from_numpy(rng.permutation(count))
            for start in range(0, count, batch):
                loss = loss_of(order[start:start + batch], rng)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                bar.advance(task)
    return model.eval()


def train_judge(images: np.ndarray, labels: np.ndarray, epochs: int = 3, seed: int = 0, batch: int = 128,
                progress: str = "judge") -> Judge:
    """A judge trained on (images uint8 (N, 28, 28), labels); shifts of up to 2 px keep it from
    reading position as class."""
    torch.manual_seed(seed)
    model = Judge(int(labels.max()) + 1)
    x_all, y_all = torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))

    def loss_of(rows, rng):
        dy, dx = (int(v) for v in rng.integers(-2, 3, 2))
        return F.cross_entropy(model.logits(torch.roll(x_all[rows], (dy, dx), (1, 2))), y_all[rows])

    return fit(model, len(images), loss_of, epochs, seed, batch, progress)


@torch.inference_mode()
def predict(model: Judge, images: np.ndarray, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(predicted classes, features (N, 128))."""
    classes, features = [], []
    for start in range(0, len(images), batch):
        found = model.features(torch.from_numpy(images[start:start + batch]))
        features.append(found.numpy())
        classes.append(model.head(found).argmax(1).numpy())
    return np.concatenate(classes), np.concatenate(features)


def cached_judge(images: np.ndarray, labels: np.ndarray, cache: Path, epochs: int = 3, seed: int = 0) -> Judge:
    """The judge for these pictures, trained once and kept in CACHE under a digest of the data."""
    from safetensors.torch import load_file, save_file

    digest = hashlib.sha256(images.tobytes() + labels.astype(np.int64).tobytes()).hexdigest()[:16]
    path = cache / f"judge-{digest}-e{epochs}-s{seed}.safetensors"
    if path.is_file():
        model = Judge(int(labels.max()) + 1)
        model.load_state_dict(load_file(str(path)))
        return model.eval()
    model = train_judge(images, labels, epochs, seed)
    cache.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model
