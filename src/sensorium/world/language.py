"""Captions and questions about a scene, each true by construction against its exact annotations.

Every sentence is built from the objects it talks about, so its truth is known, not hoped for:
a caption's counts are the scene's counts, a relation is stated only when it holds by a clear
margin (`relations`), and a question refers to "the red cube"
only when exactly one object fits. Each caption lists what it mentions (description, count, object
ids), which is what a hallucination score (CHAIR) compares a generated caption against.

Question families follow CLEVR (Johnson et al. 2017): exist, count, query an attribute, compare an
attribute, compare counts, spatial relation; and one more, unanswerable: the same templates asking
about an object that is not in the scene, whose answer is the explicit abstention `CANNOT_TELL`.
"""
from __future__ import annotations

import itertools
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from .program import as_filter
from .relations import Relation, relation_holds
from .scene import Scene, WorldObject
from .vocabulary import (ADJECTIVE_ORDER, CANNOT_TELL, GENERIC_NOUNS, NO, NUMBER_WORDS, PLURALS, SYNONYMS, VALUES,
                         YES, Attribute)

Description = dict  # Attribute -> canonical value; empty: any object



class Family(str, Enum):
    EXIST = "exist"
    COUNT = "count"
    QUERY = "query_attribute"
    COMPARE_ATTRIBUTE = "compare_attribute"
    COMPARE_COUNT = "compare_count"
    RELATION = "relation"
    UNANSWERABLE = "unanswerable"


# Families whose answer needs two objects or groups related to each other (Sort-of-CLEVR's split).
RELATIONAL = frozenset({Family.COMPARE_ATTRIBUTE, Family.COMPARE_COUNT, Family.RELATION})
FAMILY_WEIGHTS = {Family.EXIST: 1.0, Family.COUNT: 1.0, Family.QUERY: 1.5, Family.COMPARE_ATTRIBUTE: 1.0,
                  Family.COMPARE_COUNT: 0.75, Family.RELATION: 1.5, Family.UNANSWERABLE: 1.0}


RELATION_WORDS = {Relation.LEFT: "to the left of", Relation.RIGHT: "to the right of",
                  Relation.FRONT: "in front of", Relation.BEHIND: "behind"}


@dataclass
class Caption:
    text: str
    template: str
    mentions: list[dict] = field(default_factory=list)  # {"description", "count", "objects"[, "relation"]}

    def to_json(self) -> dict:
        return {"text": self.text, "template": self.template, "mentions": self.mentions}


@dataclass
class Question:
    text: str
    answer: str
    family: Family
    template: str
    objects: list[int] = field(default_factory=list)  # the objects the answer is about (grounding truth)
    program: dict = field(default_factory=dict)  # what answers it (`world.program`), as JSON

    @property
    def relational(self) -> bool:
        return self.family in RELATIONAL

    @property
    def answerable(self) -> bool:
        return self.answer != CANNOT_TELL

    def to_json(self) -> dict:
        return {"question": self.text, "answer": self.answer, "family": self.family.value,
                "template": self.template, "relational": self.relational, "answerable": self.answerable,
                "objects": self.objects, "program": self.program}


def language_rng(seed: int, index: int) -> random.Random:
    """The random stream of the sentences about scene `index` of a dataset seeded `seed` (apart from the
    picture's, so changing a template never moves an object). Python's generator: the language draws
    one choice at a time, where numpy's per-call cost would dominate."""
    return random.Random(f"sensorium-world/{int(seed)}/{int(index)}")


# --- words -----------------------------------------------------------------------------------------

def _pick(rng: random.Random, options):
    return options[rng.randrange(len(options))]


def noun_phrase(description: Mapping[Attribute, str], rng: random.Random, plural: bool = False,
                vary: bool = True) -> str:
    """"small metal spheres", "red thing": adjectives in a fixed order, then the shape or a generic noun."""
    words = []
    for attribute in ADJECTIVE_ORDER:
        value = description.get(attribute)
        if value is not None:
            words.append(_pick(rng, SYNONYMS[value]) if vary else value)
    shape = description.get(Attribute.SHAPE)
    noun = (_pick(rng, SYNONYMS[shape]) if vary else shape) if shape else _pick(rng, GENERIC_NOUNS)
    words.append(PLURALS[noun] if plural else noun)
    return " ".join(words)


