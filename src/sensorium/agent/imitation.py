"""Behaviour cloning: the policy learns to do what the BabyAI bot did, through the framework's Trainer
(checkpoints, exact resume, progress, torchrun), one episode per sample so the memory sees whole runs.

    sensorium agent train demos/gotolocal --out runs/agent --epochs 10

OUT/policy holds the policy (safetensors + JSON), OUT/runs/policy the Trainer's checkpoints and
losses. Query time never imports this module (a test checks the layers).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..errors import ConfigError
from ..training.config import TrainConfig
from ..training.trainer import fit_own_loss, seed_everything, threads_for
from .demos import Demos, Episode
from .policy import PAD, PAD_ID, UNK, InstructionPolicy, PolicyConfig, mission_words

POLICY_DIR, RUNS_DIR = "policy", "runs"


@dataclass
class ImitationTraining:
    epochs: int = 10
    batch_size: int = 32  # episodes per optimizer step
    lr: float = 3e-3
    width: int = 64
    episodes: int = 0  # the first N demonstrations; 0 = all
    seed: int = 0
    threads: int = 0
    progress: bool = True


class EpisodeData(Dataset):
    """Item i: episode i's views, directions and actions, and its mission's word ids."""

    def __init__(self, episodes: list[Episode], policy: InstructionPolicy):
        self.episodes = episodes
        self.missions = policy.mission_ids([e.mission for e in episodes])

    def __len__(self) -> int:
        return len(self.episodes)

    def __getitem__(self, index: int):
        return self.episodes[index], self.missions[index]


def collate_episodes(items) -> dict:
    """Episodes padded to the longest of the batch; `mask` marks real steps, `size` counts them."""
    longest = max(len(e.actions) for e, _ in items)
    b = len(items)
    images = torch.zeros(b, longest, 7, 7, 3, dtype=torch.uint8)
    directions = torch.zeros(b, longest, dtype=torch.long)
    actions = torch.zeros(b, longest, dtype=torch.long)
    mask = torch.zeros(b, longest, dtype=torch.bool)
    for row, (episode, _) in enumerate(items):
        steps = len(episode.actions)
        images[row, :steps] = torch.from_numpy(episode.images)
        directions[row, :steps] = torch.from_numpy(episode.directions.astype("int64"))
        actions[row, :steps] = torch.from_numpy(episode.actions.astype("int64"))
        mask[row, :steps] = True
    words = max(int(m.ne(PAD_ID).sum()) for _, m in items)
    missions = torch.stack([m for _, m in items])[:, :max(words, 1)]
    return {"images": images, "directions": directions, "actions": actions, "mask": mask, "missions": missions,
            "size": int(mask.sum())}


def train_policy(demos: str | Path, out: str | Path, settings: ImitationTraining | None = None,
                 resume: bool = False) -> InstructionPolicy:
    """A policy cloned from the bot's demonstrations in `demos`; saved to OUT/policy."""
    settings = settings or ImitationTraining()
    if min(settings.epochs, settings.batch_size, settings.width) < 1:
        raise ConfigError("epochs, batch_size and width: at least 1")
    source, out = Demos(demos), Path(out)
    episodes = list(source.episodes())
    episodes = episodes[: settings.episodes] if settings.episodes else episodes
    if not episodes:
        raise ConfigError(f"{demos}: holds no demonstrations")
    torch.set_num_threads(threads_for(settings.threads))
    seed_everything(settings.seed)
    words = sorted({w for e in episodes for w in mission_words(e.mission)})
    record = {**asdict(settings), "demos": str(Path(demos).resolve()), "level": source.level,
              "demonstrations": len(episodes), "steps": sum(len(e.actions) for e in episodes),
              "seed_range": list(source.seed_range)}
    policy = InstructionPolicy(PolicyConfig(vocabulary=(PAD, UNK, *words), width=settings.width, trained=record))
    train = TrainConfig(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr, seed=settings.seed,
                        threads=settings.threads, progress=settings.progress, min_lr_ratio=0.05)
    summary = fit_own_loss(policy, EpisodeData(episodes, policy), collate_episodes, out / RUNS_DIR / POLICY_DIR,
                           train, resume)
    policy.eval()
    policy.save(out / POLICY_DIR)
    (out / RUNS_DIR / POLICY_DIR / "summary.json").write_text(json.dumps(summary, indent=1, default=str), "utf-8")
    return policy
