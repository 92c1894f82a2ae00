"""PPO fine-tuning of a cloned BabyAI policy: success on unseen seeds before and after.

    .venv/bin/python -m benchmarks.quality.agent_finetune [--level GoToLocal] [--demos 5000] [--epochs 10]
        [--frames 1000000] [--episodes 1000]

The cloned policy is the imitation benchmark's run LEVEL-DEMOS-eEPOCHS (trained there if missing);
`sensorium.agent.ppo.finetune` with its defaults (64 environments x 40 steps per update, lr 1e-3,
GAE lambda 0.99, 5 critic-only updates; episodes from seeds 5 x 10^8 on) runs for --frames, and both
policies are measured on the same --episodes test seeds from 2 x 10^9 (never in training; PPO's
settings were chosen on GoToRedBall runs measured on seeds from 10^9, a dev split), greedy and
sampled. The fine-tuned run goes to .benchmarks-cache/agent/LEVEL-DEMOS-eEPOCHS-ppoFRAMES (reused
when finished); its figures to finetune.json there.
"""
from __future__ import annotations

import argparse
import json
import time

from benchmarks.quality.agent_imitation import CACHE, TEST_SEEDS, run_one

RESULT = "finetune.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", default="GoToLocal")
    parser.add_argument("--demos", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    from sensorium.agent.policy import load_policy
    from sensorium.agent.ppo import LOG, LOG_DIR, PPOTraining, finetune
    from sensorium.agent.rollout import Conditions, evaluation_seeds, run_episodes, summarise

    run_one(args.level, args.demos, args.epochs, args.episodes, args.threads, retrain=False)
    cloned = CACHE / f"{args.level}-{args.demos}-e{args.epochs}"
    tuned = cloned.with_name(f"{cloned.name}-ppo{args.frames}")
    log = tuned / LOG_DIR / LOG
    if not (tuned / RESULT).is_file():
        started = time.perf_counter()
        finetune(cloned, tuned, PPOTraining(frames=args.frames, threads=args.threads))
        minutes = (time.perf_counter() - started) / 60
        rows = []
        for name, folder in (("cloned", cloned), ("cloned + PPO", tuned)):
            policy = load_policy(folder)
            seeds = evaluation_seeds(args.episodes, tuple(policy.config.trained["seed_range"]), TEST_SEEDS)
            greedy = summarise(run_episodes(policy, args.level, seeds))
            sampled = summarise(run_episodes(policy, args.level, seeds, conditions=Conditions(sample=True)))
            rows.append({"policy": name, "greedy": greedy["success_rate"], "sampled": sampled["success_rate"],
                         "mean_steps_greedy": greedy["mean_steps"], "mean_steps_sampled": sampled["mean_steps"]})
        last = json.loads(log.read_text().splitlines()[-1])
        (tuned / RESULT).write_text(json.dumps({"minutes": minutes, "frames_per_s": last["frames_per_s"],
                                                "frames": last["frames"], "rows": rows}, indent=1))
    result = json.loads((tuned / RESULT).read_text())
    print(f"{args.level}, {args.demos:,} demonstrations, {args.epochs} epochs; PPO {result['frames']:,} frames in "
          f"{result['minutes']:.1f} min ({result['frames_per_s']:.0f} frames/s); {args.episodes} test seeds\n")
    print("| policy | success, greedy | success, sampled | mean length, greedy | mean length, sampled |")
    print("|---|---|---|---|---|")
    for r in result["rows"]:
        print(f"| {r['policy']} | {r['greedy']:.3f} | {r['sampled']:.3f} | {r['mean_steps_greedy']:.1f} | "
              f"{r['mean_steps_sampled']:.1f} |")
    print("\nsuccess of the last 200 training episodes (sampled), every tenth update:")
    for line in log.read_text().splitlines()[::10]:
        r = json.loads(line)
        print(f"  {r['frames']:>9,} frames: {r['success_recent']}")


if __name__ == "__main__":
    main()
