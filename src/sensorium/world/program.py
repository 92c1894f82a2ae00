"""Each question's functional program, and the executor that answers it on a scene.

CLEVR ships a program with every question (Johnson et al. 2017) so that models can be trained to
parse questions and execute them (Yi et al. 2018, NS-VQA), and so that answers can be checked.
Here too: every question the world asks carries its program as plain JSON, and `execute(program,
scene)` recomputes the answer from the objects alone. A test runs it on every question generated,
which checks the generator's answers by a second route.

Programs (filters are {attribute: value}; {} is any object):
    {"op": "exist", "filter": F}                  yes / no
    {"op": "count", "filter": F}                  "0" ... "10"
    {"op": "query", "attribute": A, "object": F}   the value of A of the one object F fits
    {"op": "same", "attribute": A, "objects": [F1, F2]}
    {"op": "more" | "fewer" | "equal", "filters": [F1, F2]}
    {"op": "relate", "relation": R, "objects": [F_subject, F_anchor]}
    {"op": "count_related", "relation": R, "filter": F, "anchor": F_anchor}
    {"op": "query_related", "attribute": A, "relation": R, "filter": F, "anchor": F_anchor}
An object filter that fits no object, or more than one, makes the answer "cannot tell".
"""
from __future__ import annotations

from collections.abc import Mapping

from .relations import Relation, relation_holds
from .scene import Scene, WorldObject
from .vocabulary import CANNOT_TELL, NO, YES, Attribute


def description(program_filter: Mapping[str, str]) -> dict:
    return {Attribute(a): v for a, v in program_filter.items()}


def as_filter(described: Mapping[Attribute, str]) -> dict:
    """A description as the JSON a program holds."""
    return {Attribute(a).value: v for a, v in described.items()}


class _Unanswerable(Exception):
    pass


def _one(scene: Scene, program_filter: Mapping[str, str], among: list[WorldObject] | None = None) -> WorldObject:
    fits = [o for o in (scene.objects if among is None else among) if o.matches(description(program_filter))]
    if len(fits) != 1:
        raise _Unanswerable
    return fits[0]


def _yes(value: bool) -> str:
    return YES if value else NO


def execute(program: Mapping, scene: Scene, looked_at: list[WorldObject] | None = None) -> str:
    """The answer `program` has on `scene`. With `looked_at`, the objects the answer rests on are
    appended to it (the grounding: the one object queried, the two compared, an anchor and the
    objects related to it, the objects counted)."""
    seen = looked_at if looked_at is not None else []
    before = len(seen)
    op = program["op"]
    try:
        if op == "exist":
            found = scene.matching(description(program["filter"]))
            seen += found
            return _yes(bool(found))
        if op == "count":
            found = scene.matching(description(program["filter"]))
            seen += found
            return str(len(found))
        if op == "query":
            obj = _one(scene, program["object"])
            seen.append(obj)
            return obj.value(program["attribute"])
        if op == "same":
            first, second = (_one(scene, f) for f in program["objects"])
            seen += [first, second]
            return _yes(first.value(program["attribute"]) == second.value(program["attribute"]))
        if op in ("more", "fewer", "equal"):
            groups = [scene.matching(description(f)) for f in program["filters"]]
            seen += groups[0] + groups[1]
            a, b = (len(group) for group in groups)
            return _yes(a > b if op == "more" else a < b if op == "fewer" else a == b)
        relation = Relation(program["relation"])
        if op == "relate":
            subject, anchor = (_one(scene, f) for f in program["objects"])
            seen += [subject, anchor]
            holds = relation_holds(subject, anchor, relation, scene.size)
            if holds is None:
                raise _Unanswerable
            return _yes(holds)
        anchor = _one(scene, program["anchor"])
        others = [o for o in scene.objects if o.id != anchor.id]
        if op == "count_related":
            fits = [o for o in others if o.matches(description(program["filter"]))]
            verdicts = [relation_holds(o, anchor, relation, scene.size) for o in fits]
            if any(v is None for v in verdicts):
                raise _Unanswerable
            seen += [anchor, *(o for o, v in zip(fits, verdicts) if v)]
            return str(sum(verdicts))
        if op == "query_related":
            verdicts = {o.id: relation_holds(o, anchor, relation, scene.size) for o in others}
            if any(v is None for v in verdicts.values()):
                raise _Unanswerable
            related = [o for o in others if verdicts[o.id]]
            obj = _one(scene, program["filter"], among=related)
            seen += [obj, anchor]
            return obj.value(program["attribute"])
    except _Unanswerable:
        del seen[before:]  # nothing is grounded when the question cannot be answered
        return CANNOT_TELL
    raise ValueError(f"unknown program op {op!r}")


# --- programs as fixed slots: what a parser that classifies each slot predicts ----------------------

NONE = "none"
FIRST, SECOND = "a", "b"  # the program's first and second object filter
SLOTS = ("op", "attribute", "relation",
         *(f"{side}.{attribute.value}" for side in (FIRST, SECOND) for attribute in Attribute))


def _filters(program: Mapping) -> tuple[dict, dict | None]:
    op = program["op"]
    if op in ("exist", "count"):
        return program["filter"], None
    if op == "query":
        return program["object"], None
    if op in ("same", "relate"):
        return program["objects"][0], program["objects"][1]
    if op in ("more", "fewer", "equal"):
        return program["filters"][0], program["filters"][1]
    return program["filter"], program["anchor"]  # count_related, query_related


def flatten(program: Mapping) -> dict[str, str]:
    """A program as one value per slot of `SLOTS` ("none" where it has nothing)."""
    first, second = _filters(program)
    slots = {"op": program["op"], "attribute": program.get("attribute", NONE),
             "relation": program.get("relation", NONE)}
    for side, found in ((FIRST, first), (SECOND, second)):
        for attribute in Attribute:
            slots[f"{side}.{attribute.value}"] = (found or {}).get(attribute.value, NONE)
    return slots


def unflatten(slots: Mapping[str, str]) -> dict:
    """The program a full set of slot values describes (the inverse of `flatten`)."""
    def side(name: str) -> dict:
        return {a.value: slots[f"{name}.{a.value}"] for a in Attribute if slots[f"{name}.{a.value}"] != NONE}

    op, first, second = slots["op"], side(FIRST), side(SECOND)
    needs_attribute = op in ("query", "same", "query_related")
    if needs_attribute and slots["attribute"] not in {a.value for a in Attribute}:
        raise ValueError(f"op {op!r} needs an attribute, got {slots['attribute']!r}")
    if op in ("relate", "count_related", "query_related") and slots["relation"] not in {r.value for r in Relation}:
        raise ValueError(f"op {op!r} needs a relation, got {slots['relation']!r}")
    if op in ("exist", "count"):
        return {"op": op, "filter": first}
    if op == "query":
        return {"op": op, "attribute": slots["attribute"], "object": first}
    if op == "same":
        return {"op": op, "attribute": slots["attribute"], "objects": [first, second]}
    if op in ("more", "fewer", "equal"):
        return {"op": op, "filters": [first, second]}
    if op == "relate":
        return {"op": op, "relation": slots["relation"], "objects": [first, second]}
    if op == "count_related":
        return {"op": op, "relation": slots["relation"], "filter": first, "anchor": second}
    if op == "query_related":
        return {"op": op, "attribute": slots["attribute"], "relation": slots["relation"], "filter": first,
                "anchor": second}
    raise ValueError(f"unknown program op {op!r}")