def article(phrase: str) -> str:
    """"red cube" -> "a red cube", "orange" -> "an orange"."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _capital(text: str) -> str:
    return text[0].upper() + text[1:]


def describe(obj: WorldObject, attributes) -> Description:
    return {a: obj.value(a) for a in attributes}


def _subsets(attributes, rng: random.Random, must: Attribute | None = None):
    """Subsets of `attributes`, smallest first, in random order within a size."""
    attributes = list(attributes)
    for k in range(0, len(attributes) + 1):
        combos = [c for c in itertools.combinations(attributes, k) if must is None or must in c]
        rng.shuffle(combos)
        yield from combos


def unique_description(scene: Scene, obj: WorldObject, rng: random.Random,
                       without: Attribute | None = None, among: list[WorldObject] | None = None) -> Description | None:
    """The shortest description that fits `obj` and no other object of `among` (default: the scene)."""
    among = scene.objects if among is None else among
    usable = [a for a in Attribute if a != without]
    for subset in _subsets(usable, rng):
        description = describe(obj, subset)
        if [o.id for o in among if o.matches(description)] == [obj.id]:
            return description
    return None


def random_description(rng: random.Random, sizes=(1, 2, 3), must_shape: bool = False) -> Description:
    attributes = list(Attribute)
    k = int(_pick(rng, sizes))
    chosen = [Attribute.SHAPE] if must_shape else []
    rest = [a for a in attributes if a not in chosen]
    chosen += rng.sample(rest, max(k - len(chosen), 0))
    return {a: str(_pick(rng, VALUES[a])) for a in chosen}


def partial_description(obj: WorldObject, rng: random.Random, sizes=(1, 2, 3),
                        must_shape: bool = False) -> Description:
    """Some of the object's own attributes: a description that fits it, and maybe others."""
    template = random_description(rng, sizes, must_shape)
    return describe(obj, template.keys())


# --- captions --------------------------------------------------------------------------------------

def _mention(description: Description, objects: list[WorldObject], **extra) -> dict:
    return {"description": {a.value: v for a, v in description.items()}, "count": len(objects),
            "objects": [o.id for o in objects], **extra}


def _caption_object(scene: Scene, rng) -> Caption | None:
    obj = _pick(rng, scene.objects)
    description = partial_description(obj, rng, must_shape=True)
    phrase = article(noun_phrase(description, rng))
    text = _pick(rng, ["{}", "there is {}", "{} on the floor"]).format(phrase)
    return Caption(text, "object", [_mention(description, [obj])])


def _count_words(count: int, phrase_one: str, phrase_many: str) -> str:
    return article(phrase_one) if count == 1 else f"{NUMBER_WORDS[count]} {phrase_many}"


def _caption_count(scene: Scene, rng) -> Caption | None:
    description = partial_description(_pick(rng, scene.objects), rng, sizes=(1, 2, 3), must_shape=True)
    group = scene.matching(description)
    one, many = noun_phrase(description, rng), noun_phrase(description, rng, plural=True)
    if len(group) == 1:
        text = _pick(rng, ["exactly one {}", "a single {}", "only one {}"]).format(one)
    else:
        text = _pick(rng, ["{} {}", "there are {} {}"]).format(NUMBER_WORDS[len(group)], many)
    return Caption(text, "count", [_mention(description, group)])


def _caption_relation(scene: Scene, rng) -> Caption | None:
    width = scene.size
    for _ in range(6):
        anchor = _pick(rng, scene.objects)
        anchor_description = unique_description(scene, anchor, rng)
        if anchor_description is None:
            continue
        relation = _pick(rng, list(Relation))
        related = [o for o in scene.objects if o.id != anchor.id and relation_holds(o, anchor, relation, width)]
        if not related:
            continue
        description = partial_description(_pick(rng, related), rng, sizes=(1, 2, 3), must_shape=True)
        group = [o for o in scene.objects if o.id != anchor.id and o.matches(description)]
        verdicts = [relation_holds(o, anchor, relation, width) for o in group]
        if any(v is None for v in verdicts):
            continue
        chosen = [o for o, v in zip(group, verdicts) if v]
        subject = _count_words(len(chosen), noun_phrase(description, rng), noun_phrase(description, rng, plural=True))
        text = f"{subject} {RELATION_WORDS[relation]} {article(noun_phrase(anchor_description, rng))}"
        if len(chosen) < len(group):
            continue  # "two spheres left of the cube" would hide a third sphere on the right: say it only when all are
        return Caption(text, "relation", [_mention(description, chosen, relation=relation.value, anchor=anchor.id),
                                          _mention(anchor_description, [anchor])])
    return None


