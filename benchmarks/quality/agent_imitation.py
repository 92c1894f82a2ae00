"""Behaviour cloning on BabyAI: success on unseen seeds against the number of bot demonstrations.

    .venv/bin/python -m benchmarks.quality.agent_imitation [--levels GoToRedBall GoToLocal]
        [--demos 1000 5000] [--epochs 10] [--episodes 1000]

For each level and demonstration count: `sensorium agent demos` (seeds from 0), `sensorium agent
train`'s `train_policy` (defaults: width 64, batch 32 episodes, lr 3e-3) for `--epochs`, then
`--episodes` evaluation episodes on seeds from 2 x 10^9 (never in training; the settings were chosen
on runs measured on seeds from 10^9, a dev split), with the bot on the same seeds for the length ratio. Prints a table; runs are kept under .benchmarks-cache/agent.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

CACHE = Path(".benchmarks-cache") / "agent"
TEST_SEEDS = 2 * 10**9  # dev runs used seeds from 10**9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", nargs="+", default=["GoToRedBall", "GoToLocal"])
    parser.add_argument("--demos", nargs="+", type=int, default=[1000, 5000])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    from sensorium.agent.demos import make_demos
    from sensorium.agent.imitation import ImitationTraining, train_policy
    from sensorium.agent.rollout import bot_steps, evaluation_seeds, run_episodes, summarise

    print("| level | demonstrations | epochs | training | success (unseen seeds) | mean length | "
          "length / bot's (successes) | evaluation |")
    print("|---|---|---|---|---|---|---|---|")
    for level in args.levels:
        for count in args.demos:
            folder = CACHE / f"{level}-demos"
            make_demos(folder, level, max(args.demos), shard_episodes=1000)
            started = time.perf_counter()
            policy = train_policy(folder, CACHE / f"{level}-{count}-e{args.epochs}",
                                  ImitationTraining(epochs=args.epochs, episodes=count, threads=args.threads,
                                                    progress=False))
            trained = time.perf_counter() - started
            seeds = evaluation_seeds(args.episodes, tuple(policy.config.trained["seed_range"]), TEST_SEEDS)
            started = time.perf_counter()
            summary = summarise(run_episodes(policy, level, seeds), bot_steps(level, seeds))
            evaluated = time.perf_counter() - started
            print(f"| {level} | {count:,} | {args.epochs} | {trained / 60:.1f} min | {summary['success_rate']:.3f} | "
                  f"{summary['mean_steps']:.1f} | {summary['steps_over_bot_when_successful']} | {evaluated:.0f} s |",
                  flush=True)


if __name__ == "__main__":
    main()
