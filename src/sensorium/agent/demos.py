"""The BabyAI bot's demonstrations, written as compact shards and read back for imitation learning.

    sensorium agent demos GoToLocal --episodes 10000 -o demos/gotolocal

A folder holds `demos.json` (the level, the seeds used, one entry per shard) and `shard-NNNNN.npz`
files (compressed numpy, never pickled), each of `shard_episodes` successful episodes:

    images      (steps, 7, 7, 3) uint8   the agent's partial symbolic view before each action
    directions  (steps,) uint8           which way it faced
    actions     (steps,) uint8           what the bot did
    lengths     (episodes,) int32        steps per episode, in order
    seeds       (episodes,) int64        the reset seed of each episode (replaying it gives the same run)
    missions    (episodes,) str          the instruction in words

Episodes are drawn with seeds `seed, seed + 1, ...`; a seed whose episode the bot does not finish
is recorded as failed and skipped, so a folder holds exactly the episodes asked for and its seed
range (`first_seed` to `next_seed`) is known: evaluation must use seeds outside it. Generation is
resumable: each shard is written whole, then listed in the manifest, and a rerun with the same
level and seed carries on after the last listed shard (or extends the folder to more episodes).
"""
from __future__ import annotations

import json
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..errors import ReadError
from .levels import AgentError, level_id, make_level, quiet_reset

FORMAT, MANIFEST = "sensorium-agent-demos/1", "demos.json"
ARRAYS = ("images", "directions", "actions", "lengths", "seeds", "missions")


@dataclass(frozen=True)
class Episode:
    mission: str
    seed: int
    images: np.ndarray  # (steps, 7, 7, 3) uint8
    directions: np.ndarray  # (steps,) uint8
    actions: np.ndarray  # (steps,) uint8


def bot_episode(env, seed: int) -> Episode | None:
    """The bot's run of the level reset with `seed`; None when it does not reach the goal."""
    from minigrid.utils.baby_ai_bot import BabyAIBot

    observation, _ = quiet_reset(env, seed)
    bot = BabyAIBot(env.unwrapped)
    images, directions, actions = [], [], []
    while True:
        try:
            action = int(bot.replan())
        except Exception:  # noqa: BLE001 - the bot raises bare AssertionError/TypeError when it gets stuck
            return None
        images.append(observation["image"])
        directions.append(observation["direction"])
        actions.append(action)
        observation, reward, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    if not terminated or reward <= 0:
        return None
    return Episode(observation["mission"], seed, np.stack(images).astype(np.uint8),
                   np.asarray(directions, np.uint8), np.asarray(actions, np.uint8))