def _caption_pair(scene: Scene, rng) -> Caption | None:
    if len(scene.objects) < 2:
        return None
    first, second = rng.sample(scene.objects, 2)
    d1, d2 = (partial_description(o, rng, must_shape=True) for o in (first, second))
    text = f"{article(noun_phrase(d1, rng))} and {article(noun_phrase(d2, rng))}"
    return Caption(text, "pair", [_mention(d1, [first]), _mention(d2, [second])])


def _caption_inventory(scene: Scene, rng) -> Caption | None:
    total = len(scene.objects)
    shapes: dict[str, list[WorldObject]] = {}
    for obj in scene.objects:
        shapes.setdefault(obj.shape, []).append(obj)
    parts = [_count_words(len(group), noun_phrase({Attribute.SHAPE: shape}, rng),
                          noun_phrase({Attribute.SHAPE: shape}, rng, plural=True))
             for shape, group in shapes.items()]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    head = _pick(rng, ["{} objects", "a scene with {} objects"]).format(NUMBER_WORDS[total])
    return Caption(f"{head}: {listed}", "inventory",
                   [_mention({Attribute.SHAPE: shape}, group) for shape, group in shapes.items()])


CAPTION_TEMPLATES = (_caption_object, _caption_count, _caption_relation, _caption_pair, _caption_inventory)


def captions(scene: Scene, count: int, rng: random.Random) -> list[Caption]:
    """`count` different true captions of the scene, from templates taken in turn from a random start."""
    found: list[Caption] = []
    seen: set[str] = set()
    start = rng.randrange(len(CAPTION_TEMPLATES))
    for step in range(count * 6):
        if len(found) == count:
            break
        caption = CAPTION_TEMPLATES[(start + step) % len(CAPTION_TEMPLATES)](scene, rng)
        if caption is not None and caption.text not in seen:
            seen.add(caption.text)
            found.append(caption)
    return found


# --- questions -------------------------------------------------------------------------------------

QUERY_TEMPLATES = {
    Attribute.COLOUR: ("What colour is the {}?", "What is the colour of the {}?", "The {} is what colour?"),
    Attribute.SHAPE: ("What shape is the {}?", "What is the shape of the {}?"),
    Attribute.SIZE: ("What size is the {}?", "How big is the {}?"),
    Attribute.MATERIAL: ("What material is the {} made of?", "What is the {} made of?"),
}
SAME_TEMPLATES = {
    Attribute.COLOUR: ("Is the {} the same colour as the {}?", "Does the {} have the same colour as the {}?"),
    Attribute.SHAPE: ("Is the {} the same shape as the {}?", "Does the {} have the same shape as the {}?"),
    Attribute.SIZE: ("Is the {} the same size as the {}?", "Does the {} have the same size as the {}?"),
    Attribute.MATERIAL: ("Is the {} made of the same material as the {}?",
                         "Does the {} have the same material as the {}?"),
}


def _yes(value: bool) -> str:
    return YES if value else NO


def _ask_exist(scene: Scene, rng) -> Question | None:
    if rng.random() < 0.5:
        description = partial_description(_pick(rng, scene.objects), rng)
    else:
        description = random_description(rng)
    group = scene.matching(description)
    template = _pick(rng, ["Is there a {}?", "Are there any {}?", "Is there any {} in the scene?"])
    phrase = noun_phrase(description, rng, plural="any {}?" in template and "in the scene" not in template)
    text = template.format(phrase).replace("Is there a a", "Is there an a")
    if template.startswith("Is there a ") and phrase[0] in "aeiou":
        text = "Is there an " + text[len("Is there a "):]
    return Question(text, _yes(bool(group)), Family.EXIST, "exist", [o.id for o in group],
                    {"op": "exist", "filter": as_filter(description)})


def _ask_count(scene: Scene, rng) -> Question | None:
    roll = rng.random()
    if roll < 0.1:
        description = {}
    elif roll < 0.75:
        description = partial_description(_pick(rng, scene.objects), rng, sizes=(1, 2))
    else:
        description = random_description(rng, sizes=(1, 2))
    group = scene.matching(description)
    template = _pick(rng, ["How many {} are there?", "What number of {} are there?", "How many {} are in the scene?"])
    return Question(template.format(noun_phrase(description, rng, plural=True)), str(len(group)), Family.COUNT,
                    "count", [o.id for o in group], {"op": "count", "filter": as_filter(description)})


def _ask_query(scene: Scene, rng) -> Question | None:
    for _ in range(6):
        obj = _pick(rng, scene.objects)
        attribute = _pick(rng, list(Attribute))
        description = unique_description(scene, obj, rng, without=attribute)
        if description is None:
            continue
        text = _pick(rng, QUERY_TEMPLATES[attribute]).format(noun_phrase(description, rng))
        return Question(_capital(text), obj.value(attribute), Family.QUERY, f"query_{attribute.value}", [obj.id],
                        {"op": "query", "attribute": attribute.value, "object": as_filter(description)})
    return None


