"""`ask` on real photos: the questions the experts' findings can support, and "cannot tell" for the rest.

A classifier that names the main thing in a photo cannot prove that something is absent, and
two classic person detectors miss many people, so "no" is never answered from them: a question
whose answer is not supported gets CANNOT_TELL with the reason. Supported:
- is there / are there / do you see / is this (a) X  -> "yes" / "probably" (X a word the classifier knows);
- how many people (men, women, faces ...)            -> a number, from the person detector;
- what does the sign / text say, what is written      -> the text OCR read;
- what is this / what do you see / describe the photo -> the description's things.

    answer_question("Is there a dog?", evidence, combine)   # Answer("yes", 0.93, "the classifier: dog 0.93", ...)
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass

import numpy as np

from .concepts import ConceptTable, load_concepts
from .describe import (CLASSIFIER, OCR, PERSON_DETECTOR, Certainty, DescribeOptions, certainty_of, class_probs,
                       confident_lines, describe_evidence, joined)

CANNOT_TELL = "cannot tell"
YES, PROBABLY = "yes", "probably"
MAX_QUESTION_CHARS = 512
EXIST, COUNT, READ, WHAT, UNSUPPORTED = "exist", "count", "read", "what", "unsupported"
PEOPLE_WORDS = frozenset({"person", "people", "man", "men", "woman", "women", "child", "children", "boy", "boys",
                          "girl", "girls", "kid", "kids", "face", "faces", "someone", "somebody", "anyone",
                          "anybody", "human", "humans", "persons", "player", "players"})
_PLACE = r"(?:\s+(?:in|on)\s+(?:the|this)\s+(?:photo|picture|image|photograph|scene|shot))?"
_EXIST = re.compile(r"^(?:is there|are there|do you see|can you see|is this|is that|is it|does it show|"
                    r"does (?:the|this) (?:photo|picture|image) (?:show|contain|have))\s+"
                    r"(?:(?:an?|any|some|the|one|two|several)\s+)?(?P<thing>[a-z][a-z \-]*?)" + _PLACE + r"$")
_COUNT = re.compile(r"^how many\s+(?P<thing>[a-z][a-z \-]*?)(?:\s+(?:are|is|can|do)\b.*)?$")
_READ = re.compile(r"^(?:what (?:does|do) (?:the |this |that |it )?(?:sign|text|label|board|screen|it|they)?\s*"
                   r"(?:say|read)s?|what is written.*|what(?:'s| is) the text.*|what text.*|read (?:the |this |it).*)$")
_WHAT = re.compile(r"^(?:what(?:'s| is) (?:this|that|it|in (?:the|this) (?:photo|picture|image))|what do you see|"
                   r"what can you see|describe (?:this|the|it).*|what(?:'s| is) (?:shown|happening).*)$")


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str
    confidence: float  # 0 for CANNOT_TELL
    reason: str  # which expert said what, or why the question cannot be answered
    type: str  # EXIST, COUNT, READ, WHAT or UNSUPPORTED

    def as_dict(self) -> dict:
        out = asdict(self)
        out["confidence"] = round(self.confidence, 4)
        return out


def check_question(question: str) -> str:
    """The question, trimmed; ValueError (naming the field) when it is empty or too long."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError("question: empty; ask something about the photo")
    if len(question) > MAX_QUESTION_CHARS:
        raise ValueError(f"question: over {MAX_QUESTION_CHARS} characters")
    return " ".join(question.split())


def is_latin(text: str) -> bool:
    """True when every letter is Latin script: questions are understood in English only."""
    return all("LATIN" in unicodedata.name(ch, "") for ch in text if ch.isalpha())


def parse_question(question: str) -> tuple[str, str]:
    """(type, thing): what kind of question this is and what it is about."""
    text = re.sub(r"[?!.]+$", "", question.strip().lower()).strip()
    text = text.replace("’", "'")
    for pattern, qtype in ((_COUNT, COUNT), (_READ, READ), (_WHAT, WHAT), (_EXIST, EXIST)):
        match = pattern.match(text)
        if match:
            return qtype, (match.groupdict().get("thing") or "").strip()
    return UNSUPPORTED, ""


