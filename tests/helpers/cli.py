"""Running the `sensorium` command line as a user would (a new process, reading its output), and
small media folders whose right answers are known. Shared by the tests/test_cli_*.py files."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def run(*args: str, env_home: Path, columns: int | None = None) -> subprocess.CompletedProcess:
    """`python -m sensorium.cli ARGS` with SENSORIUM_HOME = env_home; `columns` fixes the width rich
    lays tables out for (otherwise whatever the terminal running the tests has)."""
    env = dict(os.environ, SENSORIUM_HOME=str(env_home))
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run([sys.executable, "-m", "sensorium.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def shared_home() -> Path:
    """The same models folder and caches as the rest of the suite (joined Whisper, ONNX export,
    class-name vectors): a new process finds them instead of rebuilding them."""
    from sensorium.paths import home as default_home

    return default_home()


def cat_photo() -> np.ndarray:
    from skimage import data

    return data.chelsea()


def another_view_of(pixels: np.ndarray) -> np.ndarray:
    """The same scene, not the same file: mirrored, cropped by a tenth on each side, and halved."""
    height, width = pixels.shape[:2]
    crop = pixels[height // 10: height - height // 10, width // 10: width - width // 10, :][:, ::-1]
    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((crop.shape[1] // 2, crop.shape[0] // 2)))


def make_media(root: Path) -> Path:
    """kitty.jpg (a cat), mug.png (a cup of coffee), rocket.png (a rocket on its pad), memo.wav (a
    spoken shopping reminder) and note.md (a hiking trip)."""
    from skimage import data

    from sensorium.experts.tts import save_wav, synthesize

    root.mkdir(parents=True, exist_ok=True)
    Image.fromarray(cat_photo()).save(root / "kitty.jpg")
    Image.fromarray(data.coffee()).save(root / "mug.png")
    Image.fromarray(data.rocket()).save(root / "rocket.png")
    save_wav(synthesize("Buy bread and apples at the market tomorrow."), root / "memo.wav")
    (root / "note.md").write_text("# Trip\nWe hiked to the glacier and camped by the lake.\n")
    return root


def write_still_video(path: Path, pixels: np.ndarray, seconds: float = 2.0, fps: int = 5) -> Path:
    """An H.264 video (no sound track) showing `pixels` throughout."""
    import av

    height, width = (pixels.shape[0] // 2) * 2, (pixels.shape[1] // 2) * 2
    frame_pixels = np.ascontiguousarray(pixels[:height, :width])
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for _ in range(int(seconds * fps)):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame_pixels, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def small_space(folder: Path, weight: float, seed: int = 0) -> Path:
    """A learned space as `sensorium align --out` writes it: image and text heads into 16-d,
    randomly initialised (seeded), weight w."""
    import torch

    from sensorium.align.heads import Space
    from sensorium.align.job import save_space

    torch.manual_seed(seed)
    space = Space.build({"image": 1280 + 384, "text": 384}, dim=16)
    save_space(folder, space, weight=weight)
    return folder
