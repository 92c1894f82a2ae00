"""The agent's view computed directly (`sensorium.agent.views`) equals minigrid's own, cell for cell:
walls and closed doors hide what is behind them, the grid's edge reads as wall, the agent sees what it
carries, whichever way it faces, on every level issue 18 measures."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("minigrid", reason="the agent extra (minigrid) is not installed")

from sensorium.agent.levels import STANDARD_LEVELS, make_level, quiet_reset  # noqa: E402
from sensorium.agent.views import agent_view  # noqa: E402


def minigrids_view(env) -> np.ndarray:
    base = env.unwrapped
    return type(base).gen_obs(base)["image"]


@pytest.mark.parametrize("level", STANDARD_LEVELS)
def test_the_direct_view_is_minigrids_view_at_every_step(level):
    env = make_level(level)
    rng = np.random.default_rng(0)
    seen = {"carrying": 0, "open door": 0, "occluded": 0}
    for episode in range(6):
        obs, _ = quiet_reset(env, seed=1000 + episode)
        for _ in range(120):
            base = env.unwrapped
            expected = minigrids_view(env)
            assert np.array_equal(agent_view(base), expected), (level, episode, base.agent_pos, base.agent_dir)
            assert np.array_equal(obs["image"], expected)  # make_level observes through the direct view
            seen["carrying"] += base.carrying is not None
            seen["open door"] += bool(np.any((expected[..., 0] == 4) & (expected[..., 2] == 0)))
            seen["occluded"] += bool(np.any(expected[..., 0] == 0))
            # mostly forward, turns and the object actions often enough to pick up and open
            action = int(rng.choice(7, p=[0.15, 0.15, 0.4, 0.1, 0.05, 0.15, 0.0]))
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
    env.close()
    assert seen["occluded"] > 0 and seen["carrying"] > 0, seen  # the cases that differ from a plain crop
    if level in ("GoTo", "BossLevel"):  # levels with doors: some were opened and seen through
        assert seen["open door"] > 0, seen


def test_a_grid_edge_reads_as_wall_like_minigrid():
    env = make_level("GoToRedBall")
    quiet_reset(env, seed=3)
    base = env.unwrapped
    for x in range(1, base.grid.width - 1):  # stand at each spot along a wall and face out of the grid
        for direction in range(4):
            if base.grid.get(x, 1) is not None:
                continue
            base.agent_pos, base.agent_dir = np.array((x, 1)), direction
            assert np.array_equal(agent_view(base), minigrids_view(env))
    env.close()
