"""How fast the BabyAI bot's demonstrations are made and how small they are stored.

    .venv/bin/python -m benchmarks.speed.agent_demos [--scale 1.0]

For each level issue 18 measures, `sensorium.agent.demos.make_demos` writes bot episodes into a fresh
folder in one process (one core: the bot and the level are pure Python): episodes per second, steps
per episode, stored bytes per step (compressed npz shards of the 7x7x3 symbolic view, the direction
and the action) and the seeds the bot did not finish.
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
    args = parser.parse_args()
    from sensorium.agent.demos import make_demos

    print("| level | episodes | episodes/s | steps/episode | bytes/step | bot did not finish |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as root:
        for level, episodes in EPISODES.items():
            episodes = max(1, round(episodes * args.scale))
            s = make_demos(Path(root) / level, level, episodes, shard_episodes=500)
            print(f"| {level} | {s['episodes']} | {s['episodes_per_second']:.1f} | {s['steps'] / s['episodes']:.1f} | "
                  f"{s['bytes'] / s['steps']:.1f} | {s['failed']} |", flush=True)


if __name__ == "__main__":
    main()
