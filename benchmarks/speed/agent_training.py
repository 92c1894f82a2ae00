"""How fast behaviour cloning trains: real (unpadded) steps per second of the policy's training step.

    .venv/bin/python -m benchmarks.speed.agent_training [--levels GoTo GoToLocal PutNextLocal] [--batches 30]
        [--episodes 2000] [--conv-layers 4] [--threads 2]

For each level: the first `--episodes` bot demonstrations (`.benchmarks-cache/agent/LEVEL-demos`, made on
every core when missing, as `agent_imitation` makes them), a fresh policy (width 64, `--conv-layers`), and
`--batches` training steps (forward, loss, backward, AdamW at lr 3e-3) on batches of 32 episodes drawn with
a fixed seed and padded to their longest, as `sensorium agent train` collates them; two steps more first,
not timed. Prints real steps/s (what `agent_imitation`'s steps/s counts) and how many steps a batch
carries (real and padding) per real one. To compare two versions of the code, point PYTHONPATH at each one's `src`.
"""
from __future__ import annotations

import argparse
import time
from itertools import islice
from pathlib import Path

CACHE = Path(".benchmarks-cache") / "agent"
BATCH, WARMUP = 32, 2


def measure(level: str, episodes: int, batches: int, conv_layers: int) -> dict:
    import torch

    from sensorium.agent.demos import Demos, make_demos
    from sensorium.agent.imitation import collate_episodes
    from sensorium.agent.missions import mission_words
    from sensorium.agent.policy import PAD, UNK, InstructionPolicy, PolicyConfig

    folder = CACHE / f"{level}-demos"
    make_demos(folder, level, episodes, shard_episodes=1000, workers=0)
    kept = list(islice(Demos(folder).episodes(), episodes))
    words = sorted({w for e in kept for w in mission_words(e.mission)})
    torch.manual_seed(0)
    policy = InstructionPolicy(PolicyConfig(vocabulary=(PAD, UNK, *words), conv_layers=conv_layers)).train()
    missions = policy.mission_ids([e.mission for e in kept])
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    order = torch.randperm(len(kept), generator=torch.Generator().manual_seed(0)).tolist()
    real = padded = 0
    started = 0.0
    for number in range(WARMUP + batches):
        if number == WARMUP:
            started = time.perf_counter()
        chosen = [order[(number * BATCH + i) % len(order)] for i in range(BATCH)]
        batch = collate_episodes([(kept[i], missions[i]) for i in chosen])
        optimizer.zero_grad()
        policy(batch).backward()
        optimizer.step()
        if number >= WARMUP:
            real += batch["size"]
            padded += batch["mask"].numel()
    seconds = time.perf_counter() - started
    return {"steps_per_s": real / seconds, "padding": padded / real, "seconds": seconds, "steps": real}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", nargs="+", default=["GoTo", "GoToLocal", "PutNextLocal"])
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--conv-layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print("| level | batches of 32 episodes | real steps | steps carried (real and padding) per real one | seconds | "
          "real steps/s |")
    print("|---|---|---|---|---|---|")
    for level in args.levels:
        r = measure(level, args.episodes, args.batches, args.conv_layers)
        print(f"| {level} | {args.batches} | {r['steps']:,} | {r['padding']:.2f} | {r['seconds']:.1f} | "
              f"{r['steps_per_s']:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
