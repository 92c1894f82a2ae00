"""Label bridge: ImageNet class probabilities -> a point in the text space (ConSE).

ConSE (Norouzi et al., 2014, "Zero-shot learning by convex combination of semantic embeddings")
places an image at the probability-weighted mean of the text embeddings of its top classes.
Here the text space is all-MiniLM-L6-v2's, so an image vector can be compared with any sentence
by a plain inner product, and an ANN index over image vectors answers text queries.

Improvements over the plain recipe, each switchable in `BridgeConfig` and measured in
benchmarks/quality/coco_retrieval.py:
- several prompt templates per class, averaged (CLIP-style prompt ensembling);
- cleaned class names (no Latin binomials, "crane bird" vs "construction crane");
- hypernyms: captions say "a dog", not "a Norwich terrier", so each class vector is pulled toward
  the embedding of its general words ("dog", "car", "kitchen");
- a power on the probabilities, the top-k cut-off, several crops per image;
- a person term (ImageNet has no "person" class) weighted by face and clothing evidence;
- a pseudo-caption: the embedding of "a photo of a dog, a frisbee and a person";
- re-centering: the mean class vector (a generic "a photo of a thing" direction, computed from
  text alone) is removed from both image and query vectors.
"""
from __future__ import annotations

import hashlib
import os
import json
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from .. import paths

TEMPLATE_VERSION = "t3"
PLAIN_TEMPLATES = ("a photo of a {}.",)
TEMPLATES = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image showing a {}.",
    "a {} in the scene.",
    "there is a {} in this photo.",
    "a close-up photo of the {}.",
)
PERSON_WORDS = ("person", "man", "woman", "people", "boy", "girl")
# the default bridge's class vectors, embedded by the default text model and shipped with the package
SEED_FILE = Path(__file__).parent / "data" / "imagenet-class-bank.safetensors"
SEED_PARTS = ("names", "hypernyms", "person")

# Leading words of English names that look like Latin binomials to the regex below.
_ENGLISH_FIRST_WORDS = frozenset(
    "African Afghan Airedale Alaska Alaskan American Angora Arabian Arctic Asiatic Australian Bedlington "
    "Bernese Blenheim Border Boston Brabancon Brittany Cape Christmas Doberman Dungeness Dutch Egyptian "
    "English Eskimo European French German Gila Gordon Hungarian Ibizan Indian Irish Italian Japanese Kerry "
    "Komodo Labrador Lakeland Lhasa Madagascar Maine Maltese Mexican Newfoundland Nile Norfolk Northern "
    "Norwegian Norwich Persian Petri Polaroid Rhodesian Russian Scotch Scottish Sealyham Shetland Siamese "
    "Siberian Staffordshire Sussex Sydney Tibetan Virginia Walker Welsh Windsor Yorkshire".split()
)
_BINOMIAL = re.compile(r"[A-Z][a-z]+( [a-z]+){1,2}")


def is_latin_binomial(name: str) -> bool:
    return bool(_BINOMIAL.fullmatch(name)) and name.split()[0] not in _ENGLISH_FIRST_WORDS


def load_synonyms() -> dict:
    text = resources.files("sensorium.experts").joinpath("data/imagenet_synonyms.json").read_text("utf-8")
    return json.loads(text)


def clean_names(class_names: list[str], synonyms: dict, per_class: int = 2, clean: bool = True) -> list[list[str]]:
    """Up to `per_class` everyday names per class: hand overrides first, then the synset's names."""
    if not clean:
        return [[part.strip() for part in synset.split(",")][:per_class] for synset in class_names]
    overrides = synonyms.get("names", {})
    result = []
    for index, synset in enumerate(class_names):
        names = list(overrides.get(str(index), []))
        for name in (part.strip() for part in synset.split(",")):
            if name and not is_latin_binomial(name) and name not in names:
                names.append(name)
        result.append(names[:per_class])
    return result


