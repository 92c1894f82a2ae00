"""Held-out missions and curricula (`sensorium.agent.missions`, `imitation`): training drops the
demonstrations whose missions mention a held-out phrase and evaluation can keep to exactly those
missions (or the rest) on unseen seeds; a curriculum starts from an easier level's policy with its
vocabulary widened and nothing it knew lost; the CLI trains from a TOML config."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("minigrid", reason="the agent extra (minigrid) is not installed")

from sensorium.agent.demos import Demos, make_demos  # noqa: E402
from sensorium.agent.imitation import ImitationTraining, train_policy  # noqa: E402
from sensorium.agent.levels import AgentError  # noqa: E402
from sensorium.agent.missions import MissionKind, mentions, mission_words, phrases, seeds_with_missions, wanted  # noqa: E402
from sensorium.agent.policy import load_policy  # noqa: E402
from sensorium.agent.rollout import run_episodes, seeds_after  # noqa: E402
from sensorium.errors import ConfigError  # noqa: E402

LEVEL, EASIER = "GoToLocal", "GoToRedBall"
TINY = {"epochs": 1, "width": 16, "progress": False}


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("agent-missions")
    make_demos(root / "local", LEVEL, 150, shard_episodes=50)
    make_demos(root / "easy", EASIER, 40)
    return root


@pytest.fixture(scope="module")
def phrase(demos):
    """A colour and object named by the first demonstration ("red key"): present, and far from every mission."""
    return " ".join(mission_words(next(Demos(demos / "local").episodes()).mission)[-2:])


def sensorium(*args):
    return subprocess.run([sys.executable, "-m", "sensorium.cli", "agent", *args], capture_output=True, text=True,
                          timeout=600)


def test_phrases_are_normalised_and_match_whole_words_in_order():
    assert phrases(["Purple ball, yellow  key", "purple ball"]) == ("purple ball", "yellow key")
    assert mentions("go to a purple ball", ("purple ball",))
    assert mentions("put the grey key next to the purple ball", ("yellow key", "purple ball"))
    assert not mentions("go to the purple box", ("purple ball",))
    assert not mentions("go to the purple balloon", ("purple ball",))
    assert not mentions("go to the ball purple", ("purple ball",))
    with pytest.raises(AgentError, match="no words"):
        phrases(["red ball, ,"])
    with pytest.raises(AgentError, match="held no mission out"):
        wanted(MissionKind.HELD_OUT, ())


def test_training_never_sees_a_held_out_phrase_and_evaluation_finds_only_those_missions(demos, phrase, tmp_path):
    episodes = list(Demos(demos / "local").episodes())
    dropped = sum(mentions(e.mission, (phrase,)) for e in episodes)
    policy = train_policy(demos / "local", tmp_path / "run", ImitationTraining(hold_out=[phrase.upper()], **TINY))
    record = policy.config.trained
    assert record["hold_out"] == [phrase] and record["held_out_dropped"] == dropped > 0
    assert record["demonstrations"] == len(episodes) - dropped
    start, end = record["seed_range"]
    held = seeds_with_missions(LEVEL, seeds_after(start, (start, end)), 6, wanted(MissionKind.HELD_OUT, (phrase,)))
    seen = seeds_with_missions(LEVEL, seeds_after(start, (start, end)), 6, wanted(MissionKind.SEEN, (phrase,)))
    assert all(seed >= end for seed in held + seen) and not set(held) & set(seen)
    assert all(mentions(o.mission, (phrase,)) for o in run_episodes(policy, LEVEL, held))
    assert not any(mentions(o.mission, (phrase,)) for o in run_episodes(policy, LEVEL, seen))
    with pytest.raises(ConfigError, match="purpel ball"):  # a typo would hold nothing out: refused
        train_policy(demos / "local", tmp_path / "typo", ImitationTraining(hold_out=["purpel ball"], **TINY))
    with pytest.raises(AgentError, match="only 0 of"):
        seeds_with_missions(LEVEL, iter(range(10**9, 10**9 + 3)), 2, wanted(MissionKind.HELD_OUT, ("red dragon",)))


def test_a_curriculum_starts_from_the_easier_policy_knowing_everything_it_knew(demos, tmp_path):
    easy = train_policy(demos / "easy", tmp_path / "easy", ImitationTraining(**TINY))
    known = easy.config.vocabulary
    wider = easy.widened(["go", "to", "the", "purple", "key", "purple"], {"level": LEVEL})
    assert wider.config.vocabulary[: len(known)] == known and wider.config.vocabulary[len(known):] == ("purple", "key")
    before, after = easy.state_dict(), wider.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before if name != "words.weight")
    assert torch.equal(after["words.weight"][: len(known)], before["words.weight"])
    seeds = list(range(10**9, 10**9 + 10))
    assert run_episodes(wider.eval(), EASIER, seeds) == run_episodes(easy, EASIER, seeds)

    harder = train_policy(demos / "local", tmp_path / "next", ImitationTraining(init_from=str(tmp_path / "easy"),
                                                                                epochs=1, progress=False))
    step = harder.config.trained["curriculum"]
    assert harder.config.width == 16 and step[0]["level"] == easy.config.trained["level"] and step[0]["epochs"] == 1
    assert set(known) <= set(harder.config.vocabulary)
    with pytest.raises(ConfigError, match="width"):
        train_policy(demos / "local", tmp_path / "wide", ImitationTraining(init_from=str(tmp_path / "easy"), width=32,
                                                                           epochs=1, progress=False))


def test_a_view_with_places_and_deeper_convolutions_is_saved_and_kept_by_a_curriculum(demos, tmp_path):
    placed = train_policy(demos / "easy", tmp_path / "placed", ImitationTraining(positions=True, conv_layers=3, **TINY))
    loaded = load_policy(tmp_path / "placed")
    assert (loaded.config.positions, loaded.config.conv_layers, len(loaded.convs)) == (True, 3, 3)
    assert torch.equal(loaded.places, placed.places) and placed.places.shape == (16, 7, 7)
    assert train_policy(demos / "easy", tmp_path / "plain", ImitationTraining(**TINY)).places is None
    harder = train_policy(demos / "local", tmp_path / "next", ImitationTraining(init_from=str(tmp_path / "placed"),
                                                                                epochs=1, progress=False))
    assert (harder.config.positions, harder.config.conv_layers) == (True, 3)
    assert (harder.config.trained["positions"], harder.config.trained["conv_layers"]) == (True, 3)
    assert not torch.equal(harder.places.detach(), placed.places.detach())  # started from, then trained
    with pytest.raises(ConfigError, match="conv_layers"):
        train_policy(demos / "easy", tmp_path / "none", ImitationTraining(conv_layers=0, **TINY))
    with pytest.raises(ConfigError, match="conv_layers: 2 asked.*has conv_layers 3"):
        train_policy(demos / "local", tmp_path / "other", ImitationTraining(init_from=str(tmp_path / "placed"),
                                                                            conv_layers=2, epochs=1, progress=False))


def test_cli_trains_from_a_toml_config_with_options_winning_and_evaluates_held_out_missions(demos, phrase, tmp_path):
    config = tmp_path / "agent.toml"
    relative = os.path.relpath(demos / "local", tmp_path)
    config.write_text(f'demos = "{relative}"\nepochs = 3\nwidth = 16\nepisodes = 30\nhold_out = ["{phrase}"]\n'
                      f'positions = true\n', encoding="utf-8")
    trained = sensorium("train", str(config), "--out", str(tmp_path / "run"), "--epochs", "1")
    assert trained.returncode == 0, trained.stderr
    record = json.loads((tmp_path / "run" / "policy" / "policy.json").read_text())["trained"]
    assert (record["epochs"], record["width"], record["hold_out"], record["positions"]) == (1, 16, [phrase], True)
    assert record["demonstrations"] + record["held_out_dropped"] == 30  # the first 30, less the held-out ones
    assert f"{record['demonstrations']} demonstrations" in trained.stdout and f"holding out {phrase}" in trained.stdout
    measured = sensorium("eval", str(tmp_path / "run"), "--missions", "held-out", "--episodes", "4", "--json")
    assert measured.returncode == 0, measured.stderr
    summary = json.loads(measured.stdout)
    assert (summary["missions"], summary["held_out"], summary["episodes"]) == ("held-out", [phrase], 4)
    config.write_text(f'demos = "{relative}"\nepoch = 1\n', encoding="utf-8")
    typo = sensorium("train", str(config), "--out", str(tmp_path / "other"))
    assert typo.returncode == 1 and "epoch: unknown key" in typo.stderr and "Traceback" not in typo.stderr
