"""The 1000 ImageNet classes grouped into the nouns people use: "dog", not "golden retriever" 0.31 + "Labrador" 0.29.

Why group: a photo of a dog spreads the classifier's probability over 118 breeds, so no single
class is sure while "dog" is. Each class joins the group of its most specific general word (the
first hypernym of `experts/data/imagenet_synonyms.json`), skipping words that name a setting
rather than a thing ("kitchen" for a frying pan, "food" for guacamole): those classes keep a
more specific word or their own name. The same table tells `ask` which words the classifier
can answer for at all (`term_classes`), so a question about a giraffe (no ImageNet class) gets
"cannot tell" instead of a guess.

    table = load_concepts()
    table.concept_probs(probs)         # (len(table.nouns),) summed class probabilities
    table.term_classes("cats")         # class indices of every cat, or None when unknown
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..experts.image import load_class_names
from ..space.label_bridge import clean_names, load_synonyms

# First hypernyms that name where something is, or what it is for, rather than the thing itself.
SETTING_WORDS = frozenset({"kitchen", "outdoors", "park", "food", "meal", "camping", "street", "swimming",
                           "coffee", "drink", "wedding", "baseball game", "tennis", "soccer", "skiing", "cooking"})


def singular(word: str) -> str:
    """A plural noun's singular, for the plurals questions use ("cats", "buses", "people")."""
    word = word.strip().lower()
    irregular = {"people": "person", "men": "man", "women": "woman", "children": "child", "mice": "mouse",
                 "geese": "goose", "sheep": "sheep", "fish": "fish", "teeth": "tooth", "feet": "foot",
                 "knives": "knife", "shelves": "shelf", "leaves": "leaf", "wolves": "wolf"}
    if word in irregular:
        return irregular[word]
    for suffix, replacement in (("ies", "y"), ("ches", "ch"), ("shes", "sh"), ("sses", "ss"), ("xes", "x"),
                                ("ses", "s"), ("oes", "o")):
        if word.endswith(suffix) and len(word) > len(suffix) + 1:
            return word[: -len(suffix)] + replacement
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


@dataclass(frozen=True)
class ConceptTable:
    nouns: tuple[str, ...]  # one general noun per concept
    class_concept: np.ndarray  # (1000,) int: the concept of each class
    class_nouns: tuple[str, ...]  # each class's own plain name ("golden retriever")
    terms: dict  # word -> (indices of the classes it covers), every name and hypernym

    def concept_probs(self, probs: np.ndarray) -> np.ndarray:
        """Class probabilities (..., 1000) summed per concept (..., len(nouns))."""
        probs = np.asarray(probs, dtype=np.float64)
        flat = probs.reshape(-1, probs.shape[-1])
        out = np.zeros((len(flat), len(self.nouns)))
        for row, values in enumerate(flat):
            out[row] = np.bincount(self.class_concept, weights=values, minlength=len(self.nouns))
        return out.reshape(*probs.shape[:-1], len(self.nouns))

    def members(self, concept: int) -> np.ndarray:
        return np.flatnonzero(self.class_concept == concept)

    def term_classes(self, word: str) -> np.ndarray | None:
        """The classes a word (singular or plural, any case) stands for; None if the classifier has none."""
        word = " ".join(word.lower().split())
        for candidate in (word, singular(word)):
            if candidate in self.terms:
                return self.terms[candidate]
        return None


def _concept_noun(hypernyms: list[str], own: str) -> str:
    for word in hypernyms:
        if word not in SETTING_WORDS:
            return word
    return own


@lru_cache(maxsize=1)
def load_concepts() -> ConceptTable:
    class_names = load_class_names()
    synonyms = load_synonyms()
    own = [names[0] if names else synset.split(",")[0].strip()
           for names, synset in zip(clean_names(class_names, synonyms, 1), class_names)]
    nouns: list[str] = []
    index: dict[str, int] = {}
    class_concept = np.zeros(len(class_names), dtype=np.int64)
    terms: dict[str, set[int]] = {}
    for i, name in enumerate(own):
        hypernyms = synonyms["hypernyms"].get(str(i), [])
        noun = _concept_noun(hypernyms, name)
        class_concept[i] = index.setdefault(noun, len(nouns))
        if class_concept[i] == len(nouns):
            nouns.append(noun)
        words = {noun, name, *hypernyms, *synonyms["names"].get(str(i), [])}
        words.update(part.strip().lower() for part in class_names[i].split(",") if part.strip())
        for word in words:
            terms.setdefault(word.lower(), set()).add(i)
    frozen = {word: np.asarray(sorted(members)) for word, members in terms.items()}
    return ConceptTable(tuple(nouns), class_concept, tuple(own), frozen)
