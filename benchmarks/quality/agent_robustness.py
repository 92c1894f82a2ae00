"""Robustness of a cloned BabyAI policy: success on unseen seeds with part of its view hidden, with its
missions paraphrased outside the bot's grammar, and two controls that say how to read those figures.

    .venv/bin/python -m benchmarks.quality.agent_robustness [--runs GoToRedBall-5000-e25 GoToLocal-5000-e25]
        [--episodes 1000] [--masks 0.1 0.25 0.5]

Runs are the folders `benchmarks.quality.agent_imitation` leaves under .benchmarks-cache/agent. Every
condition uses the same seeds from 2 x 10^9 (never in training; the conditions' settings were tried on
seeds from 10^9, a dev split), and each seed draws its own mask and rewording, so the rows differ by
the condition only. Every row acts greedily (the most likely action) except "sampled actions" (drawn
from the policy, BabyAI's evaluate.py default; the draws seeded per episode). Controls: "no mission"
gives every episode an all-unknown mission (how much of the success needs the words at all, the floor
a paraphrase can fall to); "random actions" replaces the given share of actions by uniform ones
(whether noise alone moves success, as hiding cells might).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

CACHE = Path(".benchmarks-cache") / "agent"
TEST_SEEDS = 2 * 10**9


def _controls():
    from sensorium.agent.policy import ACTIONS, UNK_ID, InstructionPolicy

    class NoMission(InstructionPolicy):
        def mission_ids(self, missions):
            return torch.full((len(missions), 1), UNK_ID, dtype=torch.long)

    class NoisyActions(InstructionPolicy):
        share = 0.0

        def act(self, images, directions, missions, state=None):
            actions, state = super().act(images, directions, missions, state)
            swap = torch.rand(len(actions), generator=self.noise) < self.share
            random = torch.randint(0, ACTIONS, (len(actions),), generator=self.noise)
            return torch.where(swap, random, actions), state

    return NoMission, NoisyActions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["GoToRedBall-5000-e25", "GoToLocal-5000-e25"])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--masks", nargs="+", type=float, default=[0.1, 0.25, 0.5])
    parser.add_argument("--noise", type=float, default=0.1)
    args = parser.parse_args()
    from sensorium.agent.imitation import POLICY_DIR
    from sensorium.agent.policy import InstructionPolicy
    from sensorium.agent.rollout import Conditions, evaluation_seeds, run_episodes, summarise

    NoMission, NoisyActions = _controls()
    print("| run | condition | success (unseen seeds) | vs plain | mean length | episodes/s |")
    print("|---|---|---|---|---|---|")
    for run in args.runs:
        folder = CACHE / run / POLICY_DIR
        policy = InstructionPolicy.load(folder)
        level = policy.config.trained["level"]
        seeds = evaluation_seeds(args.episodes, tuple(policy.config.trained["seed_range"]), TEST_SEEDS)
        noisy = NoisyActions.load(folder)
        noisy.share, noisy.noise = args.noise, torch.Generator().manual_seed(0)
        cases = [("plain", policy, Conditions()), ("paraphrased missions", policy, Conditions(paraphrase=True))]
        cases += [(f"{share:.0%} of cells hidden", policy, Conditions(mask_share=share)) for share in args.masks]
        cases += [("sampled actions", policy, Conditions(sample=True)),
                  ("sampled actions, paraphrased missions", policy, Conditions(sample=True, paraphrase=True))]
        cases += [("control: no mission", NoMission.load(folder), Conditions()),
                  (f"control: {args.noise:.0%} random actions", noisy, Conditions())]
        plain = None
        for name, acting, conditions in cases:
            started = time.perf_counter()
            summary = summarise(run_episodes(acting, level, seeds, conditions=conditions))
            rate = len(seeds) / (time.perf_counter() - started)
            plain = summary["success_rate"] if plain is None else plain
            print(f"| {run} | {name} | {summary['success_rate']:.3f} | {summary['success_rate'] - plain:+.3f} | "
                  f"{summary['mean_steps']:.1f} | {rate:.0f} |", flush=True)


if __name__ == "__main__":
    main()