def write_shard(path: Path, episodes: list[Episode]) -> int:
    """One shard, written whole (a temporary file renamed into place); returns its size in bytes."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as handle:
        np.savez_compressed(
            handle,
            images=np.concatenate([e.images for e in episodes]),
            directions=np.concatenate([e.directions for e in episodes]),
            actions=np.concatenate([e.actions for e in episodes]),
            lengths=np.asarray([len(e.actions) for e in episodes], np.int32),
            seeds=np.asarray([e.seed for e in episodes], np.int64),
            missions=np.asarray([e.mission for e in episodes], dtype=np.str_),
        )
    os.replace(temporary, path)
    return path.stat().st_size


def _read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReadError(path, f"not valid JSON ({exc})") from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ReadError(path, f"not a {FORMAT} manifest")
    return record


def _write_manifest(folder: Path, record: dict) -> None:
    temporary = folder / (MANIFEST + ".tmp")
    temporary.write_text(json.dumps(record, indent=1) + "\n", "utf-8")
    os.replace(temporary, folder / MANIFEST)


def make_demos(out: str | Path, level: str, episodes: int, seed: int = 0, shard_episodes: int = 1000,
               progress: Callable[[int, int], None] | None = None) -> dict:
    """Write (resume, or extend to) `episodes` successful bot episodes of `level` in `out`; a summary."""
    out, name = Path(out), level_id(level)  # first: without minigrid, an AgentError says how to install it
    import minigrid

    if episodes < 1 or shard_episodes < 1:
        raise AgentError(f"--episodes and --shard-episodes: at least 1, got {episodes} and {shard_episodes}")
    record = _read_manifest(out)
    settings = {"level": name, "seed": seed, "shard_episodes": shard_episodes}
    if record is None:
        if out.exists() and any(out.iterdir()):
            raise AgentError(f"{out}: not empty and not a demonstrations folder; choose an empty or new folder")
        record = {"format": FORMAT, **settings, "minigrid": minigrid.__version__, "shards": []}
    elif differing := [k for k, v in settings.items() if record.get(k) != v]:
        raise AgentError(f"{out}: holds demonstrations made with another {', '.join(differing)} "
                         f"({', '.join(f'{k}={record.get(k)!r}' for k in differing)}); use those, or another folder")
    out.mkdir(parents=True, exist_ok=True)
    shards = record["shards"]
    if shards and shards[-1]["episodes"] < shard_episodes and _total(shards) < episodes:
        shards.pop()  # a short last shard is drawn again, whole, from its first seed (the same episodes, then more)
    env = make_level(name)
    started, made = time.perf_counter(), 0
    if progress:
        progress(min(_total(shards), episodes), episodes)
    while _total(shards) < episodes:
        first = shards[-1]["next_seed"] if shards else seed
        wanted = min(shard_episodes, episodes - _total(shards))
        kept, failed, next_seed = [], [], first
        while len(kept) < wanted:
            episode = bot_episode(env, next_seed)
            (kept.append(episode) if episode is not None else failed.append(next_seed))
            next_seed += 1
            if progress and episode is not None:
                progress(_total(shards) + len(kept), episodes)
        file = f"shard-{len(shards):05d}.npz"
        size = write_shard(out / file, kept)
        shard_steps = sum(len(e.actions) for e in kept)
        shards.append({"file": file, "episodes": len(kept), "steps": shard_steps, "bytes": size,
                       "first_seed": first, "next_seed": next_seed, "failed_seeds": failed})
        _write_manifest(out, record)  # after every shard: an interruption loses at most the shard being drawn
        made += len(kept)
    env.close()
    seconds = time.perf_counter() - started
    return {"folder": str(out), "level": name, "episodes": _total(shards), "made_now": made,
            "steps": sum(s["steps"] for s in shards), "bytes": sum(s["bytes"] for s in shards),
            "failed": sum(len(s["failed_seeds"]) for s in shards),
            "first_seed": shards[0]["first_seed"], "next_seed": shards[-1]["next_seed"],
            "seconds": round(seconds, 2), "episodes_per_second": round(made / seconds, 1) if made else None}


def _total(shards: list[dict]) -> int:
    return sum(s["episodes"] for s in shards)


class Demos:
    """A demonstrations folder, read back: `len`, the level, the seeds used, and each episode."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        record = _read_manifest(self.folder)
        if record is None:
            raise ReadError(self.folder, f"no {MANIFEST}: make one with `sensorium agent demos LEVEL -o FOLDER`")
        self.record = record
        self.level: str = record["level"]
        self.shards: list[dict] = record["shards"]

    def __len__(self) -> int:
        return _total(self.shards)

    @property
    def seed_range(self) -> tuple[int, int]:
        """[first, next): every seed the demonstrations drew from (used or failed); evaluate outside it."""
        return (self.shards[0]["first_seed"], self.shards[-1]["next_seed"]) if self.shards else (0, 0)

    def shard(self, index: int) -> dict[str, np.ndarray]:
        """One shard's arrays, checked: every array present and lengths that add up."""
        path = self.folder / self.shards[index]["file"]
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in ARRAYS}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise ReadError(path, f"not a readable demonstrations shard ({exc})") from exc
        steps = int(arrays["lengths"].sum())
        if not (len(arrays["actions"]) == len(arrays["images"]) == len(arrays["directions"]) == steps
                and len(arrays["seeds"]) == len(arrays["missions"]) == len(arrays["lengths"])):
            raise ReadError(path, "arrays of different lengths: the shard is damaged")
        return arrays

    def episodes(self) -> Iterator[Episode]:
        for index in range(len(self.shards)):
            arrays = self.shard(index)
            ends = np.cumsum(arrays["lengths"])
            for i, end in enumerate(ends):
                begin = end - arrays["lengths"][i]
                yield Episode(str(arrays["missions"][i]), int(arrays["seeds"][i]), arrays["images"][begin:end],
                              arrays["directions"][begin:end], arrays["actions"][begin:end])