def answer_question(question: str, evidence, combine, options: DescribeOptions | None = None,
                    table: ConceptTable | None = None) -> Answer:
    """Answer one question about one photo's `ImageEvidence` (see the module docstring)."""
    question = check_question(question)
    options = options or DescribeOptions()
    table = table or load_concepts()
    if not is_latin(question):
        return Answer(question, CANNOT_TELL, 0.0, "questions are understood in English only", UNSUPPORTED)
    qtype, thing = parse_question(question)
    if qtype == UNSUPPORTED:
        return Answer(question, CANNOT_TELL, 0.0, "not a question the experts can answer (supported: is there X, "
                      "how many people, what does the text say, what is this)", qtype)
    if qtype == READ:
        return _read(question, evidence, options)
    if qtype == WHAT:
        description = describe_evidence(evidence, combine, options, table)
        things = [f.words for f in description.findings if f.expert in (CLASSIFIER, PERSON_DETECTOR)]
        if not things:
            return Answer(question, CANNOT_TELL, 0.0, "no finding reached the 'probably' threshold", qtype)
        confidence = min(f.confidence for f in description.findings if f.expert != OCR)
        return Answer(question, joined(things), confidence, description.sentence, qtype)
    if thing in PEOPLE_WORDS or thing.split(" ")[-1] in PEOPLE_WORDS:
        return _people(question, qtype, evidence, options)
    if qtype == COUNT:
        return Answer(question, CANNOT_TELL, 0.0, f"only people are counted (the classifier does not count "
                      f"{thing})", qtype)
    classes = table.term_classes(thing)
    if classes is None:
        return Answer(question, CANNOT_TELL, 0.0, f"the classifier has no class for '{thing}'", qtype)
    probs = class_probs(evidence, combine, options)
    confidence = float(probs[classes].sum())
    best = table.class_nouns[classes[np.argmax(probs[classes])]]
    certainty = certainty_of(confidence, options)
    if certainty is Certainty.LEFT_OUT:
        return Answer(question, CANNOT_TELL, 0.0, f"the classifier gives '{thing}' {confidence:.2f}; it names only "
                      "the main things in a photo, so this is not a no", qtype)
    answer = YES if certainty is Certainty.SURE else PROBABLY
    return Answer(question, answer, confidence, f"the classifier: {best} {confidence:.2f}", qtype)


def _people(question: str, qtype: str, evidence, options: DescribeOptions) -> Answer:
    confidence = float(evidence.person_confidence)
    certainty = certainty_of(confidence, options)
    if certainty is Certainty.LEFT_OUT:
        return Answer(question, CANNOT_TELL, 0.0, "no person found; the detectors miss people who sit, turn away "
                      "or are small, so this is not a no", qtype)
    if qtype == COUNT:
        if not evidence.faces:
            return Answer(question, CANNOT_TELL, 0.0, "people are likely (from clothing) but none was located to "
                          "count", qtype)
        return Answer(question, str(len(evidence.faces)), confidence,
                      f"the person detector found {len(evidence.faces)} (it misses some)", qtype)
    answer = YES if certainty is Certainty.SURE else PROBABLY
    return Answer(question, answer, confidence, f"the person detector: {confidence:.2f}", qtype)


def _read(question: str, evidence, options: DescribeOptions) -> Answer:
    lines = confident_lines(evidence, options)
    if not lines:
        return Answer(question, CANNOT_TELL, 0.0, "no text was read in this photo", READ)
    text = " ".join(line.text.strip() for line in lines)
    return Answer(question, text, float(np.mean([line.score for line in lines])),
                  f"OCR read {len(lines)} line{'s' if len(lines) > 1 else ''}", READ)
