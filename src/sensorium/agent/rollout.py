"""A policy acting in a level: episodes run side by side (one batched forward per step for all of
them), each from a reset seed, and the measures the BabyAI papers report: success rate and mean
episode length (against the bot's on the same seeds, when asked).

`Conditions` make it harder on purpose, for the robustness figures: a share of the view's cells
hidden at every step, or the mission reworded (`sensorium.agent.paraphrase`). Both are drawn from
the episode's seed, so a seed always meets the same conditions.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .levels import AgentError, make_level, quiet_reset
from .paraphrase import paraphrase
from .policy import InstructionPolicy

EVALUATION_SEEDS = 10**9  # evaluation starts here by default; training's seeds (demonstrations, PPO) stay below
UNSEEN = 0  # minigrid's object index for a cell the agent cannot see (colour and state 0 with it)
# watch(episode index, environment, action): after each reset (action None) and after each step
Watcher = Callable[[int, object, "int | None"], None]


@dataclass(frozen=True)
class Outcome:
    seed: int
    mission: str
    success: bool
    steps: int


@dataclass(frozen=True)
class Conditions:
    """How an evaluation runs beyond the level itself: what the agent faces, and how it picks actions."""
    mask_share: float = 0.0  # each cell of the 7x7 view is hidden with this probability, at every step
    paraphrase: bool = False  # the mission is reworded before the policy reads it
    sample: bool = False  # actions drawn from the policy's distribution (BabyAI's evaluate.py default), not argmax

    def __post_init__(self):
        if not 0.0 <= self.mask_share <= 1.0:
            raise AgentError(f"mask share: between 0 and 1, got {self.mask_share}")


PLAIN = Conditions()


def run_episodes(policy: InstructionPolicy, level: str, seeds: list[int], parallel: int = 64,
                 conditions: Conditions = PLAIN, watch: Watcher | None = None) -> list[Outcome]:
    """Each seed's episode under the policy's most likely actions, `parallel` at a time. An outcome's
    mission is the one the policy was given (reworded, under `conditions.paraphrase`)."""
    policy.eval()
    outcomes: list[Outcome] = []
    envs = [make_level(level) for _ in range(min(parallel, len(seeds)))]
    for start in range(0, len(seeds), len(envs)):
        chunk = seeds[start:start + len(envs)]
        observations = [quiet_reset(env, seed)[0] for env, seed in zip(envs, chunk)]
        draws = [np.random.default_rng(seed) for seed in chunk]
        missions = [paraphrase(o["mission"], rng) if conditions.paraphrase else o["mission"]
                    for o, rng in zip(observations, draws)]
        with torch.no_grad():
            encoded = policy.encode_missions(policy.mission_ids(missions))
        alive, steps, state = list(range(len(chunk))), [0] * len(chunk), None
        success = [False] * len(chunk)
        if watch:
            for i in alive:
                watch(start + i, envs[i], None)
        while alive:
            images = np.stack([observations[i]["image"] for i in alive])
            if conditions.mask_share:
                hidden = np.stack([draws[i].random((7, 7)) < conditions.mask_share for i in alive])
                images[hidden] = UNSEEN
            directions = torch.tensor([int(observations[i]["direction"]) for i in alive])
            if conditions.sample:
                logits, state = policy.step(torch.from_numpy(images), directions, encoded[alive], state)
                actions = _draw(torch.softmax(logits, dim=1).numpy(), [draws[i] for i in alive])
            else:
                actions, state = policy.act(torch.from_numpy(images), directions, encoded[alive], state)
            still = []
            for row, i in enumerate(alive):
                observations[i], reward, terminated, truncated, _ = envs[i].step(int(actions[row]))
                steps[i] += 1
                if watch:
                    watch(start + i, envs[i], int(actions[row]))
                if terminated or truncated:
                    success[i] = bool(terminated and reward > 0)
                else:
                    still.append(row)
            if len(still) < len(alive):
                keep = torch.tensor(still, dtype=torch.long)
                state = tuple(s[:, keep] for s in state)
                alive = [alive[row] for row in still]
        outcomes += [Outcome(seed, m, ok, n) for seed, m, ok, n in zip(chunk, missions, success, steps)]
    for env in envs:
        env.close()
    return outcomes


def _draw(probabilities: np.ndarray, draws: list[np.random.Generator]) -> list[int]:
    """An action per row of `probabilities`, each from its own episode's generator (so an episode's
    draws do not depend on which others run beside it)."""
    cumulative = np.cumsum(probabilities, axis=1)
    return [min(int(np.searchsorted(row, rng.random() * row[-1], side="right")), len(row) - 1)
            for row, rng in zip(cumulative, draws)]


def bot_steps(level: str, seeds: list[int]) -> list[int | None]:
    """The bot's episode length on each seed (None where it does not finish), for comparison."""
    from .demos import bot_episode

    env = make_level(level)
    lengths = []
    for seed in seeds:
        episode = bot_episode(env, seed)
        lengths.append(None if episode is None else len(episode.actions))
    env.close()
    return lengths


SeedRange = tuple[int, int]  # [first, next)


def seeds_used(trained: dict) -> list[SeedRange]:
    """Every seed range a policy's training drew from: its demonstrations' and each PPO run's."""
    return [tuple(trained.get("seed_range", (0, 0))), *(tuple(run["seed_range"]) for run in trained.get("ppo", []))]


def _ranges(avoid: SeedRange | list[SeedRange]) -> list[SeedRange]:
    return [avoid] if avoid and isinstance(avoid[0], int) else list(avoid)


def evaluation_seeds(episodes: int, avoid: SeedRange | list[SeedRange],
                     first: int = EVALUATION_SEEDS) -> list[int]:
    """`episodes` consecutive seeds from `first` on (moved past a range they would overlap), none inside
    the seed ranges `avoid` (one [a, b) or a list, e.g. `seeds_used(policy.config.trained)`)."""
    if episodes < 1:
        raise AgentError(f"--episodes: at least 1, got {episodes}")
    ranges, start, moved = _ranges(avoid), first, True
    while moved:
        moved = False
        for low, high in ranges:
            if start < high and start + episodes > low:
                start, moved = high, True
    return list(range(start, start + episodes))


def seeds_after(first: int, avoid: SeedRange | list[SeedRange]) -> Iterator[int]:
    """Every seed from `first` on, skipping the ranges `avoid`: the candidates an evaluation restricted
    to some missions picks from."""
    ranges = _ranges(avoid)
    return (seed for seed in itertools.count(first) if not any(low <= seed < high for low, high in ranges))


def summarise(outcomes: list[Outcome], bot: list[int | None] | None = None) -> dict:
    succeeded = [o for o in outcomes if o.success]
    summary = {"episodes": len(outcomes), "success_rate": round(len(succeeded) / len(outcomes), 4),
               "mean_steps": round(float(np.mean([o.steps for o in outcomes])), 2),
               "mean_steps_when_successful": round(float(np.mean([o.steps for o in succeeded])), 2) if succeeded else None}
    if bot is not None:
        pairs = [(o.steps, b) for o, b in zip(outcomes, bot) if o.success and b]
        summary["steps_over_bot_when_successful"] = round(float(np.mean([s / b for s, b in pairs])), 3) if pairs else None
    return summary
