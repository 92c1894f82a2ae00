"""The agent's 7x7 view, computed directly: the same observation minigrid gives, 2.7-2.8x faster.

minigrid builds each step's view by copying the window into a new `Grid` cell by cell, rotating that
grid one quarter turn at a time (up to four full copies), hiding what walls and closed doors occlude,
then encoding cell by cell. Here the window's rows are sliced from the grid's list of objects, turned
with numpy's rot90, occluded by the same sweep minigrid uses, and encoded once. `install(env)` puts it
in place of the level's `gen_obs`, so `reset` and `step` return it; tests check it equals minigrid's
own view cell for cell, on every level issue 18 measures, over many random steps.

Measured (EPYC VM, quiet): a view in 53 against 148 us (GoToRedBall), 35 against 93 us (BossLevel);
PPO on GoToRedBall 1.10-1.15x the frames/s (30,720 frames in 16.2-17.8 s against 18.6-19.6 s);
the bot's demonstrations barely change (the bot's planning dominates them).
"""
from __future__ import annotations

import types

import numpy as np

UNSEEN = (0, 0, 0)  # what an occluded cell encodes to (minigrid's "unseen")
EMPTY = (1, 0, 0)  # an empty, visible cell


def window(env, size: int) -> list[list]:
    """cells[i][j]: the object (or None) at column i, row j of the view, the agent at (size // 2, size - 1)
    looking towards row 0; outside the grid is wall, as in minigrid."""
    from minigrid.core.world_object import Wall

    grid = env.grid
    top_x, top_y, _, _ = env.get_view_exts(size)
    width, height = grid.width, grid.height
    rows = np.empty((size, size), dtype=object)  # [row, column] of the window, as the grid stores it
    rows.fill(Wall())
    x0, y0 = max(top_x, 0), max(top_y, 0)
    x1, y1 = min(top_x + size, width), min(top_y + size, height)
    if x0 < x1 and y0 < y1:
        objects = grid.grid
        for y in range(y0, y1):
            rows[y - top_y, x0 - top_x:x1 - top_x] = objects[y * width + x0:y * width + x1]
    # minigrid turns the window left (direction + 1) times: each turn is np.rot90(columns, -1), and
    # rot90(rows.T, -k) = rot90(rows, k).T
    return np.rot90(rows, (env.agent_dir + 1) % 4).T.tolist()


def visible(cells: list[list], see_through_walls: bool) -> list[list[bool]]:
    """minigrid's `Grid.process_vis` sweep: from the agent's cell, row by row away from it, light
    spreads sideways and forward past every cell that can be seen behind."""
    size = len(cells)
    if see_through_walls:
        return [[True] * size for _ in range(size)]
    mask = [[False] * size for _ in range(size)]
    mask[size // 2][size - 1] = True
    for j in reversed(range(size)):
        for i in range(size - 1):
            if not mask[i][j]:
                continue
            cell = cells[i][j]
            if cell and not cell.see_behind():
                continue
            mask[i + 1][j] = True
            if j > 0:
                mask[i + 1][j - 1] = True
                mask[i][j - 1] = True
        for i in reversed(range(1, size)):
            if not mask[i][j]:
                continue
            cell = cells[i][j]
            if cell and not cell.see_behind():
                continue
            mask[i - 1][j] = True
            if j > 0:
                mask[i - 1][j - 1] = True
                mask[i][j - 1] = True
    return mask


def agent_view(env, size: int | None = None) -> np.ndarray:
    """The (size, size, 3) uint8 image minigrid's `gen_obs` returns, indexed [column, row, channel]."""
    size = size or env.agent_view_size
    cells = window(env, size)
    mask = visible(cells, env.see_through_walls)
    cells[size // 2][size - 1] = env.carrying  # the agent sees what it carries, where it stands
    codes = [[(cell.encode() if cell is not None else EMPTY) if seen else UNSEEN
              for cell, seen in zip(column, seen_column)] for column, seen_column in zip(cells, mask)]
    return np.array(codes, dtype=np.uint8)


def _gen_obs(self):
    return {"image": agent_view(self), "direction": self.agent_dir, "mission": self.mission}


def install(env):
    """Make `env` (a gymnasium-wrapped minigrid level) observe through `agent_view`; returns env."""
    base = env.unwrapped
    base.gen_obs = types.MethodType(_gen_obs, base)
    return env