def _ask_compare_attribute(scene: Scene, rng) -> Question | None:
    if len(scene.objects) < 2:
        return None
    for _ in range(6):
        attribute = _pick(rng, list(Attribute))
        first = _pick(rng, scene.objects)
        others = [o for o in scene.objects if o.id != first.id]
        same = [o for o in others if o.value(attribute) == first.value(attribute)]
        second = _pick(rng, same) if same and rng.random() < 0.5 else _pick(rng, others)
        d1 = unique_description(scene, first, rng, without=attribute)
        d2 = unique_description(scene, second, rng, without=attribute)
        if d1 is None or d2 is None:
            continue
        text = _pick(rng, SAME_TEMPLATES[attribute]).format(noun_phrase(d1, rng), noun_phrase(d2, rng))
        answer = _yes(first.value(attribute) == second.value(attribute))
        return Question(text, answer, Family.COMPARE_ATTRIBUTE, f"same_{attribute.value}", [first.id, second.id],
                        {"op": "same", "attribute": attribute.value, "objects": [as_filter(d1), as_filter(d2)]})
    return None


def _ask_compare_count(scene: Scene, rng) -> Question | None:
    for _ in range(6):
        d1 = partial_description(_pick(rng, scene.objects), rng, sizes=(1, 2))
        d2 = partial_description(_pick(rng, scene.objects), rng, sizes=(1, 2))
        if d1 == d2:
            continue
        g1, g2 = scene.matching(d1), scene.matching(d2)
        p1, p2 = noun_phrase(d1, rng, plural=True), noun_phrase(d2, rng, plural=True)
        kind = _pick(rng, ["more", "fewer", "equal"])
        if kind == "more":
            text, answer = f"Are there more {p1} than {p2}?", len(g1) > len(g2)
        elif kind == "fewer":
            text, answer = f"Are there fewer {p1} than {p2}?", len(g1) < len(g2)
        else:
            text = _pick(rng, [f"Are there as many {p1} as {p2}?",
                               f"Is the number of {p1} the same as the number of {p2}?"])
            answer = len(g1) == len(g2)
        return Question(text, _yes(answer), Family.COMPARE_COUNT, f"count_{kind}", sorted({o.id for o in g1 + g2}),
                        {"op": kind, "filters": [as_filter(d1), as_filter(d2)]})
    return None


def _ask_relation(scene: Scene, rng) -> Question | None:
    if len(scene.objects) < 2:
        return None
    width = scene.size
    kind = _pick(rng, ["verify", "count", "query"])
    for _ in range(8):
        anchor = _pick(rng, scene.objects)
        relation = _pick(rng, list(Relation))
        anchor_description = unique_description(scene, anchor, rng)
        if anchor_description is None:
            continue
        anchor_phrase = noun_phrase(anchor_description, rng)
        where = RELATION_WORDS[relation]
        others = [o for o in scene.objects if o.id != anchor.id]
        if kind == "verify":
            subject = _pick(rng, others)
            holds = relation_holds(subject, anchor, relation, width)
            subject_description = unique_description(scene, subject, rng)
            if holds is None or subject_description is None:
                continue
            text = f"Is the {noun_phrase(subject_description, rng)} {where} the {anchor_phrase}?"
            return Question(text, _yes(holds), Family.RELATION, f"relation_{relation.value}", [subject.id, anchor.id],
                            {"op": "relate", "relation": relation.value,
                             "objects": [as_filter(subject_description), as_filter(anchor_description)]})
        if kind == "count":
            description = {} if rng.random() < 0.4 else partial_description(_pick(rng, others), rng, sizes=(1, 2))
            group = [o for o in others if o.matches(description)]
            verdicts = [relation_holds(o, anchor, relation, width) for o in group]
            if any(v is None for v in verdicts):
                continue
            chosen = [o.id for o, v in zip(group, verdicts) if v]
            text = f"How many {noun_phrase(description, rng, plural=True)} are {where} the {anchor_phrase}?"
            return Question(text, str(len(chosen)), Family.RELATION, f"relation_count_{relation.value}",
                            chosen + [anchor.id], {"op": "count_related", "relation": relation.value,
                                                   "filter": as_filter(description),
                                                   "anchor": as_filter(anchor_description)})
        verdicts = {o.id: relation_holds(o, anchor, relation, width) for o in others}
        if any(v is None for v in verdicts.values()):
            continue
        related = [o for o in others if verdicts[o.id]]
        if not related:
            continue
        subject = _pick(rng, related)
        attribute = _pick(rng, list(Attribute))
        description = unique_description(scene, subject, rng, without=attribute, among=related)
        if description is None:
            continue
        phrase = f"{noun_phrase(description, rng)} {where} the {anchor_phrase}"
        text = _capital(_pick(rng, QUERY_TEMPLATES[attribute]).format(phrase))
        return Question(text, subject.value(attribute), Family.RELATION, f"relation_query_{relation.value}",
                        [subject.id, anchor.id], {"op": "query_related", "attribute": attribute.value,
                                                  "relation": relation.value, "filter": as_filter(description),
                                                  "anchor": as_filter(anchor_description)})
    return None


