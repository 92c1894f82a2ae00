"""int8 static quantisation of the image expert's ONNX graph, calibrated on real photos.

Why: EfficientNet-Lite0 was designed to be quantised (ReLU6, no squeeze-excite), and onnxruntime's
int8 kernels (u8 activations, s8 per-channel weights) run it at 1.96-2.01x fp32's views/s on CPUs with
VNNI (BENCHMARKS.md, "Image expert precision"). Static quantisation needs the range of every
activation, measured by running the fp32 graph on calibration images. Ours are the real photographs
that ship inside scikit-image (an installed dependency: a portrait, a cat, a coffee cup, a rocket,
microscopy, textures, documents), seen as the expert sees photos (the whole image and its four
quadrants), so nothing is downloaded and no user photo is needed. They are not the photos the
accuracy is judged on (COCO-mini).

The recipe (QDQ graph, per-channel weights, min-max ranges, u8/s8) won a small comparison: percentile
and entropy ranges gave the same agreement; symmetric activations were 2.7-3.6x slower; u8 weights
were 13x slower; 7-bit weights (`reduce_range`) cost 13 points of top-1 agreement.
"""
from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ModelError

# skimage.data images stored inside the scikit-image wheel (no fetch): photographs, microscopy,
# textures and pages, so that the ranges cover what a personal archive holds.
CALIBRATION_IMAGES = (
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina", "immunohistochemistry",
    "camera", "moon", "coins", "grass", "gravel", "brick", "page", "text", "cell", "colorwheel",
)
MIN_CALIBRATION_IMAGES = 8
RECIPE = "qdq-perchannel-minmax-u8s8-v1"  # part of the cache key: a new recipe builds a new file


def calibration_photos() -> list[np.ndarray]:
    """The bundled scikit-image photographs as uint8 RGB arrays (grey ones made RGB)."""
    import skimage.data

    photos = []
    for name in CALIBRATION_IMAGES:
        try:
            pixels = np.asarray(getattr(skimage.data, name)())
        except Exception:  # an image a future scikit-image fetches instead of bundling
            continue
        if pixels.dtype != np.uint8:
            pixels = (np.clip(pixels, 0, 1) * 255).astype(np.uint8) if pixels.max() <= 1 else pixels.astype(np.uint8)
        if pixels.ndim == 2:
            pixels = np.stack([pixels] * 3, axis=-1)
        photos.append(np.ascontiguousarray(pixels[..., :3]))
    if len(photos) < MIN_CALIBRATION_IMAGES:
        raise ModelError(f"int8 image expert: only {len(photos)} of scikit-image's bundled photos could be read "
                         f"(need {MIN_CALIBRATION_IMAGES} to calibrate); use the fp32 image expert")
    return photos


@contextlib.contextmanager
def _quiet_quantiser():
    """onnxruntime's quantiser logs through the root logger; keep its chatter out of our output."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_int8(fp32_model: Path, target: Path, inputs: list[np.ndarray]) -> None:
    """Write the int8 QDQ version of `fp32_model` to `target`, with activation ranges measured on
    `inputs` (NCHW float32 batches, as the expert feeds the graph)."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self):
            self._batches = iter(inputs)

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {"x": batch}

    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".quantize-") as scratch, _quiet_quantiser():
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32_model), str(prepared))
        quantize_static(str(prepared), str(target), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
