"""Questions parsed into programs: a small transformer that classifies each slot of a question's
program (`program.SLOTS`), as in NS-VQA (Yi et al. 2018), made a classifier per slot.

Why a parser and not an answer classifier: an answer computed by executing a program on the
objects seen is right for the right reason, says which objects it rests on (grounding), and says
"cannot tell" exactly when the question's object is not there, however the scene's colours were
combined in training (the compositional split). The words are the world's own (`words_of`); a
word the parser never saw in training is reported, and the question is not guessed at.
Training lives in `sensorium.training.world_reading`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..weights import SavedModel
from .files import VQA_HINT
from .program import SLOTS, unflatten
from .vocabulary import words_of

STEM, FORMAT = "parser", "sensorium-world-parser/1"
PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1


@dataclass(frozen=True)
class ParserConfig:
    vocabulary: tuple[str, ...] = (PAD, UNK)
    slot_values: dict[str, tuple[str, ...]] = field(default_factory=dict)  # each slot's classes, in SLOTS order
    width: int = 64
    layers: int = 2
    heads: int = 4
    feedforward: int = 2  # the feed-forward layer's width, in multiples of `width`
    max_words: int = 32
    trained: dict = field(default_factory=dict)

    def __post_init__(self):
        if tuple(self.vocabulary[:2]) != (PAD, UNK):
            raise ConfigError(f"parser vocabulary: must start with {PAD}, {UNK}")
        if self.slot_values and set(self.slot_values) != set(SLOTS):
            raise ConfigError(f"parser slots: expected {SLOTS}, got {tuple(self.slot_values)}")
        if self.width % self.heads:
            raise ConfigError(f"parser width {self.width} must be a multiple of heads {self.heads}")


@dataclass(frozen=True)
class Parse:
    program: dict | None  # None: the slots do not make a program, or the question has words never seen
    confidence: float  # the least probability among the chosen slot values
    unknown_words: tuple[str, ...] = ()


def build_vocabulary(questions) -> tuple[str, ...]:
    return (PAD, UNK) + tuple(sorted({w for q in questions for w in words_of(q)}))


class QuestionParser(SavedModel, nn.Module):
    stem, file_format, hint = STEM, FORMAT, VQA_HINT
    computes_loss = True  # the Trainer optimises forward(batch): the slots' cross-entropies

    def __init__(self, config: ParserConfig):
        super().__init__()
        self.config = config
        self.index = {word: i for i, word in enumerate(config.vocabulary)}
        width = config.width
        self.words = nn.Embedding(len(config.vocabulary), width, padding_idx=PAD_ID)
        self.position = nn.Parameter(torch.randn(config.max_words + 1, width) * 0.02)
        self.summary = nn.Parameter(torch.randn(1, 1, width) * 0.02)  # a [CLS] token the heads read
        layer = nn.TransformerEncoderLayer(width, config.heads, config.feedforward * width, dropout=0.1, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.heads = nn.ModuleDict({slot.replace(".", "_"): nn.Linear(width, len(config.slot_values[slot]))
                                    for slot in SLOTS})

    def encode(self, question: str) -> list[int]:
        return [self.index.get(w, UNK_ID) for w in words_of(question)][: self.config.max_words]

    def ids(self, questions: list[str]) -> Tensor:
        out = torch.full((len(questions), self.config.max_words), PAD_ID, dtype=torch.long)
        for row, question in enumerate(questions):
            ids = self.encode(question)
            out[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def logits(self, ids: Tensor) -> dict[str, Tensor]:
        longest = max(1, int(ids.ne(PAD_ID).sum(dim=1).max())) if ids.numel() else 1
        ids = ids[:, :longest]  # padding to the batch's longest question, not max_words: half the cost
        batch = ids.shape[0]
        tokens = torch.cat([self.summary.expand(batch, -1, -1), self.words(ids)], dim=1)
        tokens = tokens + self.position[: tokens.shape[1]]
        padding = torch.cat([torch.zeros(batch, 1, dtype=torch.bool), ids.eq(PAD_ID)], dim=1)
        summary = self.norm(self.encoder(tokens, src_key_padding_mask=padding)[:, 0])
        return {slot: self.heads[slot.replace(".", "_")](summary) for slot in SLOTS}

    def forward(self, batch: dict) -> Tensor:
        logits = self.logits(batch["words"])
        return sum(F.cross_entropy(logits[slot], batch["slots"][:, column]) for column, slot in enumerate(SLOTS))

    @torch.no_grad()
    def parse(self, questions: list[str]) -> list[Parse]:
        was_training = self.training
        self.eval()
        try:
            probs = {slot: F.softmax(out, dim=1) for slot, out in self.logits(self.ids(questions)).items()}
        finally:
            self.train(was_training)
        parses = []
        for row, question in enumerate(questions):
            unknown = tuple(dict.fromkeys(w for w in words_of(question) if w not in self.index))
            chosen, confidence = {}, 1.0
            for slot in SLOTS:
                p, index = probs[slot][row].max(dim=0)
                chosen[slot] = self.config.slot_values[slot][int(index)]
                confidence = min(confidence, float(p))
            try:
                program = None if unknown or not words_of(question) else unflatten(chosen)
            except (KeyError, ValueError):
                program = None
            parses.append(Parse(program, round(confidence, 4), unknown))
        return parses

    @classmethod
    def config_from(cls, record: dict) -> ParserConfig:
        record["vocabulary"] = tuple(record["vocabulary"])
        record["slot_values"] = {k: tuple(v) for k, v in record["slot_values"].items()}
        return ParserConfig(**record)
