"""Image bridge: photos -> vectors in the text space, plus the words that explain them.

It runs the frozen experts (EfficientNet-Lite0 classifier, person detector, OCR when the picture
seems to hold text) and hands their evidence to the LabelBridge, which does the vector
arithmetic. The resulting `shared` vector is compared with `embed_query(texts)` by a plain inner
product, so it can live in any ANN index; `native` keeps the CNN features for image->image search.

Interface:
    bridge = ImageBridge()
    [desc] = bridge.describe([pixels])       # ImageDescription(shared, native, labels, people, ocr_text, text)
    queries = bridge.embed_query(["a cat on a sofa"])
    scores = queries @ desc.shared
"""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field

import numpy as np

from ..experts.image import ImageExpert
from ..experts.ocr import OcrLine, OcrReader
from ..experts.person import Box, PersonDetector
from .label_bridge import BridgeConfig, LabelBridge, load_synonyms

# ImageNet classes that usually carry readable text: signs, screens, covers, shop fronts, labels.
TEXT_EVIDENCE_CLASSES = (
    919, 922, 921, 916, 917, 918, 781, 692, 478, 549, 446, 458, 637, 800, 886, 860, 454, 509, 788, 424,
    415, 498, 762, 737, 440, 907, 720, 920, 704, 530, 685, 664, 782, 851, 527, 620, 681, 865, 582,
)
OCR_MODES = ("auto", "always", "never")


@dataclass
class ImageEvidence:
    """Everything the experts said about one image; the bridge turns it into a vector."""

    view_probs: np.ndarray  # (views, 1000); row 0 = whole image
    native: np.ndarray  # (1280,) unit-length features of the whole image
    faces: list[Box] = field(default_factory=list)  # people boxes: HOG bodies and Haar faces
    clothing: float = 0.0  # probability mass on person-worn classes (jersey, suit, ...)
    ocr_lines: list[OcrLine] = field(default_factory=list)

    @property
    def person_confidence(self) -> float:
        """1 - P(no person): the detector's best box and the clothing evidence as independent cues."""
        face = max((box.score for box in self.faces), default=0.0)
        return 1.0 - (1.0 - face) * (1.0 - self.clothing)

    @property
    def people(self) -> int:
        if self.faces:
            return len(self.faces)
        return 1 if self.clothing >= 0.5 else 0

    @property
    def ocr_text(self) -> str:
        return " ".join(line.text for line in self.ocr_lines)


@dataclass
class ImageDescription:
    shared: np.ndarray  # (384,) unit-length vector in the text space
    native: np.ndarray  # (1280,) unit-length EfficientNet features
    labels: list[tuple[str, float]]  # top classes, clean names, probabilities
    people: int
    ocr_text: str
    text: str  # short description from the labels: "tabby cat, tiger cat, person" (the OCR is `ocr_text`)


class ImageBridge:
    def __init__(self, config: BridgeConfig | None = None, expert: ImageExpert | None = None,
                 encoder=None, detect_people: bool = True, ocr: str = "auto", ocr_threshold: float = 0.2,
                 clothing_scale: float = 2.0):
        if ocr not in OCR_MODES:
            raise ValueError(f"ocr must be one of {OCR_MODES}, not {ocr!r}")
        if encoder is None:
            from ..experts.text import TextEncoder

            encoder = TextEncoder()
        self.expert = expert or ImageExpert()
        self.config = config or DEFAULT_CONFIG
        self.labels = LabelBridge(encoder, self.expert.class_names, self.config)
        self.detector = PersonDetector() if detect_people else None
        self.ocr_mode = ocr
        self.ocr_threshold = ocr_threshold
        self.clothing_scale = clothing_scale
        self.reader = OcrReader() if ocr != "never" else None
        self._person_classes = np.asarray(load_synonyms()["person_evidence"], dtype=int)
        self._text_classes = np.asarray(TEXT_EVIDENCE_CLASSES, dtype=int)

    @property
    def encoder(self):
        return self.labels.encoder

    def observe(self, images: list[np.ndarray], layout: str | None = None) -> list[ImageEvidence]:
        """Run the experts once; `layout` overrides the config's crops (benchmarks reuse evidence)."""
        layout = layout or self.config.crops
        outputs = self.expert.run_crops(images, layout)
        evidence = []
        for pixels, out in zip(images, outputs):
            peak = out.probs.max(axis=0)  # a cue seen in any view counts
            clothing = float(min(1.0, self.clothing_scale * peak[self._person_classes].sum()))
            faces = self.detector.detect(pixels) if self.detector else []
            lines: list[OcrLine] = []
            if self.reader is not None and (
                self.ocr_mode == "always" or peak[self._text_classes].sum() >= self.ocr_threshold
            ):
                lines = self.reader.read(pixels)
            evidence.append(ImageEvidence(out.probs, out.features[0], faces, clothing, lines))
        return evidence

    def vector(self, item: ImageEvidence) -> np.ndarray:
        probs = self.labels.combine_probs(item.view_probs)
        caption = self.labels.pseudo_caption(probs, item.people) if self.config.caption_weight else ""
        return self.labels.embed(item.view_probs, item.person_confidence, caption, item.ocr_text)

    def describe_evidence(self, item: ImageEvidence) -> ImageDescription:
        probs = self.labels.combine_probs(item.view_probs)
        labels = self.labels.top_labels(probs, 5)
        words = [name for name, p in labels if p >= 0.05] or [labels[0][0]]
        if item.people:
            words.append("person" if item.people == 1 else "people")
        return ImageDescription(self.vector(item), item.native, labels, item.people, item.ocr_text, ", ".join(words))

    def describe(self, images: list[np.ndarray]) -> list[ImageDescription]:
        return [self.describe_evidence(item) for item in self.observe(images)]

    def describe_batch(self, images: list[np.ndarray], batch_size: int = 16) -> list[ImageDescription]:
        out: list[ImageDescription] = []
        for start in range(0, len(images), batch_size):
            out.extend(self.describe(images[start:start + batch_size]))
        return out

    def embed_query(self, texts: list[str]) -> np.ndarray:
        return self.labels.embed_query(texts)


DEFAULT_CONFIG = BridgeConfig()
_BRIDGES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Experts -> its ImageBridge
_BRIDGES_LOCK = threading.Lock()


def bridge_for(experts) -> ImageBridge:
    """The bridge over these experts' image and text models (people and OCR as their config says),
    built once per `Experts`: the indexer, search and classification share one."""
    with _BRIDGES_LOCK:
        bridge = _BRIDGES.get(experts)
        if bridge is None:
            bridge = ImageBridge(expert=experts.image, encoder=experts.text, detect_people=experts.config.people,
                                 ocr="auto" if experts.config.ocr else "never")
            _BRIDGES[experts] = bridge
        return bridge
