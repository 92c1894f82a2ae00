"""`sensorium agent demos | train | eval | run`: an agent that learns to follow instructions in BabyAI's
grid world from the planner bot's demonstrations, measured on seeds it never saw, and filmed.

Registered on the `sensorium` app by `sensorium.cli` as the `agent` group.
"""
from __future__ import annotations

import json
from pathlib import Path

import typer

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
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Run the BabyAI bot on LEVEL and store what the agent saw, its mission and the bot's actions in OUT."""
    from ..agent.demos import make_demos

    update = None if json_out else progress_bar(f"bot demonstrations of {level}")
    with failing_cleanly():
        summary = make_demos(out, level, episodes, seed=seed, shard_episodes=shard_episodes, progress=update)
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
SAMPLE_HELP = ("Draw each action from the policy's distribution (seeded by the episode) instead of taking the "
               "most likely one; BabyAI's evaluate.py does, and it breaks the loops a greedy policy gets stuck in.")


def _load_policy(run: Path):
    from ..agent.policy import STEM, InstructionPolicy

    return InstructionPolicy.load(run if (run / f"{STEM}.json").is_file() else run / "policy")


@agent_app.command("train")
def train(
    demos: Path = typer.Argument(..., help="A folder from `sensorium agent demos`."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: the policy goes to OUT/policy, checkpoints and "
                                                      "the loss per epoch to OUT/runs/policy."),
    epochs: int = typer.Option(10, "--epochs", min=1),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Episodes per optimizer step."),
    lr: float = typer.Option(3e-3, "--lr"),
    width: int = typer.Option(64, "--width", min=8, help="Channels of the view encoder, mission and memory."),
    episodes: int = typer.Option(0, "--episodes", min=0, help="Use the first N demonstrations (0 = all)."),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(0, "--threads", help="Torch threads; 0 = every core, -1 = the cores idle now."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in OUT exactly where it stopped."),
):
    """Behaviour cloning: a policy (cell-symbol embeddings, FiLM by the mission, LSTM memory) learns to do
    what the bot did, through the learning framework's Trainer; safetensors + JSON."""
    from ..agent.imitation import POLICY_DIR, ImitationTraining, train_policy

    settings = ImitationTraining(epochs=epochs, batch_size=batch_size, lr=lr, width=width, episodes=episodes,
                                 seed=seed, threads=threads)
    with failing_cleanly():
        policy = train_policy(demos, out, settings, resume=resume)
    record = policy.config.trained
    make_console().print(f"policy trained on {record['demonstrations']} demonstrations of {record['level']} "
                         f"({record['steps']} steps) in {out / POLICY_DIR}; measure it with `sensorium agent eval "
                         f"{out} --episodes 1000`", markup=False)


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
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Success rate and mean episode length on seeds never used for training."""
    from ..agent.rollout import Conditions, bot_steps, evaluation_seeds, run_episodes, summarise

    with failing_cleanly():
        policy = _load_policy(run)
        trained = policy.config.trained
        level = level or trained.get("level", "")
        seeds = evaluation_seeds(episodes, tuple(trained.get("seed_range", (0, 0))), first_seed)
        conditions = Conditions(mask_share=mask_cells, paraphrase=paraphrase, sample=sample)
        outcomes = run_episodes(policy, level, seeds, conditions=conditions)
        summary = {"level": level, "first_seed": seeds[0], "mask_cells": mask_cells, "paraphrase": paraphrase,
                   "sampled_actions": sample,
                   **summarise(outcomes, bot_steps(level, seeds) if bot else None)}
    unknown = sorted({w for o in outcomes for w in policy.unknown_words(o.mission)})
    summary["unknown_mission_words"] = unknown
    if json_out:
        print(json.dumps(summary, indent=2))
        return
    console = make_console()
    console.print(f"{level}: success {summary['success_rate']:.3f} over {episodes} episodes (seeds {seeds[0]}-"
                  f"{seeds[-1]}), mean length {summary['mean_steps']}", markup=False)
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
    from ..agent.replay import animation_format, record_episode, write_animation
    from ..agent.rollout import Conditions

    with failing_cleanly():
        animation_format(render)
        policy = _load_policy(run)
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
