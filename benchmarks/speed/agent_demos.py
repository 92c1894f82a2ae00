"""How fast the BabyAI bot's demonstrations are made and how small they are stored.

    .venv/bin/python -m benchmarks.speed.agent_demos [--scale 1.0] [--workers 1 2]

For each level issue 18 measures, `sensorium.agent.demos.make_demos` writes bot episodes into a fresh
folder, once per `--workers` count (1: one process, one core; the bot and the level are pure Python):
episodes per second, steps per episode, stored bytes per step (compressed npz shards of the 7x7x3
symbolic view, the direction and the action) and the seeds the bot did not finish.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

EPISODES = {"GoToRedBall": 2000, "GoToLocal": 2000, "PickupLoc": 1000, "PutNextLocal": 1000, "GoTo": 300,
            "BossLevel": 200}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="Multiply every level's episodes.")
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="Processes playing the bot (each count "
                        "in turn).")
    args = parser.parse_args()
    from sensorium.agent.demos import make_demos

    print("| level | workers | episodes | episodes/s | steps/episode | bytes/step | bot did not finish |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as root:
        for level, episodes in EPISODES.items():
            episodes = max(1, round(episodes * args.scale))
            for workers in args.workers:
                s = make_demos(Path(root) / f"{level}-{workers}", level, episodes, shard_episodes=500, workers=workers)
                print(f"| {level} | {workers} | {s['episodes']} | {s['episodes_per_second']:.1f} | "
                      f"{s['steps'] / s['episodes']:.1f} | {s['bytes'] / s['steps']:.1f} | {s['failed']} |", flush=True)


if __name__ == "__main__":
    main()
