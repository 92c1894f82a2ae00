"""Behaviour cloning on BabyAI: success on unseen seeds against the number of bot demonstrations.

    .venv/bin/python -m benchmarks.quality.agent_imitation [--levels GoToRedBall GoToLocal]
        [--demos 1000 5000] [--epochs 10] [--episodes 1000] [--figure docs/figures/agent-sample-efficiency.png]
        [--start-from GoToLocal-10000-e10] [--conv-layers 4] [--positions]

For each level and demonstration count: `sensorium agent demos` (seeds from 0), `sensorium agent
train`'s `train_policy` (defaults: width 64, batch 32 episodes, lr 3e-3) for `--epochs`, then
`--episodes` evaluation episodes on seeds from 2 x 10^9 (never in training; the settings were chosen
on runs measured on seeds from 10^9, a dev split), with the bot on the same seeds for the length ratio.
Success is measured twice: with the most likely action at each step (greedy) and with actions drawn
from the policy (sampled, BabyAI's evaluate.py default), each episode's draws from its seed.
Prints a table. Runs are kept under .benchmarks-cache/agent, a finished one is reused (its training time
from its summary) unless `--retrain`, and each run's figures go to its evaluation.json; `--start-from RUN`
trains from RUN's policy instead of from scratch (a curriculum: the easier level's words are kept); `--figure` draws
every evaluated run with the view encoder asked there as the sample-efficiency curve (success against
demonstrations, a colour per level, one line per level and epoch count). `--conv-layers` and `--positions`
set the policy's view encoder (runs other than the default's are cached under names ending "-c4", "-pos").
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

CACHE = Path(".benchmarks-cache") / "agent"
TEST_SEEDS = 2 * 10**9  # dev runs used seeds from 10**9
EVALUATION = "evaluation.json"


def _trained(folder: Path, epochs: int) -> dict | None:
    """The Trainer's summary of a finished run in `folder` (None when there is none to reuse)."""
    from sensorium.agent.imitation import POLICY_DIR, RUNS_DIR
    from sensorium.agent.policy import STEM

    summary = folder / RUNS_DIR / POLICY_DIR / "summary.json"
    if not (folder / POLICY_DIR / f"{STEM}.json").is_file() or not summary.is_file():
        return None
    record = json.loads(summary.read_text())
    return record if record.get("epoch") == epochs else None


def run_one(level: str, count: int, epochs: int, episodes: int, threads: int, retrain: bool, start: str = "",
            conv_layers: int = 2, positions: bool = False) -> dict:
    """Train (unless cached) and measure LEVEL's policy cloned from COUNT demonstrations; START names a
    cached run of an easier level (e.g. "GoToLocal-10000-e10") whose policy training begins from."""
    from sensorium.agent.demos import make_demos
    from sensorium.agent.imitation import POLICY_DIR, ImitationTraining, train_policy
    from sensorium.agent.policy import InstructionPolicy
    from sensorium.agent.rollout import Conditions, bot_steps, evaluation_seeds, run_episodes, summarise

    encoder = (f"-c{conv_layers}" if conv_layers != 2 else "") + ("-pos" if positions else "")
    folder = CACHE / ((f"{level}-{count}-from-{start}-e{epochs}" if start else f"{level}-{count}-e{epochs}") + encoder)
    trained = None if retrain else _trained(folder, epochs)
    if trained is None:
        demos = CACHE / f"{level}-demos"
        make_demos(demos, level, count, shard_episodes=1000, workers=0)  # the bot on every core
        easier = {"init_from": str(CACHE / start)} if start else {}
        train_policy(demos, folder, ImitationTraining(epochs=epochs, episodes=count, threads=threads, progress=False,
                                                      conv_layers=conv_layers, positions=positions, **easier))
        trained = _trained(folder, epochs)
    policy = InstructionPolicy.load(folder / POLICY_DIR)
    seeds = evaluation_seeds(episodes, tuple(policy.config.trained["seed_range"]), TEST_SEEDS)
    started = time.perf_counter()
    summary = summarise(run_episodes(policy, level, seeds), bot_steps(level, seeds))
    evaluated = time.perf_counter() - started
    sampled = summarise(run_episodes(policy, level, seeds, conditions=Conditions(sample=True)))
    result = {"level": level, "demonstrations": count, "epochs": epochs, "start_from": start, "first_seed": seeds[0],
              "conv_layers": policy.config.conv_layers, "positions": policy.config.positions,
              "training_minutes": (trained["data_seconds"] + trained["compute_seconds"]) / 60,
              "training_steps_per_s": trained["samples_per_s"], "evaluation_seconds": evaluated,
              **summary, "sampled_success_rate": sampled["success_rate"], "sampled_mean_steps": sampled["mean_steps"]}
    (folder / EVALUATION).write_text(json.dumps(result, indent=1))
    return result


PLOT, MARGIN_X, MARGIN_Y = (560, 340), 64, 40
COLOURS = [(76, 114, 176), (221, 132, 82), (85, 168, 104), (196, 78, 82), (129, 114, 178), (147, 120, 96),
           (218, 139, 195)]


