"""Words of the world's captions as ids, and beam search over a captioner's next-word scores.

Kept apart from the captioner so that the search (batched beams, a GNMT length penalty, a minimum
and maximum length, a ban on repeated n-grams) is one piece any caption decoder can run: it only
needs `logits(memory, prefix)` and `config.vocabulary`.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .vocabulary import words_of

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)


def build_vocabulary(captions) -> tuple[str, ...]:
    """Every word of the training captions, after the four specials, in a fixed (sorted) order."""
    return SPECIALS + tuple(sorted({w for caption in captions for w in words_of(caption)}))


def _banned(sequence: list[int], n: int) -> set[int]:
    """Words that would repeat an n-gram already in `sequence`."""
    if n <= 0 or len(sequence) < n - 1:
        return set()
    head = tuple(sequence[len(sequence) - n + 1:]) if n > 1 else ()
    return {sequence[i + n - 1] for i in range(len(sequence) - n + 1) if tuple(sequence[i:i + n - 1]) == head}


def beam_search(model: nn.Module, memory: Tensor, beam: int, limit: int, min_words: int, no_repeat: int,
                alpha: float) -> list[list[int]]:
    """Batched beam search (beam 1 is greedy); returns each picture's best word ids, EOS excluded.
    `model` has `logits(memory, prefix)` over its `config.vocabulary`; `memory` is one row per picture."""
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
