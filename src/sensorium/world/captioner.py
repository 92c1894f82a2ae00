"""A learned captioner for world scenes: a convolutional image encoder, a transformer decoder with
cross-attention over the image's tokens, greedy and beam search with length and repetition controls.

Why its own small encoder: a world picture is 128 px of simple shapes, and the decoder must read
attributes of objects 10-30 px wide, so the encoder keeps a 16 x 16 grid of tokens (one per 8 px)
rather than pooling; the decoder attends over all 256 of them for each word. Weights are
safetensors + a JSON config holding the vocabulary (`save` / `load`); nothing is pickled.
Training lives in `sensorium.training.captioning` (the Trainer, `computes_loss`); this module is
all that captioning needs at run time.

    model = Captioner(CaptionerConfig(vocabulary=build_vocabulary(captions)))
    model.caption([pixels], beam=3)               # ["a large red cube behind a small ball", ...]
    model.save("runs/captioner"); Captioner.load("runs/captioner")
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import ConfigError
from .files import SavedModel
from .pixels import pictures_tensor
from .vocabulary import COLOURS, MATERIALS, SHAPES, SIZES, words_of

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)
STEM = "captioner"  # captioner.json + captioner.safetensors
FORMAT = "sensorium-world-captioner/1"
CELL_CLASSES = (len(SHAPES) + 1, len(COLOURS), len(SIZES), len(MATERIALS))  # shape 0 = no object
EMPTY_CELL_WEIGHT = 0.1


def cell_targets(objects: list[dict], picture_size: int, grid: int) -> Tensor:
    """(grid * grid, 4) long: per cell of the token grid, 1 + the shape index of the object whose box
    centre is in it (0: none), then its colour, size and material indices (-100 where there is none).
    Why: captions alone teach a from-scratch encoder slowly (a 15-epoch run only learned the
    captions' language); the scene's exact annotations tell each token what it covers."""
    out = torch.full((grid * grid, 4), -100, dtype=torch.long)
    out[:, 0] = 0
    scale = grid / picture_size
    for obj in sorted(objects, key=lambda o: -o.get("depth", 0.0)):  # nearer objects win a shared cell
        x0, y0, x1, y1 = obj["box"]
        gx = min(grid - 1, max(0, int((x0 + x1) / 2 * scale)))
        gy = min(grid - 1, max(0, int((y0 + y1) / 2 * scale)))
        out[gy * grid + gx] = torch.tensor([SHAPES.index(obj["shape"]) + 1, COLOURS.index(obj["colour"]),
                                            SIZES.index(obj["size"]), MATERIALS.index(obj["material"])])
    return out


def build_vocabulary(captions) -> tuple[str, ...]:
    """Every word of the training captions, after the four specials, in a fixed (sorted) order."""
    return SPECIALS + tuple(sorted({w for caption in captions for w in words_of(caption)}))


@dataclass(frozen=True)
class CaptionerConfig:
    vocabulary: tuple[str, ...] = SPECIALS
    image_size: int = 128
    width: int = 128  # token and decoder width
    layers: int = 3  # decoder layers
    heads: int = 4
    max_words: int = 24  # longest caption, end marker included
    dropout: float = 0.1
    trained: dict = field(default_factory=dict)  # what it was trained on (world, epochs, ...), for the record

    def __post_init__(self):
        if tuple(self.vocabulary[:4]) != SPECIALS:
            raise ConfigError(f"vocabulary: must start with {SPECIALS}")
        if self.image_size % 8 or self.image_size < 32:
            raise ConfigError(f"image_size: a multiple of 8, at least 32 (got {self.image_size})")
        if self.width % self.heads:
            raise ConfigError(f"width {self.width} must be a multiple of heads {self.heads}")


class ImageTokens(nn.Module):
    """Picture (B, 3, S, S) in [0, 1] -> tokens (B, (S/8)^2, width), one per 8 x 8 pixels, with positions."""

    def __init__(self, image_size: int, width: int):
        super().__init__()
        layers, previous = [], 3
        for stage, out in enumerate((32, 64, width)):
            layers += [nn.Conv2d(previous, out, 3, stride=2, padding=1), nn.GroupNorm(8, out), nn.GELU()]
            if stage:  # a second convolution at 32 and 16 px (at 64 px it would cost a third of the encoder)
                layers += [nn.Conv2d(out, out, 3, padding=1), nn.GroupNorm(8, out), nn.GELU()]
            previous = out
        self.net = nn.Sequential(*layers)
        grid = image_size // 8
        self.position = nn.Parameter(torch.randn(grid * grid, width) * 0.02)
        self.norm = nn.LayerNorm(width)

    def forward(self, pictures: Tensor) -> Tensor:
        # each picture standardised per channel: the floor and sky fill most of it at low contrast
        # (pixel std ~0.08), and without this the first layers see nearly the same picture every time
        mean = pictures.mean(dim=(2, 3), keepdim=True)
        spread = pictures.std(dim=(2, 3), keepdim=True) + 1e-2
        features = self.net((pictures - mean) / spread)  # (B, width, S/8, S/8)
        return self.norm(features.flatten(2).transpose(1, 2) + self.position)


class Captioner(SavedModel, nn.Module):
    stem, file_format = STEM, FORMAT
    hint = "not a captioner folder (train one with `sensorium world train`)"
    computes_loss = True  # the Trainer optimises forward(batch), the teacher-forced word loss

    def __init__(self, config: CaptionerConfig):
        super().__init__()
        self.config = config
        width = config.width
        self.encoder = ImageTokens(config.image_size, width)
        self.words = nn.Embedding(len(config.vocabulary), width, padding_idx=PAD_ID)
        nn.init.normal_(self.words.weight, std=0.02)  # tied with the output: unit-variance rows would start
        # the word loss near 70 nats instead of log(vocabulary)
        self.positions = nn.Parameter(torch.randn(config.max_words + 1, width) * 0.02)
        self.glance = nn.Linear(width, width)
        # what sits in each grid cell (see `cell_targets`): a training signal for the encoder only
        self.cells = nn.Linear(width, sum(CELL_CLASSES))
        layer = nn.TransformerDecoderLayer(width, config.heads, dim_feedforward=2 * width, dropout=config.dropout,
                                           batch_first=True, norm_first=True, activation="gelu")
        self.decoder = nn.TransformerDecoder(layer, config.layers, norm=nn.LayerNorm(width))
        self._index = {word: i for i, word in enumerate(config.vocabulary)}

    # ---- words ------------------------------------------------------------------------------
    def encode_words(self, caption: str) -> list[int]:
        ids = [self._index.get(w, UNK_ID) for w in words_of(caption)][: self.config.max_words - 1]
        return ids + [EOS_ID]

    def decode_words(self, ids) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i >= len(SPECIALS):
                out.append(self.config.vocabulary[i])
        return " ".join(out).replace(" ,", ",").replace(" :", ":")

    # ---- network ----------------------------------------------------------------------------
    def memory(self, pictures: Tensor) -> Tensor:
        return self.encoder(pictures)

    def logits(self, memory: Tensor, prefix: Tensor) -> Tensor:
        """Next-word logits (B, T, V) for every position of `prefix` (B, T), which starts with BOS."""
        steps = prefix.shape[1]
        # the mean image token joins every word: a direct path from the picture to each prediction, so
        # the decoder uses the picture from the first steps instead of learning the captions' language first
        hidden = self.words(prefix) + self.positions[:steps] + self.glance(memory.mean(dim=1))[:, None]
        causal = torch.ones(steps, steps, dtype=torch.bool, device=prefix.device).triu(1)  # True = may not see
        hidden = self.decoder(hidden, memory, tgt_mask=causal, tgt_key_padding_mask=prefix.eq(PAD_ID))
        return hidden @ self.words.weight.T  # tied input and output embeddings

    def forward(self, batch: dict) -> Tensor:
        """batch: pictures (B, 3, S, S) float, captions (B, C, T) ids ending in EOS, PAD after.
        Each picture is encoded once and read by its C captions."""
        pictures, captions = batch["pictures"], batch["captions"]
        per = captions.shape[1]
        memory = self.memory(pictures).repeat_interleave(per, dim=0)
        targets = captions.flatten(0, 1)
        prefix = torch.cat([torch.full_like(targets[:, :1], BOS_ID), targets[:, :-1]], dim=1)
        logits = self.logits(memory, prefix)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD_ID)
        if "cells" in batch:
            loss = loss + self.cell_loss(memory[::per], batch["cells"])
        return loss

    def cell_loss(self, tokens: Tensor, targets: Tensor) -> Tensor:
        """Each token predicts the object whose box centre falls in its cell: shape or "nothing" over every
        cell (nothing weighted down, most cells are floor), colour, size and material where there is one."""
        logits = self.cells(tokens).split(CELL_CLASSES, dim=-1)
        weights = torch.ones(CELL_CLASSES[0], device=tokens.device)
        weights[0] = EMPTY_CELL_WEIGHT
        loss = F.cross_entropy(logits[0].flatten(0, 1), targets[..., 0].flatten(), weight=weights)
        for part in range(1, len(CELL_CLASSES)):
            loss = loss + F.cross_entropy(logits[part].flatten(0, 1), targets[..., part].flatten(), ignore_index=-100)
        return loss

    # ---- decoding ---------------------------------------------------------------------------
    def pictures_tensor(self, images: list[np.ndarray]) -> Tensor:
        return pictures_tensor(images, self.config.image_size)

    @torch.no_grad()
    def caption(self, images: list[np.ndarray], beam: int = 1, max_words: int | None = None, min_words: int = 1,
                no_repeat_ngram: int = 3, length_penalty: float = 0.0) -> list[str]:
        """One caption per picture. beam 1 = greedy. min_words: the end is forbidden before;
        no_repeat_ngram: no n-gram twice (0 = off); length_penalty: GNMT's alpha (0 = raw log-probability)."""
        if beam < 1:
            raise ValueError(f"beam: at least 1, got {beam}")
        limit = min(max_words or self.config.max_words, self.config.max_words)
        was_training = self.training
        self.eval()
        memory = self.memory(self.pictures_tensor(images))
        try:
            return [self.decode_words(ids) for ids in
                    _beam_search(self, memory, beam, limit, min_words, no_repeat_ngram, length_penalty)]
        finally:
            self.train(was_training)

    # ---- files ------------------------------------------------------------------------------
    @classmethod
    def config_from(cls, record: dict) -> CaptionerConfig:
        record["vocabulary"] = tuple(record["vocabulary"])
        return CaptionerConfig(**record)


def _banned(sequence: list[int], n: int) -> set[int]:
    """Words that would repeat an n-gram already in `sequence`."""
    if n <= 0 or len(sequence) < n - 1:
        return set()
    head = tuple(sequence[len(sequence) - n + 1:]) if n > 1 else ()
    return {sequence[i + n - 1] for i in range(len(sequence) - n + 1) if tuple(sequence[i:i + n - 1]) == head}


def _beam_search(model: Captioner, memory: Tensor, beam: int, limit: int, min_words: int, no_repeat: int,
                 alpha: float) -> list[list[int]]:
    """Batched beam search (beam 1 is greedy); returns each picture's best word ids, EOS excluded."""
    count = memory.shape[0]
    memory = memory.repeat_interleave(beam, dim=0)
    prefix = torch.full((count * beam, 1), BOS_ID, dtype=torch.long)
    scores = torch.zeros(count, beam)
    scores[:, 1:] = float("-inf")  # all beams start identical: keep one
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(count)]
    vocabulary = len(model.config.vocabulary)
    for step in range(limit):
        log_probs = F.log_softmax(model.logits(memory, prefix)[:, -1].float(), dim=-1)
        log_probs[:, PAD_ID] = log_probs[:, BOS_ID] = float("-inf")
        if step < min_words:
            log_probs[:, EOS_ID] = float("-inf")
        if step == limit - 1:  # the last position can only end the caption
            keep = log_probs[:, EOS_ID].clone()
            log_probs[:] = float("-inf")
            log_probs[:, EOS_ID] = keep
        if no_repeat:
            for row, sequence in enumerate(prefix[:, 1:].tolist()):
                banned = _banned(sequence, no_repeat)
                if banned:
                    log_probs[row, list(banned)] = float("-inf")
        total = (scores.view(-1, 1) + log_probs).view(count, beam * vocabulary)
        top_scores, top_index = total.topk(2 * beam, dim=1)
        next_prefix, next_scores = [], torch.full((count, beam), float("-inf"))
        for picture in range(count):
            kept = 0
            for score, index in zip(top_scores[picture].tolist(), top_index[picture].tolist()):
                if score == float("-inf"):
                    break
                source, word = divmod(index, vocabulary)
                row = picture * beam + source
                if word == EOS_ID:
                    words = prefix[row, 1:].tolist()
                    length = ((5 + len(words) + 1) / 6) ** alpha if alpha else 1.0
                    finished[picture].append((score / length, words))
                    continue
                next_prefix.append(torch.cat([prefix[row], torch.tensor([word])]))
                next_scores[picture, kept] = score
                kept += 1
                if kept == beam:
                    break
            while kept < beam:  # fewer live hypotheses than beams: pad with dead ones
                next_prefix.append(torch.cat([prefix[picture * beam], torch.tensor([PAD_ID])]))
                kept += 1
        prefix, scores = torch.stack(next_prefix), next_scores
        best_live = scores.max(dim=1).values
        if all(len(done) >= beam and max(s for s, _ in done) >= best_live[p].item()
               for p, done in enumerate(finished)):
            break
    results = []
    for picture, done in enumerate(finished):
        if not done:  # nothing ended within the limit: the best live hypothesis
            done = [(scores[picture, 0].item(), prefix[picture * beam, 1:].tolist())]
        results.append(max(done, key=lambda pair: pair[0])[1])
    return results
