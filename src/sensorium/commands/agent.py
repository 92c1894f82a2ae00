"""`sensorium agent demos`: the BabyAI planner bot's demonstrations, for an agent that learns to follow
instructions in a grid world (issue 18; the agent's training and evaluation come next).

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
