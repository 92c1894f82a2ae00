"""BabyAI missions said the way the bot's grammar never says them: synonyms and another word order.

The level generator speaks one fixed grammar ("go to the red ball", "pick up a key on your left",
"put the box next to the blue door, then open a door"). A person would also say "walk to the ball
that is red" or "grab a key to your left". Evaluating on such rewordings measures whether a policy
understood the instruction or memorised its surface (issue 18: paraphrased missions within 10 points
of the plain ones).

Every reworded phrase is chosen by a random generator, so an evaluation seed always gets the same
paraphrase. The bot's own words never come back unchanged from `paraphrase` where the grammar
offers an alternative: verbs, locations and connectives always change; a description's word order
changes half the time.
"""
from __future__ import annotations

import re

import numpy as np

COLOURS = ("red", "green", "blue", "purple", "yellow", "grey")
TYPES = ("ball", "box", "key", "door", "object")
# the bot's phrase -> what a person might say instead
VERBS = {
    "go to": ("walk to", "head to", "move to", "navigate to", "get to"),
    "pick up": ("grab", "take", "collect", "lift"),
    "open": ("unlock and open", "swing open", "push open"),
    "put": ("place", "move", "set"),
}
RELATIONS = {"next to": ("beside", "close to", "near")}
LOCATIONS = {
    "in front of you": ("ahead of you", "straight ahead"),
    "behind you": ("at your back", "back behind you"),
    "on your left": ("to your left", "at your left"),
    "on your right": ("to your right", "at your right"),
}
CONNECTIVES = {", then": (" and then", ", after that"), " after you": (" once you", " as soon as you"),
               " and": (" and also", ", and")}

_DESCRIPTION = re.compile(r"\b(the|a) (?:(%s) )?(%s)\b" % ("|".join(COLOURS), "|".join(TYPES)))


def _phrases(table: dict[str, tuple[str, ...]]) -> tuple[re.Pattern, dict[str, tuple[str, ...]]]:
    """A pattern matching any of `table`'s phrases as whole words (longest first), with the table."""
    return re.compile("|".join((r"\b" if k[0].isalpha() else "") + re.escape(k) + r"\b"
                               for k in sorted(table, key=len, reverse=True))), table


# verbs last: no synonym before them contains one
_STAGES = tuple(_phrases(table) for table in (LOCATIONS, RELATIONS, CONNECTIVES, VERBS))


def _reword(text: str, pattern: re.Pattern, table: dict[str, tuple[str, ...]], rng: np.random.Generator) -> str:
    return pattern.sub(lambda m: table[m.group(0)][int(rng.integers(len(table[m.group(0)])))], text)


def _reorder(match: re.Match, rng: np.random.Generator) -> str:
    article, colour, kind = match.groups()
    if not colour or rng.random() < 0.5:
        return match.group(0)
    return f"{article} {kind} that is {colour}"


def paraphrase(mission: str, rng: np.random.Generator) -> str:
    """`mission` in other words: verbs, relations, locations and connectives by synonyms, and "the red
    ball" as "the ball that is red" about half the time."""
    text = _DESCRIPTION.sub(lambda m: _reorder(m, rng), mission)
    for pattern, table in _STAGES:
        text = _reword(text, pattern, table, rng)
    return text
