"""The BabyAI bot's demonstrations (`sensorium.agent.demos`): what is stored replays exactly in the
level, generation resumes and extends to the same episodes, bad folders and levels get clear errors,
and the level generator's chatter stays out of the output."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("minigrid", reason="the agent extra (minigrid) is not installed")

from sensorium.agent.demos import MANIFEST, Demos, make_demos  # noqa: E402
from sensorium.agent.levels import AgentError, make_level, quiet_reset  # noqa: E402
from sensorium.errors import ReadError  # noqa: E402


def arrays_of(folder) -> list[tuple]:
    return [(e.mission, e.seed, e.images.tobytes(), e.directions.tobytes(), e.actions.tobytes())
            for e in Demos(folder).episodes()]


def test_stored_episodes_replay_exactly_and_reach_the_goal(tmp_path, capfd):
    summary = make_demos(tmp_path / "demos", "PutNextLocal", 12, seed=100, shard_episodes=5)
    assert "Sampling rejected" not in capfd.readouterr().out  # PutNextLocal's generator prints it for these seeds
    demos = Demos(tmp_path / "demos")
    assert len(demos) == summary["episodes"] == 12 and [s["episodes"] for s in demos.shards] == [5, 5, 2]
    assert demos.seed_range == (100, summary["next_seed"]) and summary["next_seed"] >= 112
    env = make_level(demos.level)
    for episode in demos.episodes():
        observation, _ = quiet_reset(env, episode.seed)
        assert observation["mission"] == episode.mission
        for step, action in enumerate(episode.actions):
            assert np.array_equal(observation["image"], episode.images[step])
            assert observation["direction"] == episode.directions[step]
            observation, reward, terminated, truncated, _ = env.step(int(action))
            assert not truncated
        assert terminated and reward > 0  # the stored actions reach the mission's goal
    assert len({e.mission for e in demos.episodes()}) > 3


def test_generation_resumes_after_a_crash_and_extends_to_the_same_episodes(tmp_path):
    straight = tmp_path / "straight"
    make_demos(straight, "GoToLocal", 10, shard_episodes=3)
    crashed = tmp_path / "crashed"
    make_demos(crashed, "GoToLocal", 7, shard_episodes=3)
    record = json.loads((crashed / MANIFEST).read_text())
    record["shards"].pop()  # the last shard was written but the manifest never listed it
    (crashed / MANIFEST).write_text(json.dumps(record))
    again = make_demos(crashed, "GoToLocal", 10, shard_episodes=3, workers=2)  # resumed by two processes
    assert again["made_now"] == 4 and again["episodes"] == 10  # the short shard (1) redrawn whole, then 3 more
    assert arrays_of(crashed) == arrays_of(straight)
    assert Demos(crashed).shards == Demos(straight).shards  # the same seeds, failures and shard boundaries

    with pytest.raises(AgentError, match="seed"):
        make_demos(crashed, "GoToLocal", 12, seed=5, shard_episodes=3)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(AgentError, match="not empty"):
        make_demos(tmp_path / "notes", "GoToLocal", 2)
    (crashed / "shard-00001.npz").write_bytes(b"PK\x03\x04 damaged")
    with pytest.raises(ReadError, match="shard-00001.npz"):
        arrays_of(crashed)
    with pytest.raises(ReadError, match=MANIFEST):
        Demos(tmp_path / "notes")


def test_workers_play_seeds_side_by_side_and_store_the_same_folder_as_one_process(tmp_path):
    alone = make_demos(tmp_path / "alone", "PutNextLocal", 9, seed=100, shard_episodes=4)
    together = make_demos(tmp_path / "together", "PutNextLocal", 9, seed=100, shard_episodes=4, workers=3)
    assert arrays_of(tmp_path / "together") == arrays_of(tmp_path / "alone")
    assert Demos(tmp_path / "together").shards == Demos(tmp_path / "alone").shards  # seeds, failures, steps
    assert together["next_seed"] == alone["next_seed"] and together["made_now"] == 9
    with pytest.raises(AgentError, match="--workers"):
        make_demos(tmp_path / "negative", "PutNextLocal", 9, workers=-1)


def test_cli_writes_demonstrations_and_names_a_close_level_for_a_typo(tmp_path):
    def sensorium(*args):
        return subprocess.run([sys.executable, "-m", "sensorium.cli", "agent", "demos", *args],
                              capture_output=True, text=True, timeout=300)

    made = sensorium("GoToRedBall", "-n", "20", "-o", str(tmp_path / "demos"), "--json")
    assert made.returncode == 0, made.stderr
    summary = json.loads(made.stdout)
    assert summary["episodes"] == 20 and summary["level"] == "BabyAI-GoToRedBall-v0" and summary["steps"] > 20
    assert len(Demos(tmp_path / "demos")) == 20
    typo = sensorium("GoToRedBal", "-o", str(tmp_path / "other"))
    assert typo.returncode == 1 and "did you mean GoToRedBall" in typo.stderr and "Traceback" not in typo.stderr
