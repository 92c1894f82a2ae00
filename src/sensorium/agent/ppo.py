"""Fine-tuning a cloned policy by reinforcement: PPO (Schulman et al. 2017) with a recurrent policy, as
BabyAI trains its RL baselines, starting from what imitation learnt.

    sensorium agent finetune runs/gotolocal --out runs/gotolocal-ppo --frames 500000

Episodes run side by side in `envs` copies of the level, each reset from its own seed (counting up
from `first_seed`: past any demonstrations' seeds and below the evaluation seeds, which start at
10^9); after `rollout` steps of each, the clipped surrogate objective, a value loss and an entropy
bonus are optimised over that batch for a few passes, each environment's steps kept in order so the
memory is recomputed as it was (cleared where an episode began). Imitation never trains the value
head, so the first `critic_warmup` updates train only it: otherwise its first, random advantages
would push the policy away from what it had learnt.

Everything runs with the batch-norm statistics imitation left (the policy in eval mode): acting and
learning then see the same network. OUT/policy holds the result (safetensors + JSON, written every
`save_every` updates and at the end), OUT/runs/ppo/updates.jsonl one line per update. Not exact
resume: a stopped run is started again from the policy it saved. Query time never imports this
module.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from ..errors import ConfigError
from ..training.trainer import seed_everything, threads_for
from .levels import make_level, quiet_reset
from .policy import PAD_ID, POLICY_DIR, InstructionPolicy, load_policy
from .rollout import EVALUATION_SEEDS

LOG_DIR, LOG = "runs/ppo", "updates.jsonl"
Progress = Callable[[int, int, str], None]


@dataclass
class PPOTraining:
    frames: int = 500_000  # environment steps in all
    envs: int = 64  # episodes run side by side
    rollout: int = 40  # steps of each environment between updates
    epochs: int = 4  # passes over each rollout
    minibatches: int = 4  # per pass, each a share of the environments with all their steps
    lr: float = 1e-3
    gamma: float = 0.99
    gae_lambda: float = 0.99
    clip: float = 0.2
    value_weight: float = 0.5
    entropy: float = 0.01
    max_grad_norm: float = 0.5
    critic_warmup: int = 5  # updates that train only the value head
    first_seed: int = 5 * 10**8
    level: str = ""  # "" = the level the policy was trained on
    save_every: int = 50
    seed: int = 0
    threads: int = 0


def advantages(rewards: Tensor, values: Tensor, dones: Tensor, last_value: Tensor, gamma: float,
               lam: float) -> Tensor:
    """Generalised advantage estimates (Schulman et al. 2016) for (N, T) rewards and values, where
    `dones[:, t]` means step t ended its episode (nothing after it is its future) and `last_value`
    (N,) is the value of the state after the last step."""
    n, t = rewards.shape
    out = torch.zeros(n, t)
    running = torch.zeros(n)
    following = last_value
    for step in reversed(range(t)):
        alive = 1.0 - dones[:, step].float()
        delta = rewards[:, step] + gamma * following * alive - values[:, step]
        running = delta + gamma * lam * alive * running
        out[:, step] = running
        following = values[:, step]
    return out


@dataclass
class Rollout:
    """`steps` steps of N environments: what the agent saw, did and got, and its memory before them."""
    images: Tensor  # (N, T, 7, 7, 3) uint8
    directions: Tensor  # (N, T)
    missions: Tensor  # (N, T, L) word ids
    starts: Tensor  # (N, T) bool: this step began an episode
    actions: Tensor  # (N, T)
    log_probs: Tensor  # (N, T)
    values: Tensor  # (N, T)
    rewards: Tensor  # (N, T)
    dones: Tensor  # (N, T) bool
    memory: tuple[Tensor, Tensor]  # (1, N, width) each


class Actors:
    """N copies of a level stepped together under the policy, each episode from the next seed."""

    def __init__(self, policy: InstructionPolicy, level: str, count: int, first_seed: int, seed: int):
        self.policy = policy
        self.envs = [make_level(level) for _ in range(count)]
        self.next_seed = first_seed
        self.first_seed = first_seed
        self.draws = torch.Generator().manual_seed(seed)
        self.observations = [self._reset(env) for env in self.envs]
        self.memory = policy.blank_memory(count)
        self.starting = torch.ones(count, dtype=torch.bool)
        self.finished: list[tuple[bool, int]] = []  # (success, steps) of each ended episode
        self.steps = [0] * count

    def _reset(self, env) -> dict:
        observation = quiet_reset(env, self.next_seed)[0]
        self.next_seed += 1
        return observation

    def _inputs(self) -> tuple[Tensor, Tensor, Tensor]:
        images = torch.from_numpy(np.stack([o["image"] for o in self.observations]))
        directions = torch.tensor([int(o["direction"]) for o in self.observations])
        missions = self.policy.mission_ids([o["mission"] for o in self.observations])
        return images, directions, missions

    @torch.no_grad()
    def collect(self, steps: int) -> tuple[Rollout, Tensor]:
        """`steps` steps of every environment, and the value of where each stands after them."""
        n = len(self.envs)
        memory = tuple(m.clone() for m in self.memory)
        seen: list[tuple[Tensor, Tensor, Tensor]] = []
        starts, actions, log_probs, values, rewards, dones = ([] for _ in range(6))
        for _ in range(steps):
            images, directions, missions = self._inputs()
            logits, value, self.memory = self.policy.unroll(
                images[:, None], directions[:, None], self.policy.encode_missions(missions)[:, None], self.memory,
                self.starting[:, None])
            probabilities = torch.softmax(logits[:, 0], dim=1)
            action = torch.multinomial(probabilities, 1, generator=self.draws)[:, 0]
            seen.append((images, directions, missions))
            starts.append(self.starting.clone())
            actions.append(action)
            log_probs.append(torch.log(probabilities.gather(1, action[:, None])[:, 0].clamp(min=1e-12)))
            values.append(value[:, 0])
            reward, done = torch.zeros(n), torch.zeros(n, dtype=torch.bool)
            for i, env in enumerate(self.envs):
                self.observations[i], r, terminated, truncated, _ = env.step(int(action[i]))
                self.steps[i] += 1
                reward[i] = float(r)
                if terminated or truncated:
                    done[i] = True
                    self.finished.append((bool(terminated and r > 0), self.steps[i]))
                    self.steps[i] = 0
                    self.observations[i] = self._reset(env)
            rewards.append(reward)
            dones.append(done)
            self.starting = done.clone()
        images, directions, missions = self._inputs()
        _, last_value, _ = self.policy.unroll(images[:, None], directions[:, None],
                                              self.policy.encode_missions(missions)[:, None], self.memory,
                                              self.starting[:, None])
        longest = max(m.shape[1] for _, _, m in seen)
        padded = [F.pad(m, (0, longest - m.shape[1]), value=PAD_ID) for _, _, m in seen]
        rollout = Rollout(images=torch.stack([s[0] for s in seen], 1), directions=torch.stack([s[1] for s in seen], 1),
                          missions=torch.stack(padded, 1), starts=torch.stack(starts, 1),
                          actions=torch.stack(actions, 1), log_probs=torch.stack(log_probs, 1),
                          values=torch.stack(values, 1), rewards=torch.stack(rewards, 1), dones=torch.stack(dones, 1),
                          memory=memory)
        return rollout, last_value[:, 0]

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _losses(policy: InstructionPolicy, rollout: Rollout, rows: Tensor, advantage: Tensor, returns: Tensor,
            settings: PPOTraining) -> dict[str, Tensor]:
    """The clipped surrogate, value and entropy terms over the environments `rows` of a rollout."""
    n, t = rollout.directions[rows].shape
    missions = rollout.missions[rows].flatten(0, 1)
    encoded = policy.encode_missions(missions).view(n, t, -1)
    memory = tuple(m[:, rows] for m in rollout.memory)
    logits, values, _ = policy.unroll(rollout.images[rows], rollout.directions[rows], encoded, memory,
                                      rollout.starts[rows])
    log_all = torch.log_softmax(logits, dim=-1)
    log_probs = log_all.gather(-1, rollout.actions[rows][..., None])[..., 0]
    ratio = torch.exp(log_probs - rollout.log_probs[rows])
    adv = advantage[rows]
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    surrogate = -torch.min(ratio * adv, ratio.clamp(1 - settings.clip, 1 + settings.clip) * adv).mean()
    value = F.mse_loss(values, returns[rows])
    entropy = -(log_all.exp() * log_all).sum(-1).mean()
    return {"policy": surrogate, "value": value, "entropy": entropy,
            "clipped": ((ratio - 1).abs() > settings.clip).float().mean()}


def finetune(run: str | Path, out: str | Path, settings: PPOTraining | None = None,
             progress: Progress | None = None) -> InstructionPolicy:
    """The policy of `run` fine-tuned by PPO in its level (or `settings.level`); saved to OUT/policy."""
    settings = settings or PPOTraining()
    if min(settings.frames, settings.envs, settings.rollout, settings.epochs, settings.minibatches) < 1:
        raise ConfigError("frames, envs, rollout, epochs and minibatches: at least 1")
    if settings.minibatches > settings.envs:
        raise ConfigError(f"minibatches: at most envs ({settings.envs}), got {settings.minibatches}")
    policy = load_policy(run)
    before = dict(policy.config.trained)
    level = settings.level or before.get("level", "")
    demos = before.get("seed_range", (0, 0))
    if settings.first_seed < demos[1] and settings.first_seed + settings.frames > demos[0]:
        raise ConfigError(f"first_seed {settings.first_seed}: episodes would reuse the demonstrations' seeds "
                          f"{demos[0]}-{demos[1] - 1}; start past them")
    if settings.first_seed + settings.frames >= EVALUATION_SEEDS:
        raise ConfigError(f"first_seed {settings.first_seed}: episodes could reach the evaluation seeds (from "
                          f"{EVALUATION_SEEDS:,}); start lower")
    torch.set_num_threads(threads_for(settings.threads))
    seed_everything(settings.seed)
    out = Path(out)
    (out / LOG_DIR).mkdir(parents=True, exist_ok=True)
    log = (out / LOG_DIR / LOG).open("w", encoding="utf-8")
    policy.eval()
    actors = Actors(policy, level, settings.envs, settings.first_seed, settings.seed)
    everything = torch.optim.Adam(policy.parameters(), lr=settings.lr, eps=1e-5)
    critic = torch.optim.Adam(policy.value.parameters(), lr=settings.lr * 10, eps=1e-5)
    per_update = settings.envs * settings.rollout
    updates = max(1, settings.frames // per_update)
    started = time.perf_counter()
    shuffle = torch.Generator().manual_seed(settings.seed)
    try:
        for update in range(1, updates + 1):
            rollout, last_value = actors.collect(settings.rollout)
            advantage = advantages(rollout.rewards, rollout.values, rollout.dones, last_value, settings.gamma,
                                   settings.gae_lambda)
            returns = advantage + rollout.values
            warming = update <= settings.critic_warmup
            optimizer = critic if warming else everything
            totals: dict[str, float] = {}
            passes = settings.epochs * settings.minibatches
            for _ in range(settings.epochs):
                order = torch.randperm(settings.envs, generator=shuffle)
                for rows in order.chunk(settings.minibatches):
                    terms = _losses(policy, rollout, rows, advantage, returns, settings)
                    loss = settings.value_weight * terms["value"]
                    if not warming:
                        loss = loss + terms["policy"] - settings.entropy * terms["entropy"]
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(policy.parameters(), settings.max_grad_norm)
                    optimizer.step()
                    for name, value in terms.items():
                        totals[name] = totals.get(name, 0.0) + float(value.detach()) / passes
            recent = actors.finished[-200:]
            record = {"update": update, "frames": update * per_update, "critic_only": warming,
                      "episodes": len(actors.finished),
                      "success_recent": round(float(np.mean([s for s, _ in recent])), 4) if recent else None,
                      "steps_recent": round(float(np.mean([n for _, n in recent])), 2) if recent else None,
                      "frames_per_s": round(update * per_update / (time.perf_counter() - started), 1),
                      **{k: round(v, 5) for k, v in totals.items()}}
            log.write(json.dumps(record) + "\n")
            log.flush()
            if progress:
                progress(update, updates, f"success {record['success_recent']}")
            if update % settings.save_every == 0 or update == updates:
                _save(policy, out, before, settings, level, actors, record)
    finally:
        log.close()
        actors.close()
    return policy


def _save(policy: InstructionPolicy, out: Path, before: dict, settings: PPOTraining, level: str, actors: Actors,
          last: dict) -> None:
    ppo = {**asdict(settings), "level": level, "frames_done": last["frames"], "episodes": last["episodes"],
           "seed_range": [actors.first_seed, actors.next_seed], "success_last_200": last["success_recent"]}
    policy.config = replace(policy.config, trained={**before, "ppo": [*before.get("ppo", []), ppo]})
    policy.save(out / POLICY_DIR)