@dataclass(frozen=True)
class BridgeConfig:
    """How class probabilities become one text-space vector. `plain()` is textbook ConSE.

    The defaults are the shipped bridge. Generic options (crop layout, power, top-k, person
    weight) were chosen among a few values on COCO-mini retrieval; see benchmarks/quality/coco_retrieval.py.
    """

    templates: tuple[str, ...] = TEMPLATES
    clean: bool = True  # hand-cleaned names; False = the synset's first name(s) as written
    names_per_class: int = 2
    hypernym_weight: float = 1.0  # 0 = class names only
    top_k: int = 20
    power: float = 0.7  # p ** power before the top-k cut (< 1 flattens)
    crops: str = "grid"  # "full" | "grid" | "five" (see experts.image.crop_views)
    crop_weight: float = 0.5  # share of the sub-crops in the averaged probabilities
    person_weight: float = 0.25  # weight of the person vector at full person confidence
    caption_weight: float = 0.0  # weight of the embedded pseudo-caption (hurt on COCO: off)
    ocr_weight: float = 0.0  # weight of the embedded OCR text (cost R@1 on COCO; OCR stays in `text`)
    center: bool = False  # helped image->text, hurt text->image on COCO: off

    @classmethod
    def plain(cls) -> "BridgeConfig":
        return cls(templates=PLAIN_TEMPLATES, clean=False, names_per_class=1, hypernym_weight=0.0, top_k=10,
                   power=1.0, crops="full", person_weight=0.0, ocr_weight=0.0)

    def bank_key(self) -> str:
        """What the class-vector cache depends on."""
        raw = json.dumps([self.templates, self.clean, self.names_per_class, self.hypernym_weight > 0,
                          TEMPLATE_VERSION])
        return hashlib.sha1(raw.encode()).hexdigest()[:12]

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ClassBank:
    """Text-space vectors for the classes and for the words the bridge adds."""

    names: np.ndarray  # (1000, d): mean prompt embedding of each class's names, unnormalised
    hypernyms: np.ndarray  # (1000, d): mean prompt embedding of its hypernyms, zero where none
    person: np.ndarray  # (d,): mean prompt embedding of PERSON_WORDS, normalised
    center: np.ndarray  # (d,): mean of the normalised class vectors
    hypernym_weight: float = field(default=1.0)

    def class_vectors(self) -> np.ndarray:
        vectors = self.names + self.hypernym_weight * self.hypernyms
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _mean_prompt_embeddings(encoder, word_lists: list[list[str]], templates: tuple[str, ...]) -> np.ndarray:
    """Row i = mean over words x templates of the normalised embeddings (zero row if no words)."""
    prompts, owners = [], []
    for row, words in enumerate(word_lists):
        for word in words:
            for template in templates:
                prompts.append(template.format(word))
                owners.append(row)
    out = np.zeros((len(word_lists), encoder.dim), dtype=np.float32)
    if not prompts:
        return out
    # Hypernyms repeat ("dog" for 118 breeds): embed each distinct prompt once.
    unique = sorted(set(prompts))
    position = {prompt: i for i, prompt in enumerate(unique)}
    embedded = encoder.encode(unique)[[position[prompt] for prompt in prompts]]
    counts = np.zeros(len(word_lists), dtype=np.float32)
    np.add.at(out, np.asarray(owners), embedded)
    np.add.at(counts, np.asarray(owners), 1.0)
    nonzero = counts > 0
    out[nonzero] /= counts[nonzero, None]
    return out


def bank_key(encoder, class_names: list[str], config: BridgeConfig) -> str:
    """What a class bank depends on: the text model's weights, the prompt settings and the class names
    with their synonyms. Names both the cache file and the seed shipped with the package."""
    data = json.dumps([class_names, load_synonyms()], sort_keys=True)
    return f"{_text_model_key(encoder)}_{config.bank_key()}_{hashlib.sha1(data.encode()).hexdigest()[:12]}"


def build_class_bank(encoder, class_names: list[str], config: BridgeConfig, cache: bool = True) -> ClassBank:
    """Embed every class's prompts once (~6,000 sentences, 1-2 min on 2 cores). The vectors come from,
    in order: this machine's cache (paths.home(), keyed by `bank_key`), the seed shipped with the
    package when its key matches (the default bridge over the default text model), or the encoder."""
    key = bank_key(encoder, class_names, config)
    cache_file = paths.home() / "cache" / f"imagenet_bank_{key}.npz"
    stored = None
    if cache and cache_file.is_file():
        stored = dict(np.load(cache_file))
    elif cache:
        stored = seeded_bank(key)
    if stored is None:
        stored = embed_class_prompts(encoder, class_names, config)
        if cache:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_name(f".{cache_file.stem}-{os.getpid()}.tmp.npz")  # processes may race
            np.savez(tmp, **stored)
            tmp.replace(cache_file)
    dim = stored["names"].shape[1]
    bank = ClassBank(stored["names"], stored["hypernyms"], stored["person"], np.zeros(dim, np.float32),
                     config.hypernym_weight)
    bank.center = bank.class_vectors().mean(axis=0).astype(np.float32)
    return bank


def embed_class_prompts(encoder, class_names: list[str], config: BridgeConfig,
                        classes: list[int] | None = None) -> dict[str, np.ndarray]:
    """{"names", "hypernyms", "person"}: the bank's raw vectors from the encoder, for every class or only
    for the rows in `classes` (a check of the seed needs a sample, not ~6,000 sentences)."""
    synonyms = load_synonyms()
    classes = list(range(len(class_names))) if classes is None else list(classes)
    every_name = clean_names(class_names, synonyms, config.names_per_class, config.clean)
    names = _mean_prompt_embeddings(encoder, [every_name[i] for i in classes], config.templates)
    hyper_words = [synonyms["hypernyms"].get(str(i), []) if config.hypernym_weight else [] for i in classes]
    hypernyms = _mean_prompt_embeddings(encoder, hyper_words, config.templates)
    person = _unit(_mean_prompt_embeddings(encoder, [list(PERSON_WORDS)], config.templates)[0])
    return {"names": names, "hypernyms": hypernyms, "person": person}


