"""BabyAI levels by name, made headless and quiet.

A level is named as the BabyAI papers do ("GoToLocal") or by its gymnasium id ("BabyAI-GoToLocal-v0").
minigrid's level generators print "Sampling rejected: ..." on stdout while they look for a valid
layout; that is kept out of our output.
"""
from __future__ import annotations

import contextlib
import io

from ..errors import SensoriumError

PREFIX, SUFFIX = "BabyAI-", "-v0"
# the levels issue 18 measures, easiest first
STANDARD_LEVELS = ("GoToRedBall", "GoToLocal", "PickupLoc", "PutNextLocal", "GoTo", "BossLevel")
INSTALL_HINT = "the agent needs minigrid: pip install 'sensorium[agent]'"


class AgentError(SensoriumError):
    """A level, a demonstrations folder or an agent that cannot be used as asked."""


def _gym():
    try:
        import gymnasium
        import minigrid  # noqa: F401 - registers the BabyAI levels with gymnasium
    except ImportError as exc:
        raise AgentError(f"{INSTALL_HINT} ({exc})") from exc
    return gymnasium


def known_levels() -> list[str]:
    gymnasium = _gym()
    return sorted(name[len(PREFIX):-len(SUFFIX)] for name in gymnasium.registry
                  if name.startswith(PREFIX) and name.endswith(SUFFIX))


def level_id(level: str) -> str:
    """The gymnasium id of `level`; AgentError naming close levels when there is none."""
    gymnasium = _gym()
    name = level if level.startswith(PREFIX) else f"{PREFIX}{level}{SUFFIX}"
    if name not in gymnasium.registry:
        import difflib

        close = difflib.get_close_matches(level.removeprefix(PREFIX).removesuffix(SUFFIX), known_levels(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(STANDARD_LEVELS)}, ..."
        raise AgentError(f"level {level!r}: no such BabyAI level{hint}")
    return name


def make_level(level: str):
    """A headless environment of `level` (rendering, when asked for, to RGB arrays), observing through
    `views.agent_view` (minigrid's view, computed 2.7-2.8x faster)."""
    from .views import install

    return install(_gym().make(level_id(level), render_mode="rgb_array"))


def quiet_reset(env, seed: int):
    """`env.reset(seed=seed)` without the level generator's "Sampling rejected" lines."""
    with contextlib.redirect_stdout(io.StringIO()):
        return env.reset(seed=seed)
