"""A WordPiece tokenizer trained from scratch with the `tokenizers` library, saved as tokenizer.json."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from torch import Tensor

from ..errors import ReadError

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = [PAD, UNK, CLS, SEP, MASK]  # PAD is id 0


class TextTokenizer:
    """Lower-cased WordPiece with [CLS] ... [SEP] framing; encodes batches to padded id tensors."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.token_to_id(PAD)
        if self.pad_id is None:
            raise ValueError("tokenizer has no [PAD] token")

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 4000, min_frequency: int = 2) -> "TextTokenizer":
        """Learn a vocabulary from an iterator of strings (a corpus too big for memory is fine)."""
        tokenizer = Tokenizer(models.WordPiece(unk_token=UNK))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                            special_tokens=SPECIAL_TOKENS)
        tokenizer.train_from_iterator(texts, trainer)
        cls_id, sep_id = tokenizer.token_to_id(CLS), tokenizer.token_to_id(SEP)
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{CLS} $A {SEP}", pair=f"{CLS} $A {SEP} $B {SEP}", special_tokens=[(CLS, cls_id), (SEP, sep_id)]
        )
        return cls(tokenizer)

    @classmethod
    def load(cls, path: str | Path) -> "TextTokenizer":
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise ReadError(path, "no tokenizer file")
        try:
            return cls(Tokenizer.from_file(str(path)))
        except Exception as exc:  # the Rust side raises a bare Exception on bad JSON
            raise ReadError(path, f"not a valid tokenizer.json ({exc})") from exc

    def save(self, path: str | Path) -> Path:
        """Write tokenizer.json (into `path` when it is a folder) and return the file written."""
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(str(path))
        return path

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, texts: list[str], max_length: int = 128) -> tuple[Tensor, Tensor]:
        """(ids (B, T) long, mask (B, T) bool), right-padded to the longest text, truncated to max_length."""
        encodings = self.tokenizer.encode_batch(list(texts))
        rows = [enc.ids[: max_length - 1] + enc.ids[-1:] if len(enc.ids) > max_length else enc.ids for enc in encodings]
        length = max((len(row) for row in rows), default=1)
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return ids, ids != self.pad_id

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)
