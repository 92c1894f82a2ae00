"""The world captioner: it can only name what it found. Words come from a transformer decoder;
attribute values come from the objects it points at.

Why not an end-to-end captioner over a grid of image tokens: that one (2026-12-04, see
docs/experiments/2026-12-04-world-captioner.md) predicted every word itself, so on condition B of
the world it said "red cylinder" for a red cube, the colour-to-shape rule of condition A (CHAIR_i
0.14-0.15 on B). Here the picture is read by the question answerer's detector and object reader
(shape from the colour-blind network), and each object becomes a token: its attribute
probabilities, its box and its detection score. A transformer decoder cross-attends over those
tokens and decides which word comes next, but for an attribute word it decides only *which kind*
(a shape, a colour, a size, a material) and *which form* ("ball" or "sphere", "cubes" or "cube");
the value comes from a pointer over the objects (Neural Baby Talk, Lu et al. 2018, over the
detected regions of bottom-up attention, Anderson et al. 2018):

    P(word) = P(kind | words so far) * sum_k pointer_k * P_object k(value) * P(form | value, words so far)

The pointer may only point at objects that fit the adjectives said so far in the noun phrase
(`fitting`): after "a large red" the shape comes from an object seen to be large and red, so the
rule "red things are cylinders" has nowhere to enter; and no shape is said that no object was seen to have.
Objects that already lent a noun its shape step back (`coverage`), so a list names each shape once.

    captioner = WorldCaptioner.load("runs/world")     # the run folder `sensorium world train` wrote
    captioner.caption([pixels], beam=3)           # ["a large red cube behind a small ball"]
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import ConfigError
from .decoding import BOS_ID, EOS_ID, PAD_ID, SPECIALS, UNK_ID, beam_search
from .detector import Detection, ObjectDetector
from ..weights import SavedModel
from .files import SavedPipeline
from .perception import ATTRIBUTE_ORDER, ObjectPerception
from .vocabulary import VALUES, Attribute, attribute_of, canonical, words_of

STEM, FORMAT = "object_captioner", "sensorium-world-object-captioner/1"
MANIFEST, MANIFEST_FORMAT = "world_captioner.json", "sensorium-world-grounded-captioner/1"
RUN_DIR = "captioner"  # where `sensorium world train --model captioner` puts it in a run folder
HINT = "not a world captioner (train one with `sensorium world train --model captioner`)"
# (attribute, value) in the order of the object reader's outputs: 5 shapes, 8 colours, 2 sizes, 2 materials
GROUPS = tuple((Attribute(name), value) for name in ATTRIBUTE_ORDER for value in VALUES[Attribute(name)])
BOX_COLUMNS = 5  # centre x, centre y, width, height (shares of the picture), detection score
FEATURES = len(GROUPS) + BOX_COLUMNS  # one object token's inputs; a last column marks real objects
MIN_POINTED = 1e-6  # floor of a value's pointed probability (log of zero is -inf)


@dataclass(frozen=True)
class ObjectCaptionerConfig:
    vocabulary: tuple[str, ...] = SPECIALS
    width: int = 128
    layers: int = 3
    heads: int = 4
    max_words: int = 24
    dropout: float = 0.1
    trained: dict = field(default_factory=dict)

    def __post_init__(self):
        if tuple(self.vocabulary[:4]) != SPECIALS:
            raise ConfigError(f"vocabulary: must start with {SPECIALS}")
        if self.width % self.heads:
            raise ConfigError(f"width {self.width} must be a multiple of heads {self.heads}")


def object_features(detector: ObjectDetector, perception: ObjectPerception,
                    images: list[np.ndarray]) -> list[tuple[list[Detection], np.ndarray]]:
    """Each picture's detections and their (K, FEATURES) float32 tokens: the object reader's
    probabilities for every value (`GROUPS` order), the box as shares of the picture, the score."""
    found = detector.detect(images)
    out = []
    for picture, detections, read in zip(images, found, perception.read_found(images, found)):
        height, width = picture.shape[:2]
        rows = []
        for detection, probabilities in zip(detections, read):
            x0, y0, x1, y1 = detection.box
            where = [(x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height,
                     detection.score]
            rows.append(np.concatenate([probabilities, np.asarray(where, np.float32)]))
        out.append((detections, np.asarray(rows, np.float32).reshape(len(rows), FEATURES)))
    return out


def pack(features: list[np.ndarray | Tensor]) -> Tensor:
    """(B, K, FEATURES + 1): each picture's object tokens (arrays or tensors), zero-padded to the most
    objects of the batch, the last column 1 for a real object. K is at least 1, so a picture with none
    still has a row."""
    most = max([1, *(len(f) for f in features)])
    out = torch.zeros(len(features), most, FEATURES + 1)
    for i, rows in enumerate(features):
        if len(rows):
            out[i, :len(rows), :FEATURES] = torch.as_tensor(rows, dtype=torch.float32)
            out[i, :len(rows), FEATURES] = 1.0
    return out


class ObjectCaptioner(SavedModel, nn.Module):
    """The decoder over object tokens with the pointer for attribute values (see the module's docstring).
    Its `memory` is the packed object tokens (`pack`), so the grid captioner's beam search runs it."""

    stem, file_format, hint = STEM, FORMAT, HINT
    computes_loss = True

    def __init__(self, config: ObjectCaptionerConfig):
        super().__init__()
        self.config = config
        width, vocabulary = config.width, config.vocabulary
        self.tokens = nn.Sequential(nn.Linear(FEATURES, width), nn.GELU(), nn.Linear(width, width), nn.LayerNorm(width))
        self.scene = nn.Parameter(torch.randn(1, 1, width) * 0.02)  # always there: a picture may show nothing
        self.words = nn.Embedding(len(vocabulary), width, padding_idx=PAD_ID)
        nn.init.normal_(self.words.weight, std=0.02)
        self.positions = nn.Parameter(torch.randn(config.max_words + 1, width) * 0.02)
        layer = nn.TransformerDecoderLayer(width, config.heads, dim_feedforward=2 * width, dropout=config.dropout,
                                           batch_first=True, norm_first=True, activation="gelu")
        self.decoder = nn.TransformerDecoder(layer, config.layers, norm=nn.LayerNorm(width))
        self.query = nn.Linear(width, width)
        self.keys = nn.Sequential(nn.Linear(FEATURES, width), nn.GELU(), nn.Linear(width, width))
        self.coverage_weight = nn.Parameter(torch.tensor(3.0))  # softplus(3) ~ 3: named objects step back
        self.left = nn.Linear(2, width)  # objects not named yet -> the word scores (see `logits`)
        self._index = {word: i for i, word in enumerate(vocabulary)}
        group_of, attributes = [], list(Attribute)
        for word in vocabulary:
            value = canonical(word) if word not in SPECIALS else None
            group_of.append(GROUPS.index((attribute_of(value), value)) if value else -1)
        group_of = torch.tensor(group_of)
        is_attribute = group_of >= 0
        words = is_attribute.nonzero()[:, 0]
        members = torch.zeros(len(vocabulary), len(GROUPS))  # word -> its (attribute, value) group
        members[words, group_of[is_attribute]] = 1.0
        kind_of = torch.tensor([attributes.index(GROUPS[g][0]) if g >= 0 else 0 for g in group_of.tolist()])
        kinds = torch.zeros(len(vocabulary), len(attributes))  # word -> its attribute
        kinds[words, kind_of[is_attribute]] = 1.0
        is_shape = is_attribute & (kind_of == attributes.index(Attribute.SHAPE))
        is_adjective = is_attribute & ~is_shape
        for name, tensor in (("group_of", group_of.clamp(min=0)), ("kind_of", kind_of), ("is_attribute", is_attribute),
                             ("is_adjective", is_adjective), ("is_shape", is_shape),
                             ("group_members", members), ("kind_members", kinds)):
            self.register_buffer(name, tensor, persistent=False)

    # ---- words ------------------------------------------------------------------------------
    def encode_words(self, caption: str) -> list[int]:
        ids = [self._index.get(w, UNK_ID) for w in words_of(caption)][: self.config.max_words - 1]
        return ids + [EOS_ID]

    def decode_words(self, ids) -> str:
        words = [self.config.vocabulary[int(i)] for i in ids if int(i) >= len(SPECIALS)]
        return " ".join(words).replace(" ,", ",").replace(" :", ":")

    # ---- network ----------------------------------------------------------------------------
    def logits(self, memory: Tensor, prefix: Tensor) -> Tensor:
        """Log-probabilities (B, T, V) of the next word at every position of `prefix` (B, T, BOS first),
        given `memory` (B, K, FEATURES + 1) from `pack`."""
        features, real = memory[..., :FEATURES], memory[..., FEATURES] > 0.5
        tokens = torch.cat([self.scene.expand(len(memory), -1, -1), self.tokens(features)], dim=1)
        hidden_mask = torch.cat([torch.zeros_like(real[:, :1]), ~real], dim=1)  # True = not an object
        steps = prefix.shape[1]
        hidden = self.words(prefix) + self.positions[:steps]
        causal = torch.ones(steps, steps, dtype=torch.bool, device=prefix.device).triu(1)
        hidden = self.decoder(hidden, tokens, tgt_mask=causal, tgt_key_padding_mask=prefix.eq(PAD_ID),
                              memory_key_padding_mask=hidden_mask)
        scores = hidden @ self.words.weight.T  # (B, T, V)
        # the pointer: which object the next attribute word is about, among those that fit the adjectives
        # said so far in this noun phrase
        seen = features[..., :len(GROUPS)] * real[..., None]
        aim = torch.einsum("btw,bkw->btk", self.query(hidden), self.keys(features)) / math.sqrt(self.config.width)
        aim = aim.masked_fill(~real[:, None], -1e4)
        covered = self.coverage(seen, prefix)
        aim = F.softmax(aim - F.softplus(self.coverage_weight) * covered, dim=-1) * self.fitting(seen, prefix)
        pointed = (aim @ seen).clamp(min=MIN_POINTED)  # (B, T, groups)
        # how many objects no noun has named yet, for the words: when none is left, a list should end
        left = ((1 - covered) * real[:, None]).sum(dim=-1, keepdim=True)
        scores = scores + self.left(torch.cat([left / 10, (left < 0.5).to(left.dtype)], dim=-1)) @ self.words.weight.T
        language = F.log_softmax(scores, dim=-1)
        chance = language.exp()
        # sums over a group's or an attribute's words as products with 0/1 membership matrices (a value no
        # training caption said has an empty group: floored, never indexed)
        top = scores.max(dim=-1, keepdim=True).values
        group_total = ((scores - top).exp() @ self.group_members).clamp(min=1e-30).log() + top
        form = scores - group_total[..., self.group_of]  # log P(this form | its value)
        kind = (chance @ self.kind_members).clamp(min=1e-30).log()[..., self.kind_of]  # log P(an attribute word)
        said = kind + pointed.log()[..., self.group_of] + form
        # normalised again: a picture with no objects has nothing to point at, and its attribute mass goes
        # to the other words (elsewhere this changes nothing beyond the MIN_POINTED floor)
        return F.log_softmax(torch.where(self.is_attribute, said, language), dim=-1)

    def coverage(self, seen: Tensor, prefix: Tensor) -> Tensor:
        """(B, T, K): how surely each object is of a shape already said by each position (its greatest
        probability of one of those shapes). Why: in a list ("two cubes, a cone and a ring") the order is
        arbitrary, every shape present is as likely next, and without it the decoder names the likeliest
        one again and again (coverage, Tu et al. 2016, here of values said rather than of attention: which
        object a shape-only noun is about is arbitrary too, so a learned pointer stays near uniform)."""
        named, running = [], torch.zeros(seen.shape[:2], device=seen.device)
        for step in range(prefix.shape[1]):
            word = prefix[:, step]
            value = seen.gather(2, self.group_of[word][:, None, None].expand(-1, seen.shape[1], 1))[..., 0]
            running = torch.where(self.is_shape[word][:, None], torch.maximum(running, value), running)
            named.append(running)
        return torch.stack(named, dim=1)

    def fitting(self, seen: Tensor, prefix: Tensor) -> Tensor:
        """(B, T, K): how well each object fits the adjectives (size, colour, material words) that end the
        prefix up to each position: the product of its probabilities of their values, 1 where the
        prefix does not end in one. After "a large red" only large red objects can lend the noun its
        shape, so the captioner cannot say "red cylinder" unless it saw a red object that is a cylinder."""
        fits, running = [], torch.ones(seen.shape[:2], device=seen.device)
        for step in range(prefix.shape[1]):
            word = prefix[:, step]
            value = seen.gather(2, self.group_of[word][:, None, None].expand(-1, seen.shape[1], 1))[..., 0]
            running = torch.where(self.is_adjective[word][:, None], running * value, torch.ones_like(running))
            fits.append(running)
        return torch.stack(fits, dim=1)

    def forward(self, batch: dict) -> Tensor:
        """batch: memory (B, K, FEATURES + 1) from `pack`, captions (B, C, T) ids ending in EOS, PAD after."""
        memory, captions = batch["memory"], batch["captions"]
        memory = memory.repeat_interleave(captions.shape[1], dim=0)
        targets = captions.flatten(0, 1)
        prefix = torch.cat([torch.full_like(targets[:, :1], BOS_ID), targets[:, :-1]], dim=1)
        log_probs = self.logits(memory, prefix)
        return F.nll_loss(log_probs.flatten(0, 1), targets.flatten(), ignore_index=PAD_ID)

    @torch.no_grad()
    def caption_features(self, features: list[np.ndarray], beam: int = 3, max_words: int | None = None,
                         min_words: int = 1, no_repeat_ngram: int = 3, length_penalty: float = 0.0) -> list[str]:
        if beam < 1:
            raise ValueError(f"beam: at least 1, got {beam}")
        limit = min(max_words or self.config.max_words, self.config.max_words)
        was_training = self.training
        self.eval()
        try:
            return [self.decode_words(ids) for ids in
                    beam_search(self, pack(features), beam, limit, min_words, no_repeat_ngram, length_penalty)]
        finally:
            self.train(was_training)

    @classmethod
    def config_from(cls, record: dict) -> ObjectCaptionerConfig:
        record["vocabulary"] = tuple(record["vocabulary"])
        return ObjectCaptionerConfig(**record)


class WorldCaptioner(SavedPipeline):
    """Pictures in, captions out: the detector and object reader the question answerer uses, then
    the `ObjectCaptioner`. One folder holds all three (safetensors + JSON each) and a manifest."""

    part_types = (ObjectDetector, ObjectPerception, ObjectCaptioner)
    manifest, pipeline_format, run_dir, hint = MANIFEST, MANIFEST_FORMAT, RUN_DIR, HINT

    def __init__(self, detector: ObjectDetector, perception: ObjectPerception, words: ObjectCaptioner):
        self.detector, self.perception, self.words = detector, perception, words

    def parts(self) -> tuple:
        return self.detector, self.perception, self.words

    def caption(self, images: list[np.ndarray], beam: int = 3, **decoding) -> list[str]:
        features = [rows for _, rows in object_features(self.detector, self.perception, images)]
        return self.words.caption_features(features, beam=beam, **decoding)

