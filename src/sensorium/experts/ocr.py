"""OCR expert: RapidOCR (PaddleOCR PP-OCRv4 detection + recognition as ONNX), frozen.

The ONNX models ship inside the `rapidocr-onnxruntime` wheel, so reading text never touches the
network. It costs around a second per photo on a laptop CPU, which is why the image bridge only
calls it when the classifier sees a sign, a menu, a book cover ... (or when asked to always).

Interface:
    reader = OcrReader()
    reader.read(pixels)   # -> [OcrLine(text, score, box), ...] in reading order
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .base import ModelInfo, package_version, sha256_of


@dataclass(frozen=True)
class OcrLine:
    text: str
    score: float  # recognition confidence in [0, 1]
    box: tuple[int, int, int, int]  # x, y, w, h in pixels of the input image


class OcrReader:
    """Lazy RapidOCR wrapper with CPU-friendly settings.

    PP-OCR's default upsamples the *shorter* side to 736 px, which makes a 640x480 photo cost
    several seconds; capping the *longer* side at `max_side` keeps ordinary photo text legible
    at a fraction of the cost.
    """

    def __init__(self, max_side: int = 960, min_score: float = 0.6, threads: int | None = None):
        self.max_side = max_side
        self.min_score = min_score
        self.threads = threads  # None: up to 2, fewer when SENSORIUM_THREADS says so (a worker's share)
        self._engine = None

    def _load(self):
        from ..cpu import cpu_threads

        if self._engine is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as exc:
                raise ModelError("rapidocr-onnxruntime is not installed; pip install it") from exc
            self._engine = RapidOCR(
                det_limit_type="max", det_limit_side_len=self.max_side, text_score=self.min_score,
                intra_op_num_threads=self.threads or min(2, cpu_threads()), inter_op_num_threads=1,
            )
        return self._engine

    def read(self, pixels: np.ndarray) -> list[OcrLine]:
        if not isinstance(pixels, np.ndarray) or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"expected a uint8 (H, W, 3) RGB array, got {getattr(pixels, 'shape', None)}")
        engine = self._load()
        try:  # RapidOCR treats a raw array as OpenCV's BGR order.
            result, _ = engine(np.ascontiguousarray(pixels[:, :, ::-1]))
        except Exception:  # noqa: BLE001 - OCR only enriches an image; its failure must not fail the file
            return []
        lines = []
        for quad, text, score in result or []:
            points = np.asarray(quad, dtype=np.float32)
            x0, y0 = points.min(axis=0)
            x1, y1 = points.max(axis=0)
            text = str(text).strip()
            if text and float(score) >= self.min_score:
                lines.append(OcrLine(text, float(score), (int(x0), int(y0), int(x1 - x0), int(y1 - y0))))
        lines.sort(key=lambda line: (line.box[1] // max(1, line.box[3]), line.box[0]))
        return lines

    def info(self) -> ModelInfo:
        import rapidocr_onnxruntime

        path = Path(rapidocr_onnxruntime.__file__).parent / "models" / "ch_PP-OCRv4_rec_infer.onnx"
        return ModelInfo(
            name="PP-OCRv4 (RapidOCR)", task="text detection + recognition",
            package="rapidocr-onnxruntime", version=package_version("rapidocr-onnxruntime"),
            file=str(path), sha256=sha256_of(path), licence="Apache-2.0", size_bytes=path.stat().st_size,
        )
