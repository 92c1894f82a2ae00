"""Behaviour cloning: the policy learns to do what the BabyAI bot did, through the framework's Trainer
(checkpoints, exact resume, progress, torchrun), one episode per sample so the memory sees whole runs.

    sensorium agent train demos/gotolocal --out runs/agent --epochs 10

OUT/policy holds the policy (safetensors + JSON), OUT/runs/policy the Trainer's checkpoints and
losses. Query time never imports this module (a test checks the layers).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..errors import ConfigError
from ..training.config import TrainConfig, fill_fields, read_toml
from ..training.trainer import fit_own_loss, seed_everything, threads_for
from .demos import Demos, Episode
from .levels import AgentError
from .missions import mentions, mission_words, phrases
from .policy import PAD, PAD_ID, POLICY_DIR, UNK, InstructionPolicy, PolicyConfig, load_policy

RUNS_DIR = "runs"
DEMOS_KEY = "demos"  # the one key of an agent's TOML config that is not an ImitationTraining field
ARCHITECTURE = ("width", "conv_layers", "positions")  # a curriculum's next level keeps these from its start


@dataclass
class ImitationTraining:
    epochs: int = 10
    batch_size: int = 32  # episodes per optimizer step
    lr: float = 3e-3
    width: int = 64
    conv_layers: int = 4  # FiLM-modulated 3x3 convolutions over the view (2 until 2026-12-07; see policy.PolicyConfig)
    positions: bool = False  # where each view cell lies, learned (see policy.PolicyConfig)
    episodes: int = 0  # the first N demonstrations; 0 = all
    seed: int = 0
    threads: int = 0
    progress: bool = True
    hold_out: list[str] = field(default_factory=list)  # phrases ("purple ball") whose missions training never sees
    init_from: str = ""  # a run (or policy) folder to start from: the curriculum's easier level; its width wins


def load_settings(path: str | Path, overrides: dict[str, Any] | None = None) -> tuple[Path, ImitationTraining]:
    """The demonstrations folder and the settings of an agent's TOML config, e.g.

        demos = "demos/gotolocal"          # relative paths are taken from the config's folder
        epochs = 25
        hold_out = ["purple ball", "yellow key"]
        init_from = "runs/gotoredball"

    `overrides` (the command line's options, None where not given) win over the file."""
    path = Path(path)
    raw = read_toml(path)
    if DEMOS_KEY not in raw or not isinstance(raw[DEMOS_KEY], str):
        raise ConfigError(f"{path}: {DEMOS_KEY}: missing, or not a string (the folder from `sensorium agent demos`)")
    demos = _from_config_folder(raw.pop(DEMOS_KEY), path)
    settings = ImitationTraining()
    fill_fields(settings, raw, f"{path}: ")
    if settings.init_from:
        settings.init_from = str(_from_config_folder(settings.init_from, path))
    for key, value in (overrides or {}).items():
        if value is not None:
            setattr(settings, key, value)
    return demos, settings


def _from_config_folder(value: str, config: Path) -> Path:
    folder = Path(value).expanduser()
    return folder if folder.is_absolute() else config.parent / folder


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
    if min(settings.epochs, settings.batch_size, settings.width, settings.conv_layers) < 1:
        raise ConfigError("epochs, batch_size, width and conv_layers: at least 1")
    source, out = Demos(demos), Path(out)
    episodes, held_out, dropped = _kept_episodes(source, settings)
    torch.set_num_threads(threads_for(settings.threads))
    seed_everything(settings.seed)
    words = sorted({w for e in episodes for w in mission_words(e.mission)})
    record = {**asdict(settings), "demos": str(Path(demos).resolve()), "level": source.level,
              "demonstrations": len(episodes), "steps": sum(len(e.actions) for e in episodes),
              "seed_range": list(source.seed_range), "hold_out": list(held_out), "held_out_dropped": dropped}
    policy = _starting_policy(settings, words, record)
    train = TrainConfig(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr, seed=settings.seed,
                        threads=settings.threads, progress=settings.progress, min_lr_ratio=0.05)
    summary = fit_own_loss(policy, EpisodeData(episodes, policy), collate_episodes, out / RUNS_DIR / POLICY_DIR,
                           train, resume)
    policy.eval()
    policy.save(out / POLICY_DIR)
    (out / RUNS_DIR / POLICY_DIR / "summary.json").write_text(json.dumps(summary, indent=1, default=str), "utf-8")
    return policy


def _kept_episodes(source: Demos, settings: ImitationTraining) -> tuple[list[Episode], tuple[str, ...], int]:
    """Those of the first N demonstrations whose missions mention no held-out phrase, the phrases, and
    how many were dropped for them. A phrase no mission mentions is a ConfigError (a typo would hold
    nothing out)."""
    try:
        held_out = phrases(settings.hold_out)
    except AgentError as exc:
        raise ConfigError(f"hold_out: {exc}") from exc
    episodes = list(source.episodes())
    episodes = episodes[: settings.episodes] if settings.episodes else episodes
    if not episodes:
        raise ConfigError(f"{source.folder}: holds no demonstrations")
    unused = [p for p in held_out if not any(mentions(e.mission, (p,)) for e in episodes)]
    if unused:
        raise ConfigError(f"hold_out: no mission of {source.folder} mentions {', '.join(map(repr, unused))} "
                          f"(missions look like {episodes[0].mission!r})")
    kept = [e for e in episodes if not mentions(e.mission, held_out)]
    dropped = len(episodes) - len(kept)
    if not kept:
        raise ConfigError(f"{source.folder}: every demonstration mentions a held-out phrase")
    return kept, held_out, dropped


def _starting_policy(settings: ImitationTraining, words: list[str], record: dict) -> InstructionPolicy:
    """A fresh policy, or with `init_from` the earlier one widened by this level's words."""
    vocabulary = (PAD, UNK, *words)
    if not settings.init_from:
        return InstructionPolicy(PolicyConfig(vocabulary=vocabulary, width=settings.width,
                                              conv_layers=settings.conv_layers, positions=settings.positions,
                                              trained=record))
    earlier = load_policy(settings.init_from)
    for name in ARCHITECTURE:  # asked for explicitly (not the default) and unlike the earlier policy's
        asked, kept = getattr(settings, name), getattr(earlier.config, name)
        if asked not in (kept, getattr(ImitationTraining, name)):
            raise ConfigError(f"{name}: {asked} asked, but the policy in init_from ({settings.init_from}) has "
                              f"{name} {kept}; a curriculum keeps its architecture")
    before = earlier.config.trained
    record.update({name: getattr(earlier.config, name) for name in ARCHITECTURE})
    record["curriculum"] = [*before.get("curriculum", []),
                            {"from": str(Path(settings.init_from).resolve()), "level": before.get("level"),
                             "demonstrations": before.get("demonstrations"), "epochs": before.get("epochs")}]
    return earlier.widened(list(vocabulary), record).train()
