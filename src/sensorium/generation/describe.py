"""`describe`: one sentence about a photo, composed only from what the frozen experts found.

This is not a learned captioner. The ImageNet classifier's probabilities are summed into the
nouns people use (`concepts`), the person detector counts people, OCR reads text; each finding
keeps its confidence. A finding at or above `sure` is stated, one at or above `probable` is
stated with "probably", anything lower is left out (and listed in `left_out`, so a user can see
what was dropped and why). When nothing reaches `probable`, the sentence says it cannot tell:
saying nothing is better than inventing (CHAIR, benchmarks/quality/describe_coco.py).

    describer = Describer(bridge)                       # `describer.Describer`: an ImageBridge (image, text, people, OCR)
    description = describer.describe(pixels)            # Description(sentence, findings, left_out)
    description.sentence  # "A photo of a dog and probably a frisbee, with two people."
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum

import numpy as np

from .concepts import ConceptTable, load_concepts

CLASSIFIER, PERSON_DETECTOR, OCR = "classifier", "person detector", "ocr"
PEOPLE_NOUN = "person"
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
MAX_TEXT_CHARS = 80
VIEW_RULES = ("combined", "whole")


class Certainty(str, Enum):
    SURE = "sure"
    PROBABLY = "probably"
    LEFT_OUT = "left out"


@dataclass(frozen=True)
class DescribeOptions:
    """Thresholds of `describe`, chosen on the first 40 COCO-mini photos (benchmarks/quality/describe_coco.py
    --grid): `sure` is the lowest threshold at which what is stated as fact held no hallucinated COCO
    object there; `probable` keeps hedged mentions ("probably a sink") to about one wrong in five."""

    sure: float = 0.7
    probable: float = 0.3
    max_objects: int = 3  # things named at most (people and text come on top)
    ocr_min: float = 0.8  # OCR line confidence below which its text is left out
    views: str = "combined"  # "combined": whole photo and its crops as the bridge averages them; "whole"

    def __post_init__(self):
        if not 0.0 < self.probable <= self.sure <= 1.0:
            raise ValueError(f"thresholds: need 0 < probable <= sure <= 1, got probable={self.probable}, "
                             f"sure={self.sure}")
        if self.max_objects < 0:
            raise ValueError(f"max_objects: must be 0 or more, got {self.max_objects}")
        if self.views not in VIEW_RULES:
            raise ValueError(f"views: must be one of {VIEW_RULES}, got {self.views!r}")


@dataclass(frozen=True)
class Finding:
    expert: str  # CLASSIFIER, PERSON_DETECTOR or OCR
    noun: str  # "dog", "person"; the text itself for OCR
    words: str  # how the sentence says it: "a dog", "two people", '"OPEN"'
    confidence: float
    certainty: Certainty
    detail: str = ""  # the most likely class inside a concept ("golden retriever"), when it stands out

    def as_dict(self) -> dict:
        out = asdict(self)
        out["certainty"] = self.certainty.value
        out["confidence"] = round(self.confidence, 4)
        return out


@dataclass
class Description:
    sentence: str
    findings: list[Finding]  # what the sentence states, strongest first
    left_out: list[Finding] = field(default_factory=list)  # seen, below `probable`

    @property
    def nouns(self) -> list[str]:
        """The things (and people) the sentence mentions, for CHAIR."""
        return [f.noun for f in self.findings if f.expert != OCR]

    def as_dict(self) -> dict:
        return {"sentence": self.sentence, "findings": [f.as_dict() for f in self.findings],
                "left_out": [f.as_dict() for f in self.left_out],
                "method": "composed from the classifier, person detector and OCR findings (not a learned captioner)"}


def article(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def joined(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def certainty_of(confidence: float, options: DescribeOptions) -> Certainty:
    if confidence >= options.sure:
        return Certainty.SURE
    return Certainty.PROBABLY if confidence >= options.probable else Certainty.LEFT_OUT


def class_probs(evidence, combine, options: DescribeOptions) -> np.ndarray:
    """The class probabilities a description reads: the whole photo's, or its views combined by `combine`."""
    view_probs = np.atleast_2d(np.asarray(evidence.view_probs, dtype=np.float64))
    return view_probs[0] if options.views == "whole" else combine(view_probs)