def _absent_description(scene: Scene, rng, without: Attribute | None = None) -> Description | None:
    """A description (with a shape unless the shape is asked) that fits no object of the scene."""
    for _ in range(20):
        description = random_description(rng, sizes=(1, 2, 3), must_shape=without != Attribute.SHAPE)
        description.pop(without, None)
        if description and not scene.matching(description):
            return description
    return None


def _ask_unanswerable(scene: Scene, rng) -> Question | None:
    kind = _pick(rng, ["query", "compare", "relation"])
    attribute = _pick(rng, list(Attribute))
    absent = _absent_description(scene, rng, without=attribute if kind != "relation" else None)
    if absent is None:
        return None
    phrase = noun_phrase(absent, rng)
    if kind == "query":
        return Question(_capital(_pick(rng, QUERY_TEMPLATES[attribute]).format(phrase)), CANNOT_TELL,
                        Family.UNANSWERABLE, f"absent_query_{attribute.value}", [],
                        {"op": "query", "attribute": attribute.value, "object": as_filter(absent)})
    real = _pick(rng, scene.objects)
    real_description = unique_description(scene, real, rng, without=attribute if kind == "compare" else None)
    if real_description is None:
        return None
    pair = [(phrase, absent), (noun_phrase(real_description, rng), real_description)]
    if rng.random() < 0.5:
        pair.reverse()
    filters = [as_filter(d) for _, d in pair]
    if kind == "compare":
        text = _pick(rng, SAME_TEMPLATES[attribute]).format(pair[0][0], pair[1][0])
        return Question(text, CANNOT_TELL, Family.UNANSWERABLE, f"absent_same_{attribute.value}", [real.id],
                        {"op": "same", "attribute": attribute.value, "objects": filters})
    relation = _pick(rng, list(Relation))
    text = f"Is the {pair[0][0]} {RELATION_WORDS[relation]} the {pair[1][0]}?"
    return Question(text, CANNOT_TELL, Family.UNANSWERABLE, f"absent_relation_{relation.value}", [real.id],
                    {"op": "relate", "relation": relation.value, "objects": filters})


ASK = {Family.EXIST: _ask_exist, Family.COUNT: _ask_count, Family.QUERY: _ask_query,
       Family.COMPARE_ATTRIBUTE: _ask_compare_attribute, Family.COMPARE_COUNT: _ask_compare_count,
       Family.RELATION: _ask_relation, Family.UNANSWERABLE: _ask_unanswerable}


def _balanced(family: Family, scene: Scene, rng: random.Random) -> Question | None:
    """A question of `family`; for yes/no questions the answer is drawn first (even odds) and questions
    are drawn until one has it, so that a model cannot score by always saying "yes" (CLEVR balances
    its answers for the same reason). Scenes where one answer is rare fall back to what comes."""
    ask = ASK[family]
    question = ask(scene, rng)
    if question is None or question.answer not in (YES, NO):
        return question
    wanted = _pick(rng, (YES, NO))
    for _ in range(BALANCE_TRIES):
        if question is not None and question.answer == wanted:
            return question
        question = ask(scene, rng)
    return question


BALANCE_TRIES = 8


def questions(scene: Scene, count: int, rng: random.Random,
              weights: Mapping[Family, float] = FAMILY_WEIGHTS) -> list[Question]:
    """Up to `count` different questions with their answers, families drawn by `weights`."""
    families = [f for f in Family if weights.get(f, 0) > 0]
    chances = [weights[f] for f in families]
    found: list[Question] = []
    seen: set[str] = set()
    for _ in range(count * 4):
        if len(found) == count:
            break
        question = _balanced(rng.choices(families, chances)[0], scene, rng)
        if question is not None and question.text not in seen:
            seen.add(question.text)
            found.append(question)
    return found
