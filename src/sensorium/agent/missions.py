"""Missions held out of training, to measure generalisation as the BabyAI papers ask: does a policy
that learnt "purple key" and "yellow ball" also follow "go to the purple ball", a combination it
never saw?

A held-out phrase is a word sequence ("purple ball"); a mission mentions it when the words follow
each other there ("go to a purple ball", "put the purple ball next to the grey key"). Training drops
the demonstrations whose missions mention one; evaluation can keep to those missions, or to the rest,
by scanning seeds past the demonstrations' until enough of the asked kind turn up.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from enum import Enum

from .levels import AgentError, make_level, quiet_reset

SCAN_LIMIT = 200  # seeds looked at per episode asked for, before giving up on a mission kind too rare


def mission_words(mission: str) -> list[str]:
    """A mission's lower-case words, as the policy reads them (no torch here: the CLI imports this)."""
    return re.findall(r"[a-z]+", mission.lower())


class MissionKind(str, Enum):
    """Which missions an evaluation runs on, against the phrases a policy's training held out."""
    ALL = "all"
    SEEN = "seen"  # none of the held-out phrases: combinations like those trained on
    HELD_OUT = "held-out"  # at least one held-out phrase: a combination never seen in training


def phrases(values: Iterable[str]) -> tuple[str, ...]:
    """Held-out phrases as given ("purple ball", or several in one string split by commas), each
    normalised to its lower-case words; AgentError for one without words."""
    out: list[str] = []
    for value in values:
        for part in str(value).split(","):
            words = mission_words(part)
            if not words:
                raise AgentError(f"held-out phrase {part!r}: holds no words (give e.g. 'purple ball')")
            out.append(" ".join(words))
    return tuple(dict.fromkeys(out))


def mentions(mission: str, held_out: tuple[str, ...]) -> bool:
    """Whether any phrase's words follow each other in `mission`."""
    padded = f" {' '.join(mission_words(mission))} "
    return any(f" {phrase} " in padded for phrase in held_out)


def wanted(kind: MissionKind, held_out: tuple[str, ...]) -> Callable[[str], bool]:
    """The test a mission must pass to be evaluated under `kind`."""
    if kind is not MissionKind.ALL and not held_out:
        raise AgentError(f"missions {kind.value!r}: this policy's training held no mission out "
                         "(train with --hold-out 'purple ball' to measure generalisation)")
    if kind is MissionKind.HELD_OUT:
        return lambda mission: mentions(mission, held_out)
    if kind is MissionKind.SEEN:
        return lambda mission: not mentions(mission, held_out)
    return lambda mission: True


def seeds_with_missions(level: str, candidates: Iterable[int], count: int, keep: Callable[[str], bool]) -> list[int]:
    """The first `count` seeds of `candidates` whose mission passes `keep` (each level reset once)."""
    env, found, looked = make_level(level), [], 0
    try:
        for seed in candidates:
            if len(found) == count:
                break
            looked += 1
            if looked > SCAN_LIMIT * count:
                break
            if keep(quiet_reset(env, seed)[0]["mission"]):
                found.append(seed)
    finally:
        env.close()
    if len(found) < count:
        raise AgentError(f"{level}: only {len(found)} of {looked} seeds looked at have the missions asked for "
                         f"({count} wanted); does the level ever ask for them?")
    return found
