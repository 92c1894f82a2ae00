"""Question answering on world pictures, grounded in the objects it found: detect, read, parse, execute.

The pipeline of NS-VQA (Yi et al. 2018) with every part learned here:
    picture  -> `ObjectDetector`    -> boxes
    each box -> `ObjectPerception`  -> shape (colour-blind), colour, size, material
             -> `render.place_from_box` -> where it stands (the camera is known)
    question -> `QuestionParser`    -> a program (`program.py`)
    program executed on the scene seen -> the answer, and the objects it rests on (their boxes)

"cannot tell" comes from the program, not from a guess: the object a question names is not
there, or more than one fits; a question with words the parser never saw is not answered either.

    vqa = WorldVQA.load("runs/vqa/vqa")
    answer = vqa.ask(pixels, "What colour is the large metal sphere?")
    answer.answer, answer.objects[0].box       # "red", (31.5, 40.0, 58.2, 66.9)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property, partial
from typing import Callable

import numpy as np

from .detector import Detection, ObjectDetector
from .doubt import DoubtOptions, sample_scenes, scene_of
from .files import VQA_HINT, SavedPipeline
from .parser import Parse, QuestionParser
from .perception import ObjectPerception, values_of
from .program import execute
from .scene import Scene, WorldObject
from .vocabulary import CANNOT_TELL

FORMAT, MANIFEST = "sensorium-world-vqa/1", "vqa.json"
RUN_DIR = "vqa"  # where `sensorium world train --model vqa` puts it in a run folder
MAX_QUESTION_CHARS = 500


@dataclass(frozen=True)
class SeenObject:
    """An object the answer rests on, as the models saw it."""

    box: tuple[float, float, float, float]
    shape: str
    colour: str
    size: str
    material: str
    score: float  # the detector's centre score
    certainty: float  # the least probability among its four attributes


@dataclass(frozen=True)
class WorldAnswer:
    question: str
    answer: str
    reason: str = ""  # why "cannot tell", in words
    program: dict | None = None
    objects: list[SeenObject] = field(default_factory=list)  # the grounding: what the answer looked at
    parse_confidence: float = 0.0
    confidence: float = 0.0  # the parse's confidence x the share of scenes it might have seen that agree (`doubt`)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class SeenScene:
    """A picture as the models saw it: a `Scene` to execute programs on, and each object's scores."""

    scene: Scene
    detections: list[Detection]
    certainties: list[float]
    draw: Callable[[], list[Scene]] | None = field(default=None, repr=False)  # `doubt.sample_scenes`, bound

    @cached_property
    def samples(self) -> list[Scene]:
        """The scenes the picture might show instead, drawn when an answer first needs its confidence
        (a picture perceived and never asked about, or asked only unparsable questions, costs none)."""
        return self.draw() if self.draw is not None else []

    def seen(self, obj: WorldObject) -> SeenObject:
        return SeenObject(tuple(obj.box), obj.shape, obj.colour, obj.size, obj.material,
                          self.detections[obj.id].score, self.certainties[obj.id])


def check_question(question: str) -> str:
    if not isinstance(question, str) or not question.strip():
        raise ValueError("question: empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise ValueError(f"question: longer than {MAX_QUESTION_CHARS} characters")
    return question.strip()


class WorldVQA(SavedPipeline):
    part_types = (ObjectDetector, ObjectPerception, QuestionParser)
    manifest, pipeline_format, run_dir, hint = MANIFEST, FORMAT, RUN_DIR, VQA_HINT

    def __init__(self, detector: ObjectDetector, perception: ObjectPerception, parser: QuestionParser,
                 doubt: DoubtOptions | None = None):
        self.detector, self.perception, self.parser = detector, perception, parser
        self.doubt = doubt or DoubtOptions()

    def perceive(self, images: list[np.ndarray]) -> list[SeenScene]:
        """Each picture's objects: found, read, placed; and the scenes it might show instead (`doubt`).
        Nothing comes from annotations."""
        threshold, low = self.detector.config.threshold, min(self.doubt.low, self.detector.config.threshold)
        found = self.detector.detect(images, threshold=low)
        scenes = []
        for picture, candidates, rows in zip(images, found, self.perception.read_found(images, found)):
            sure = [i for i, c in enumerate(candidates) if c.score > threshold]
            reads = [values_of(rows[i]) for i in sure]
            detections = [candidates[i] for i in sure]
            scene = scene_of(picture.shape[1], detections,
                             [{name: value for name, (value, _) in read.items()} for read in reads])
            certainties = [min(p for _, p in read.values()) for read in reads]
            draw = partial(sample_scenes, picture.shape[1], candidates, rows, threshold, self.doubt)
            scenes.append(SeenScene(scene, detections, certainties, draw))
        return scenes

    def answer_seen(self, seen: SeenScene, question: str, parse: Parse) -> WorldAnswer:
        if parse.unknown_words:
            words = ", ".join(repr(w) for w in parse.unknown_words[:5])
            return WorldAnswer(question, CANNOT_TELL, f"words the model never learned: {words}",
                               parse_confidence=parse.confidence)
        if parse.program is None:
            return WorldAnswer(question, CANNOT_TELL, "the question is not one the model can parse "
                               "(it reads questions about the world's shapes, colours, sizes and materials)",
                               parse_confidence=parse.confidence)
        looked_at: list[WorldObject] = []
        answer = execute(parse.program, seen.scene, looked_at)
        reason = ("no single object fits what the question names, or its place cannot be judged"
                  if answer == CANNOT_TELL else "")
        objects = [seen.seen(o) for o in {o.id: o for o in looked_at}.values()]
        agree = [execute(parse.program, scene) == answer for scene in seen.samples]
        confidence = parse.confidence * (float(np.mean(agree)) if agree else 1.0)
        return WorldAnswer(question, answer, reason, parse.program, objects, parse.confidence, round(confidence, 4))

    def ask(self, picture: np.ndarray, question: str) -> WorldAnswer:
        """One question about one picture; ValueError for an empty question (before any model runs)."""
        question = check_question(question)
        [seen] = self.perceive([picture])
        [parse] = self.parser.parse([question])
        return self.answer_seen(seen, question, parse)

    def ask_many(self, pictures: list[np.ndarray], questions: list[list[str]]) -> list[list[WorldAnswer]]:
        """Questions per picture; each picture is perceived once, all questions parsed in one batch."""
        questions = [[check_question(q) for q in qs] for qs in questions]
        seen = self.perceive(pictures)
        parses = iter(self.parser.parse([q for qs in questions for q in qs])) if any(questions) else iter(())
        return [[self.answer_seen(s, q, next(parses)) for q in qs] for s, qs in zip(seen, questions)]

    def parts(self) -> tuple:
        return self.detector, self.perception, self.parser
