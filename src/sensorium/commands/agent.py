"""`sensorium agent demos | train | finetune | eval | run`: an agent that learns to follow instructions in BabyAI's
grid world from the planner bot's demonstrations, measured on seeds it never saw, and filmed.

Registered on the `sensorium` app by `sensorium.cli` as the `agent` group.
"""
from __future__ import annotations

import json
from pathlib import Path

import typer

from ..agent.missions import MissionKind
from .console import failing_cleanly, make_console, progress_bar

agent_app = typer.Typer(no_args_is_help=True, help="An agent that follows instructions in BabyAI's grid world: "
                        "expert demonstrations (needs the `agent` extra: minigrid).")


@agent_app.command("demos")
def demos(
    level: str = typer.Argument(..., help="A BabyAI level: GoToRedBall, GoToLocal, PickupLoc, PutNextLocal, GoTo, "
                                          "BossLevel, ... (or its gymnasium id, BabyAI-GoToLocal-v0)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (new, empty, or earlier demonstrations of "
                                                      "the same level and seed, to resume or extend)."),
    episodes: int = typer.Option(1000, "--episodes", "-n", min=1, help="Successful episodes the folder should hold."),
    seed: int = typer.Option(0, "--seed", help="The first reset seed; episodes use seed, seed + 1, ..."),
    shard_episodes: int = typer.Option(1000, "--shard-episodes", min=1, help="Episodes per npz shard."),
    workers: int = typer.Option(0, "--workers", min=0, help="Processes playing the bot; 0 = one per core. The "
                                                            "folder is the same whatever the number."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Run the BabyAI bot on LEVEL and store what the agent saw, its mission and the bot's actions in OUT."""
    from ..agent.demos import make_demos

    update = None if json_out else progress_bar(f"bot demonstrations of {level}")
    with failing_cleanly():
        summary = make_demos(out, level, episodes, seed=seed, shard_episodes=shard_episodes, progress=update,
                             workers=workers)
    if json_out:
        print(json.dumps(summary, indent=2))
        return
    rate = f", {summary['episodes_per_second']} episodes/s" if summary["episodes_per_second"] else ""
    make_console().print(
        f"{summary['episodes']} episodes of {summary['level']} ({summary['steps']} steps, "
        f"{summary['bytes'] / 1e3:,.0f} kB) in {out}: {summary['made_now']} made now{rate}; "
        f"seeds {summary['first_seed']}-{summary['next_seed'] - 1} used ({summary['failed']} the bot did not "
        f"finish): evaluate on other seeds", markup=False)


MASK_HELP = "Hide this share of the view's cells at every step (a robustness test)."
PARAPHRASE_HELP = "Reword each mission as the bot's grammar never does (synonyms, word order)."
MISSIONS_HELP = ("Which missions to evaluate on: all, seen (none of the phrases training held out), or "
                 "held-out (combinations never seen in training).")
SAMPLE_HELP = ("Draw each action from the policy's distribution (seeded by the episode) instead of taking the "
               "most likely one; BabyAI's evaluate.py does, and it breaks the loops a greedy policy gets stuck in.")


@agent_app.command("train")
def train(
    source: Path = typer.Argument(..., help="A folder from `sensorium agent demos`, or a TOML config naming one "
                                            "(demos = \"...\") with any of the options below."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: the policy goes to OUT/policy, checkpoints and "
                                                      "the loss per epoch to OUT/runs/policy."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Passes over the demonstrations (default 10)."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1,
                                          help="Episodes per optimizer step (default 32)."),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate (default 0.003)."),
    width: int | None = typer.Option(None, "--width", min=8, help="Channels of the view encoder, mission and "
                                                                  "memory (default 64)."),
    conv_layers: int | None = typer.Option(None, "--conv-layers", min=1, help="Mission-modulated 3x3 convolutions "
                                                                             "over the view (default 4)."),
    positions: bool | None = typer.Option(None, "--positions/--no-positions", help="Learn where each view cell "
                                          "lies relative to the agent (default: no)."),
    episodes: int | None = typer.Option(None, "--episodes", min=0, help="Use the first N demonstrations (0 = all)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the initial weights and the order (default 0)."),
    threads: int | None = typer.Option(None, "--threads", help="Torch threads; 0 = every core, -1 = the cores "
                                                               "idle now."),
    hold_out: list[str] | None = typer.Option(None, "--hold-out", help="Drop the demonstrations whose missions "
                                              "mention this phrase ('purple ball'; repeat, or split by commas), "
                                              "to test generalisation with `eval --missions held-out`."),
    init_from: Path | None = typer.Option(None, "--init-from", help="Start from this run's policy, trained on an "
                                          "easier level (a curriculum); its width is kept."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in OUT exactly where it stopped."),
):
    """Behaviour cloning: a policy (cell-symbol embeddings, FiLM by the mission, LSTM memory) learns to do
    what the bot did, through the learning framework's Trainer; safetensors + JSON."""
    from ..agent.imitation import ImitationTraining, load_settings, train_policy
    from ..agent.policy import POLICY_DIR

    given = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "width": width, "conv_layers": conv_layers,
             "positions": positions, "episodes": episodes,
             "seed": seed, "threads": threads, "hold_out": list(hold_out) if hold_out else None,
             "init_from": str(init_from) if init_from else None}
    with failing_cleanly():
        if source.suffix.lower() == ".toml":
            demos, settings = load_settings(source, given)
        else:
            demos, settings = source, ImitationTraining(**{k: v for k, v in given.items() if v is not None})
        policy = train_policy(demos, out, settings, resume=resume)
    record = policy.config.trained
    held = f", holding out {', '.join(record['hold_out'])} ({record['held_out_dropped']} dropped)" \
        if record["hold_out"] else ""
    make_console().print(f"policy trained on {record['demonstrations']} demonstrations of {record['level']} "
                         f"({record['steps']} steps{held}) in {out / POLICY_DIR}; measure it with `sensorium agent "
                         f"eval {out} --episodes 1000`", markup=False)


@agent_app.command("finetune")
def finetune(
    run: Path = typer.Argument(..., help="A run folder from `sensorium agent train` (or its policy/)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder for the fine-tuned policy (OUT/policy) and its "
                                                      "log (OUT/runs/ppo/updates.jsonl)."),
    frames: int = typer.Option(500_000, "--frames", min=1, help="Environment steps in all."),
    level: str = typer.Option("", "--level", help="The level to act in (default: the one it was trained on)."),
    envs: int = typer.Option(64, "--envs", min=1, help="Episodes run side by side."),
    rollout: int = typer.Option(40, "--rollout", min=1, help="Steps of each environment between updates."),
    lr: float = typer.Option(1e-3, "--lr"),
    entropy: float = typer.Option(0.01, "--entropy", min=0.0, help="Weight of the entropy bonus."),
    critic_warmup: int = typer.Option(5, "--critic-warmup", min=0, help="First updates that train only the value "
                                                                         "head (imitation never trained it)."),
    first_seed: int = typer.Option(5 * 10**8, "--first-seed", help="Episodes' reset seeds count up from here "
                                                                   "(below the evaluation seeds, from 10^9)."),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(0, "--threads", help="Torch threads; 0 = every core, -1 = the cores idle now."),
):
    """Reinforcement after imitation: PPO in the level, from the cloned policy, rewarded by the level
    for reaching the goal quickly; safetensors + JSON like the policy it started from."""
    from ..agent.policy import POLICY_DIR
    from ..agent.ppo import PPOTraining
    from ..agent.ppo import finetune as run_ppo

    settings = PPOTraining(frames=frames, level=level, envs=envs, rollout=rollout, lr=lr, entropy=entropy,
                           critic_warmup=critic_warmup, first_seed=first_seed, seed=seed, threads=threads)
    with failing_cleanly():
        policy = run_ppo(run, out, settings, progress=progress_bar("PPO updates"))
    done = policy.config.trained["ppo"][-1]
    make_console().print(f"fine-tuned on {done['frames_done']:,} frames ({done['episodes']:,} episodes of "
                         f"{done['level']}; the last 200 succeeded {done['success_last_200']}) in {out / POLICY_DIR}; "
                         f"measure it with `sensorium agent eval {out} --episodes 1000`", markup=False)


@agent_app.command("eval")
def evaluate(
    run: Path = typer.Argument(..., help="A run folder from `sensorium agent train` (or its policy/)."),
    level: str = typer.Option("", "--level", help="The level to act in (default: the one it was trained on)."),
    episodes: int = typer.Option(1000, "--episodes", "-n", min=1),
    first_seed: int = typer.Option(10**9, "--first-seed", help="Evaluation seeds start here, moved past the "
                                                               "demonstrations' seeds if they would overlap."),
    bot: bool = typer.Option(False, "--bot", help="Also run the bot on the same seeds and compare episode lengths."),
    mask_cells: float = typer.Option(0.0, "--mask-cells", min=0.0, max=1.0, help=MASK_HELP),
    paraphrase: bool = typer.Option(False, "--paraphrase", help=PARAPHRASE_HELP),
    sample: bool = typer.Option(False, "--sample", help=SAMPLE_HELP),
    missions: MissionKind = typer.Option(MissionKind.ALL, "--missions", help=MISSIONS_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Success rate and mean episode length on seeds never used for training."""
    from ..agent.missions import seeds_with_missions, wanted
    from ..agent.policy import load_policy
    from ..agent.rollout import (Conditions, bot_steps, evaluation_seeds, run_episodes, seeds_after, seeds_used,
                                 summarise)

    with failing_cleanly():
        policy = load_policy(run)
        trained = policy.config.trained
        level = level or trained.get("level", "")
        avoid = seeds_used(trained)  # the demonstrations' and any PPO run's
        held_out = tuple(trained.get("hold_out", ()))
        if missions is MissionKind.ALL:
            seeds = evaluation_seeds(episodes, avoid, first_seed)
        else:
            seeds = seeds_with_missions(level, seeds_after(first_seed, avoid), episodes, wanted(missions, held_out))
        conditions = Conditions(mask_share=mask_cells, paraphrase=paraphrase, sample=sample)
        outcomes = run_episodes(policy, level, seeds, conditions=conditions)
        summary = {"level": level, "first_seed": seeds[0], "mask_cells": mask_cells, "paraphrase": paraphrase,
                   "sampled_actions": sample, "missions": missions.value, "held_out": list(held_out),
                   **summarise(outcomes, bot_steps(level, seeds) if bot else None)}
    unknown = sorted({w for o in outcomes for w in policy.unknown_words(o.mission)})
    summary["unknown_mission_words"] = unknown
    if json_out:
        print(json.dumps(summary, indent=2))
        return
    console = make_console()
    kind = "" if missions is MissionKind.ALL else f" with {missions.value} missions"
    console.print(f"{level}: success {summary['success_rate']:.3f} over {episodes} episodes{kind} (seeds "
                  f"{seeds[0]}-{seeds[-1]}), mean length {summary['mean_steps']}", markup=False)
    if unknown:
        console.print(f"missions used words the policy never learned: {', '.join(unknown[:10])}", markup=False)


@agent_app.command("run")
def run_one(
    run: Path = typer.Argument(..., help="A run folder from `sensorium agent train` (or its policy/)."),
    render: Path = typer.Option(..., "--render", help="Write the episode here: an animated .gif or an .mp4."),
    level: str = typer.Option("", "--level", help="The level to act in (default: the one it was trained on)."),
    seed: int = typer.Option(10**9, "--seed", help="The level's reset seed (the layout and the mission)."),
    fps: float = typer.Option(4.0, "--fps", min=0.1, help="Frames (actions) per second."),
    mask_cells: float = typer.Option(0.0, "--mask-cells", min=0.0, max=1.0, help=MASK_HELP),
    paraphrase: bool = typer.Option(False, "--paraphrase", help=PARAPHRASE_HELP),
    sample: bool = typer.Option(False, "--sample", help=SAMPLE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
):
    """Act in one episode and film it, with the mission written on every frame."""
    from ..agent.policy import load_policy
    from ..agent.replay import animation_format, record_episode, write_animation
    from ..agent.rollout import Conditions

    with failing_cleanly():
        animation_format(render)
        policy = load_policy(run)
        level = level or policy.config.trained.get("level", "")
        recording = record_episode(policy, level, seed, Conditions(mask_share=mask_cells, paraphrase=paraphrase,
                                                                       sample=sample))
        written = write_animation(recording, render, fps=fps)
    outcome = recording.outcome
    if json_out:
        print(json.dumps({"level": level, "seed": seed, "mission": outcome.mission, "success": outcome.success,
                          "steps": outcome.steps, "frames": len(recording.frames), "render": str(written)}, indent=2))
        return
    verdict = "done" if outcome.success else "not done"
    make_console().print(f"{level} seed {seed}: \"{outcome.mission}\" {verdict} in {outcome.steps} steps; "
                         f"{len(recording.frames)} frames in {written}", markup=False)