def object_findings(probs: np.ndarray, table: ConceptTable, options: DescribeOptions) -> list[Finding]:
    """The strongest concepts, each with its confidence (the summed probability of its classes)."""
    concept_probs = table.concept_probs(probs)
    findings = []
    for concept in np.argsort(-concept_probs)[: options.max_objects + 3]:
        confidence = float(concept_probs[concept])
        if confidence < 0.02:
            break
        noun = table.nouns[concept]
        members = table.members(concept)
        best = members[np.argmax(probs[members])]
        detail = table.class_nouns[best] if (len(members) > 1 and probs[best] >= 0.6 * confidence
                                            and table.class_nouns[best] != noun) else ""
        findings.append(Finding(CLASSIFIER, noun, article(noun), confidence, certainty_of(confidence, options), detail))
    return findings


def people_finding(evidence, options: DescribeOptions) -> Finding | None:
    confidence = float(evidence.person_confidence)
    if confidence <= 0.0:
        return None
    count = evidence.people if evidence.faces else 1
    words = "a person" if count <= 1 else (f"{NUMBER_WORDS[count]} people" if count < len(NUMBER_WORDS)
                                          else "many people")
    return Finding(PERSON_DETECTOR, PEOPLE_NOUN, words, confidence, certainty_of(confidence, options))


def confident_lines(evidence, options: DescribeOptions) -> list:
    """The OCR lines read with at least `ocr_min` confidence."""
    return [line for line in evidence.ocr_lines if line.score >= options.ocr_min and line.text.strip()]


def text_finding(evidence, options: DescribeOptions) -> Finding | None:
    lines = confident_lines(evidence, options)
    if not lines:
        return None
    text = " ".join(line.text.strip() for line in lines)
    if len(text) > MAX_TEXT_CHARS:
        text = text[: MAX_TEXT_CHARS - 1].rstrip() + "…"
    confidence = float(np.mean([line.score for line in lines]))
    return Finding(OCR, text, f"“{text}”", confidence, Certainty.SURE)


def sentence_of(findings: list[Finding]) -> str:
    things = [f for f in findings if f.expert == CLASSIFIER]
    people = [f for f in findings if f.expert == PERSON_DETECTOR]
    texts = [f for f in findings if f.expert == OCR]
    sure = [f.words for f in things if f.certainty is Certainty.SURE]
    maybe = [f.words for f in things if f.certainty is Certainty.PROBABLY]
    if sure and maybe:
        sentence = f"A photo of {joined(sure)}, and probably {joined(maybe)}"
    elif sure:
        sentence = f"A photo of {joined(sure)}"
    elif maybe:
        sentence = f"Probably a photo of {joined(maybe)}"
    else:
        sentence = ""
    for person in people:
        hedge = "" if person.certainty is Certainty.SURE else "probably "
        sentence = f"{sentence}, with {hedge}{person.words}" if sentence else \
            f"{'A' if not hedge else 'Probably a'} photo of {person.words}"
    if not sentence:
        sentence = "I cannot tell what this photo shows"
    sentence += "."
    for text in texts:
        sentence += f" The text in it reads {text.words}."
    return sentence


def describe_evidence(evidence, combine, options: DescribeOptions | None = None,
                      table: ConceptTable | None = None) -> Description:
    """A Description of one photo from its `ImageEvidence`; `combine` averages its views' probabilities
    (`LabelBridge.combine_probs`)."""
    options = options or DescribeOptions()
    table = table or load_concepts()
    probs = class_probs(evidence, combine, options)
    candidates = object_findings(probs, table, options)
    kept = [f for f in candidates if f.certainty is not Certainty.LEFT_OUT][: options.max_objects]
    left_out = [f for f in candidates if f.certainty is Certainty.LEFT_OUT]
    people = people_finding(evidence, options)
    if people is not None:
        (left_out if people.certainty is Certainty.LEFT_OUT else kept).append(people)
    text = text_finding(evidence, options)
    if text is not None:
        kept.append(text)
    return Description(sentence_of(kept), kept, left_out)

