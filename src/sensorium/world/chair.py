"""CHAIR on the world: how much of what a caption mentions is not in the scene, computed exactly.

Rohrbach et al., "Object Hallucination in Image Captioning" (EMNLP 2018): CHAIR_i is the share of
mentioned objects that are not in the picture, CHAIR_s the share of captions that mention at least
one. On COCO the truth comes from annotations and a synonym list and stays approximate; here every
object and attribute is known, so both are exact. Two levels:

- object: a mention of a shape ("a red ball") is hallucinated when no object has that shape;
- attribute: it is hallucinated when no object has that shape *and* every adjective said of it
  (colour, size, material), so "a red cube" beside a blue cube counts. Mentions of "things" and
  "objects" count here only (they name no shape).

Also returned: object recall, the share of the scene's shapes a caption mentions (a caption that
says nothing hallucinates nothing). Counts and relations are not judged.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .scene import Scene
from .vocabulary import GENERIC_NOUNS, PLURALS, Attribute, attribute_of, canonical

_WORD = re.compile(r"[a-z]+")
_NOUNS = {*GENERIC_NOUNS, *(PLURALS[n] for n in GENERIC_NOUNS)}


@dataclass
class Mention:
    """A noun phrase of a caption: the shape it names (None for "thing"), the adjectives said of it."""

    shape: str | None
    attributes: dict = field(default_factory=dict)  # Attribute -> value, adjectives only
    text: str = ""

    def description(self) -> dict:
        return {**self.attributes, **({Attribute.SHAPE: self.shape} if self.shape else {})}


def mentions(caption: str) -> list[Mention]:
    """The noun phrases of a caption: each shape or generic noun with the attribute words right before it."""
    words = _WORD.findall(caption.lower())
    found, adjectives, start = [], {}, 0
    for position, word in enumerate(words):
        value = canonical(word)
        kind = attribute_of(value) if value else None
        if kind is not None and kind != Attribute.SHAPE:
            if not adjectives:
                start = position
            adjectives[kind] = value
            continue
        if kind == Attribute.SHAPE or word in _NOUNS:
            first = start if adjectives else position
            found.append(Mention(value if kind == Attribute.SHAPE else None, dict(adjectives),
                                 " ".join(words[first:position + 1])))
        adjectives = {}
    return found


@dataclass
class ChairScores:
    captions: int
    mentions: int  # of shapes (object level)
    chair_i: float
    chair_s: float
    attribute_mentions: int  # of shapes and things (attribute level)
    attribute_chair_i: float
    attribute_chair_s: float
    recall: float  # share of each scene's shapes mentioned, averaged over captions


def chair(pairs: Iterable[tuple[str, Scene]]) -> ChairScores:
    """CHAIR of captions, each paired with the scene it describes."""
    captions = shape_mentions = shape_wrong = attribute_mentions = attribute_wrong = 0
    sentences_wrong = sentences_attribute_wrong = 0
    recall = 0.0
    for caption, scene in pairs:
        captions += 1
        shapes = {o.shape for o in scene.objects}
        said = mentions(caption)
        wrong = attribute_bad = False
        for mention in said:
            if mention.shape is not None:
                shape_mentions += 1
                if mention.shape not in shapes:
                    shape_wrong += 1
                    wrong = True
            if mention.shape is not None or mention.attributes:
                attribute_mentions += 1
                if not scene.matching(mention.description()):
                    attribute_wrong += 1
                    attribute_bad = True
        sentences_wrong += wrong
        sentences_attribute_wrong += attribute_bad
        recall += len({m.shape for m in said if m.shape in shapes}) / len(shapes) if shapes else 1.0
    return ChairScores(
        captions=captions, mentions=shape_mentions, chair_i=shape_wrong / max(shape_mentions, 1),
        chair_s=sentences_wrong / max(captions, 1), attribute_mentions=attribute_mentions,
        attribute_chair_i=attribute_wrong / max(attribute_mentions, 1),
        attribute_chair_s=sentences_attribute_wrong / max(captions, 1), recall=recall / max(captions, 1))
