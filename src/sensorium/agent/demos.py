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

The bot is pure Python, so `workers` processes play seeds side by side (each with its own level);
their episodes are taken back in seed order, so a folder is the same, byte for byte in its arrays,
whatever the number of workers.
"""
from __future__ import annotations

import itertools
import json
import os
import time
import zipfile
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..cpu import cpu_threads
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


_worker_level = None  # each worker process's own environment (made once, by `_open_level`)
AHEAD = 8  # seeds handed out per worker before the first is taken back: keeps every worker busy


def _open_level(name: str) -> None:
    global _worker_level
    _worker_level = make_level(name)


def _bot_episode_in_worker(seed: int) -> Episode | None:
    return bot_episode(_worker_level, seed)


def bot_episodes(name: str, first: int, workers: int = 1) -> Iterator[tuple[int, Episode | None]]:
    """(seed, the bot's episode or None) for seeds first, first + 1, ... without end, in seed order, played
    by `workers` processes (1: here). A reset with a seed fixes the level, so which process plays a seed
    does not change its episode."""
    if workers <= 1:
        env = make_level(name)
        try:
            for seed in itertools.count(first):
                yield seed, bot_episode(env, seed)
        finally:
            env.close()
        return
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_open_level, initargs=(name,))
    try:
        seeds = itertools.count(first)
        pending = deque((seed, pool.submit(_bot_episode_in_worker, seed))
                        for seed in itertools.islice(seeds, workers * AHEAD))
        while True:
            seed, future = pending.popleft()
            next_seed = next(seeds)
            pending.append((next_seed, pool.submit(_bot_episode_in_worker, next_seed)))
            yield seed, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


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
               progress: Callable[[int, int], None] | None = None, workers: int = 1) -> dict:
    """Write (resume, or extend to) `episodes` successful bot episodes of `level` in `out`, played by
    `workers` processes (0: one per core); a summary."""
    out, name = Path(out), level_id(level)  # first: without minigrid, an AgentError says how to install it
    import minigrid

    if episodes < 1 or shard_episodes < 1 or workers < 0:
        raise AgentError(f"--episodes and --shard-episodes: at least 1, --workers: at least 0; got {episodes}, "
                         f"{shard_episodes} and {workers}")
    workers = workers or cpu_threads()
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
    started, made = time.perf_counter(), 0
    if progress:
        progress(min(_total(shards), episodes), episodes)
    if _total(shards) < episodes:
        played = bot_episodes(name, shards[-1]["next_seed"] if shards else seed, workers)
        try:
            while _total(shards) < episodes:
                wanted = min(shard_episodes, episodes - _total(shards))
                shards.append(_draw_shard(out / f"shard-{len(shards):05d}.npz", played, wanted,
                                          lambda kept: progress and progress(_total(shards) + kept, episodes)))
                _write_manifest(out, record)  # after every shard: an interruption loses at most the shard being drawn
                made += shards[-1]["episodes"]
        finally:
            played.close()
    seconds = time.perf_counter() - started
    return {"folder": str(out), "level": name, "episodes": _total(shards), "made_now": made,
            "steps": sum(s["steps"] for s in shards), "bytes": sum(s["bytes"] for s in shards),
            "failed": sum(len(s["failed_seeds"]) for s in shards),
            "first_seed": shards[0]["first_seed"], "next_seed": shards[-1]["next_seed"],
            "seconds": round(seconds, 2), "episodes_per_second": round(made / seconds, 1) if made else None}


def _draw_shard(path: Path, played: Iterator[tuple[int, Episode | None]], wanted: int,
                progress: Callable[[int], object]) -> dict:
    """Take episodes from `played` until `wanted` succeeded, write them to `path`; the shard's manifest entry."""
    kept, failed, first = [], [], None
    while len(kept) < wanted:
        seed, episode = next(played)
        first = seed if first is None else first
        if episode is None:
            failed.append(seed)
            continue
        kept.append(episode)
        progress(len(kept))
    size = write_shard(path, kept)
    return {"file": path.name, "episodes": len(kept), "steps": sum(len(e.actions) for e in kept), "bytes": size,
            "first_seed": first, "next_seed": seed + 1, "failed_seeds": failed}


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