@lru_cache(maxsize=2)
def seeded_bank(key: str) -> dict[str, np.ndarray] | None:
    """The shipped bank's vectors as float32 when it was made under `key`; None otherwise (absent,
    unreadable, or made with other models or settings: then the bank is embedded as without a seed)."""
    from safetensors import safe_open

    try:
        with safe_open(str(SEED_FILE), framework="numpy") as handle:
            if (handle.metadata() or {}).get("key") != key:
                return None
            return {name: handle.get_tensor(name).astype(np.float32) for name in SEED_PARTS}
    except Exception:
        return None


def write_class_bank_seed(encoder, class_names: list[str], config: BridgeConfig, path: Path | None = None) -> Path:
    """Embed the bank and store it as the package's seed (float16, ~1.5 MB). Run by
    `scripts/seed_class_bank.py` whenever the text model, the prompts or the class names change."""
    from safetensors.numpy import save_file

    vectors = embed_class_prompts(encoder, class_names, config)
    path = Path(path or SEED_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({name: vectors[name].astype(np.float16) for name in SEED_PARTS}, str(path),
              metadata={"key": bank_key(encoder, class_names, config)})
    seeded_bank.cache_clear()
    return path


def _text_model_key(encoder) -> str:
    try:
        return encoder.info().sha256[:12]
    except Exception:  # a stand-in encoder without weights on disk
        return type(encoder).__name__


class LabelBridge:
    """Pure vector arithmetic of the bridge: no image model inside, so ablations are cheap."""

    def __init__(self, encoder, class_names: list[str], config: BridgeConfig | None = None, cache: bool = True):
        self.encoder = encoder
        self.class_names = class_names
        self.config = config or BridgeConfig()
        self.bank = build_class_bank(encoder, class_names, self.config, cache=cache)
        self._class_vectors = self.bank.class_vectors()
        self.short_names = [names[0] if names else synset.split(",")[0]
                            for names, synset in zip(clean_names(class_names, load_synonyms(), 1), class_names)]

    def combine_probs(self, view_probs: np.ndarray) -> np.ndarray:
        """Row 0 is the whole image, further rows sub-crops: one averaged distribution."""
        view_probs = np.asarray(view_probs, dtype=np.float64)
        if view_probs.ndim == 1 or len(view_probs) == 1 or self.config.crops == "full":
            return np.atleast_2d(view_probs)[0]
        weight = self.config.crop_weight
        return (1.0 - weight) * view_probs[0] + weight * view_probs[1:].mean(axis=0)

    def sharpen(self, probs: np.ndarray) -> np.ndarray:
        """Power, top-k cut, renormalise: the weights of the convex combination."""
        weights = np.power(np.clip(probs, 0.0, None), self.config.power)
        keep = np.argsort(-weights)[: self.config.top_k]
        out = np.zeros_like(weights)
        out[keep] = weights[keep]
        total = out.sum()
        return out / total if total > 0 else out

    def conse(self, probs: np.ndarray) -> np.ndarray:
        return _unit(self.sharpen(probs) @ self._class_vectors).astype(np.float32)

    def embed(self, view_probs: np.ndarray, person_confidence: float = 0.0, caption: str = "",
              ocr_text: str = "", caption_vector: np.ndarray | None = None,
              ocr_vector: np.ndarray | None = None) -> np.ndarray:
        """The image's shared vector from its evidence; (d,) float32, unit length."""
        cfg = self.config
        vector = self.conse(self.combine_probs(view_probs)).astype(np.float64)
        if cfg.person_weight and person_confidence > 0:
            vector = _unit(vector + cfg.person_weight * person_confidence * self.bank.person)
        if cfg.caption_weight and (caption or caption_vector is not None):
            cap = caption_vector if caption_vector is not None else self.encoder.encode([caption])[0]
            vector = _unit(vector + cfg.caption_weight * cap)
        if cfg.ocr_weight and (ocr_text or ocr_vector is not None):
            ocr = ocr_vector if ocr_vector is not None else self.encoder.encode([ocr_text])[0]
            vector = _unit(vector + cfg.ocr_weight * ocr)
        if cfg.center:
            vector = vector - self.bank.center
        return _unit(vector).astype(np.float32)

    def embed_query(self, texts: list[str]) -> np.ndarray:
        """Text -> the same space: the text embedding, re-centered when images are."""
        vectors = self.encoder.encode(list(texts)).astype(np.float32)
        if self.config.center:
            vectors = vectors - self.bank.center
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors

    def top_labels(self, probs: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        order = np.argsort(-probs)[:k]
        return [(self.short_names[i], float(probs[i])) for i in order]

    def pseudo_caption(self, probs: np.ndarray, people: int = 0, k: int = 3, min_prob: float = 0.05) -> str:
        """"a photo of a tabby cat, a tiger cat and a person": what the classifier saw, in words."""
        words = []
        for name, p in self.top_labels(probs, k):
            if p >= min_prob or not words:
                words.append(name)
        if people:
            words.append("a person" if people == 1 else "people")
        phrases = [w if w in ("a person", "people") else f"a {w}" for w in words]
        joined = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
        return f"a photo of {joined}"