def draw_curve(path: Path, conv_layers: int = 2, positions: bool = False) -> Path:
    """Success on unseen seeds against demonstrations (log scale) of every evaluated run with this view encoder
    (runs of different encoders are not one curve); a colour per level, a line per level and epoch count."""
    from PIL import Image, ImageDraw

    results = [r for r in (json.loads(p.read_text()) for p in sorted(CACHE.glob(f"*/{EVALUATION}")))
               if r.get("conv_layers", 2) == conv_layers and bool(r.get("positions")) == positions]
    if not results:
        raise SystemExit(f"--figure: no evaluated run with {conv_layers} convolutions under {CACHE}")
    series: dict[str, list[tuple[int, float]]] = {}
    for r in results:
        start = f" from {r['start_from'].split('-')[0]}" if r.get("start_from") else ""
        name = f"{r['level'].removeprefix('BabyAI-').removesuffix('-v0')}{start}, {r['epochs']} epochs"
        series.setdefault(f"{name}, greedy", []).append((r["demonstrations"], r["success_rate"]))
        series.setdefault(f"{name}, sampled", []).append((r["demonstrations"], r["sampled_success_rate"]))
    counts = [c for points in series.values() for c, _ in points]
    low, high = math.log10(min(counts) / 1.5), math.log10(max(counts) * 1.5)
    width, height = PLOT[0] + 2 * MARGIN_X + 230, PLOT[1] + 2 * MARGIN_Y
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)

    def at(count: float, success: float) -> tuple[float, float]:
        return (MARGIN_X + PLOT[0] * (math.log10(count) - low) / (high - low), MARGIN_Y + PLOT[1] * (1 - success))

    draw.rectangle([MARGIN_X, MARGIN_Y, MARGIN_X + PLOT[0], MARGIN_Y + PLOT[1]], outline=(40, 40, 40))
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = at(10**low, tick)[1]
        draw.line([MARGIN_X, y, MARGIN_X + PLOT[0], y], fill=(225, 225, 225))
        draw.text((MARGIN_X - 34, y - 6), f"{tick:.2f}", fill=(40, 40, 40))
    for count in sorted(set(counts)):
        x = at(count, 0)[0]
        draw.text((x - 14, MARGIN_Y + PLOT[1] + 6), f"{count:,}", fill=(40, 40, 40))
    encoder = f"{conv_layers} convolutions" + (" + places" if positions else "")
    draw.text((MARGIN_X, 12), f"BabyAI behaviour cloning ({encoder}): success on 1,000 unseen seeds", fill=(40, 40, 40))
    draw.text((MARGIN_X + PLOT[0] / 2 - 60, height - 18), "bot demonstrations (log)", fill=(40, 40, 40))
    levels = sorted({name.split(", ", 1)[0] for name in series})  # a colour per level (and start)
    for number, (name, points) in enumerate(sorted(series.items())):
        colour = COLOURS[levels.index(name.split(", ", 1)[0]) % len(COLOURS)]
        greedy = name.endswith("greedy")  # greedy: thick line, filled dots; sampled: thin line, rings
        xy = [at(c, s) for c, s in sorted(points)]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=3 if greedy else 1)
        for x, y in xy:
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour if greedy else "white", outline=colour, width=2)
        legend = MARGIN_Y + 10 + 20 * number
        draw.line([MARGIN_X + PLOT[0] + 14, legend + 6, MARGIN_X + PLOT[0] + 34, legend + 6], fill=colour,
                  width=3 if greedy else 1)
        draw.text((MARGIN_X + PLOT[0] + 40, legend), name, fill=(40, 40, 40))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", nargs="+", default=["GoToRedBall", "GoToLocal"])
    parser.add_argument("--demos", nargs="+", type=int, default=[1000, 5000])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--retrain", action="store_true", help="Train again even where a finished run is cached.")
    parser.add_argument("--figure", type=Path, help="Draw the sample-efficiency curve of every evaluated run here.")
    parser.add_argument("--start-from", default="", help="a run under .benchmarks-cache/agent (e.g. "
                        "GoToLocal-10000-e10, trained by an earlier call) whose policy training starts from")
    parser.add_argument("--conv-layers", type=int, default=2, help="the policy's mission-modulated convolutions "
                        "(2, the first default, keeps the earlier runs' cache names; `sensorium agent train` "
                        "now uses 4)")
    parser.add_argument("--positions", action="store_true", help="the policy learns where each view cell lies")
    args = parser.parse_args()
    if args.start_from and not (CACHE / args.start_from).is_dir():
        parser.error(f"--start-from: no run {CACHE / args.start_from} (train it first, e.g. --levels "
                     f"{args.start_from.split('-')[0]} --demos {args.start_from.split('-')[1]})")
    print("| level | demonstrations | epochs | training | steps/s (training) | success, greedy | success, sampled "
          "| mean length (greedy) | length / bot's (greedy successes) | evaluation (greedy) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for level in args.levels:
        for count in args.demos:
            r = run_one(level, count, args.epochs, args.episodes, args.threads, args.retrain, args.start_from,
                        args.conv_layers, args.positions)
            name = (f"{level} from {args.start_from}" if args.start_from else level) + \
                (f" ({args.conv_layers} conv{', places' if args.positions else ''})" if args.conv_layers != 2 or
                 args.positions else "")
            print(f"| {name} | {count:,} | {args.epochs} | {r['training_minutes']:.1f} min | "
                  f"{r['training_steps_per_s']:.0f} | {r['success_rate']:.3f} | {r['sampled_success_rate']:.3f} | "
                  f"{r['mean_steps']:.1f} | "
                  f"{r['steps_over_bot_when_successful']} | {r['evaluation_seconds']:.0f} s |", flush=True)
    if args.figure:
        print(f"curve: {draw_curve(args.figure, args.conv_layers, args.positions)}")


if __name__ == "__main__":
    main()
