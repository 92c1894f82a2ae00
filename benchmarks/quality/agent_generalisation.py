"""Generalisation and curricula of a cloned BabyAI policy: success on missions whose colour/object
combination never appeared in training, and a harder level started from an easier level's policy.

    .venv/bin/python -m benchmarks.quality.agent_generalisation [--level GoToLocal] [--demos 5000]
        [--epochs 10] [--hold-out "purple ball" "yellow key" "grey box"] [--easier GoToRedBall]
        [--episodes 1000]

Three policies of LEVEL, each trained for --epochs from the first --demos bot demonstrations (seeds
from 0, the imitation benchmark's folders under .benchmarks-cache/agent, reused when there):
  all         every demonstration (the imitation benchmark's run);
  held out    the same demonstrations less those whose mission names a held-out phrase (the three
              defaults, one per object type and colour, were fixed before any run; ~1/6 of GoToLocal's);
  curriculum  every demonstration, starting from EASIER's policy (trained as the imitation benchmark
              does, same count and epochs); its training minutes are LEVEL's only.
Each is measured on test seeds from 2 x 10^9 (never in training), split by mission: --episodes whose
mission names a held-out phrase and --episodes whose mission names none, greedy (the most likely
action) and sampled (drawn from the policy, seeded per episode). Figures go to each run's
generalisation.json.
"""
from __future__ import annotations

import argparse
import json
import time

from benchmarks.quality.agent_imitation import CACHE, TEST_SEEDS, run_one

HOLD_OUT = ("purple ball", "yellow key", "grey box")
RESULT = "generalisation.json"


def _train(folder, demos, settings) -> float:
    """Train into `folder` unless a finished run is there; its training minutes (the Trainer's clock)."""
    from sensorium.agent.imitation import POLICY_DIR, RUNS_DIR, train_policy

    summary = folder / RUNS_DIR / POLICY_DIR / "summary.json"
    if not summary.is_file() or json.loads(summary.read_text()).get("epoch") != settings.epochs:
        train_policy(demos, folder, settings)
    trained = json.loads(summary.read_text())
    return (trained["data_seconds"] + trained["compute_seconds"]) / 60


def measure(folder, level: str, held_out: tuple[str, ...], episodes: int, minutes: float) -> dict:
    from sensorium.agent.missions import MissionKind, seeds_with_missions, wanted
    from sensorium.agent.policy import load_policy
    from sensorium.agent.rollout import Conditions, run_episodes, seeds_after, summarise

    policy = load_policy(folder)
    trained = policy.config.trained
    result = {"run": folder.name, "level": level, "demonstrations": trained["demonstrations"],
              "held_out_dropped": trained.get("held_out_dropped", 0), "training_minutes": minutes,
              "curriculum": trained.get("curriculum", [])}
    for kind in (MissionKind.SEEN, MissionKind.HELD_OUT):
        seeds = seeds_with_missions(level, seeds_after(TEST_SEEDS, tuple(trained["seed_range"])), episodes,
                                    wanted(kind, held_out))
        started = time.perf_counter()
        greedy = summarise(run_episodes(policy, level, seeds))
        sampled = summarise(run_episodes(policy, level, seeds, conditions=Conditions(sample=True)))
        result[kind.value] = {"first_seed": seeds[0], "last_seed": seeds[-1], "greedy": greedy["success_rate"],
                              "sampled": sampled["success_rate"], "mean_steps_greedy": greedy["mean_steps"],
                              "episodes_per_s": round(2 * len(seeds) / (time.perf_counter() - started), 1)}
    (folder / RESULT).write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", default="GoToLocal")
    parser.add_argument("--demos", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--hold-out", nargs="+", default=list(HOLD_OUT))
    parser.add_argument("--easier", default="GoToRedBall")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    from sensorium.agent.imitation import ImitationTraining
    from sensorium.agent.missions import phrases

    held_out = phrases(args.hold_out)
    demos, stem = CACHE / f"{args.level}-demos", f"{args.level}-{args.demos}"
    easier = CACHE / f"{args.easier}-{args.demos}-e{args.epochs}"
    plain = run_one(args.level, args.demos, args.epochs, args.episodes, args.threads, retrain=False)
    run_one(args.easier, args.demos, args.epochs, args.episodes, args.threads, retrain=False)
    common = {"epochs": args.epochs, "episodes": args.demos, "threads": args.threads, "progress": False}
    runs = [("all", CACHE / f"{stem}-e{args.epochs}", plain["training_minutes"])]
    held = CACHE / f"{stem}-heldout-e{args.epochs}"
    runs.append(("held out", held, _train(held, demos, ImitationTraining(hold_out=list(held_out), **common))))
    taught = CACHE / f"{stem}-from-{args.easier}-e{args.epochs}"
    runs.append(("curriculum", taught, _train(taught, demos, ImitationTraining(init_from=str(easier), **common))))
    print(f"held out: {', '.join(held_out)}; {args.episodes} test episodes per mission kind\n")
    print("| policy | demonstrations | training | seen missions: greedy | sampled | held-out missions: greedy "
          "| sampled | episodes/s (evaluation) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, folder, minutes in runs:
        r = measure(folder, args.level, held_out, args.episodes, minutes)
        seen, unseen = r["seen"], r["held-out"]
        print(f"| {name} | {r['demonstrations']:,} | {minutes:.1f} min | {seen['greedy']:.3f} | {seen['sampled']:.3f} "
              f"| {unseen['greedy']:.3f} | {unseen['sampled']:.3f} | {unseen['episodes_per_s']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
