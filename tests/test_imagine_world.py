"""Text -> image on the procedural world (`training.imagining_world`): every training prompt is true
of its scene, condition A never shows what it holds out, and a world config trains and draws
RGB scenes end to end. (Whether a trained model follows colour, shape and relation is a benchmark,
benchmarks/quality/imagine_world.py: an hour of training does not fit the test suite.)"""
from __future__ import annotations

import itertools
import random
import re

import numpy as np
import pytest

from sensorium.errors import ConfigError
from sensorium.generation.imagine import load_imaginer
from sensorium.training.imagining import parse_run, train_imaginer
from sensorium.training.imagining_world import held_out_combinations, scene_prompt, world_pictures
from sensorium.world import Condition, SceneOptions, generate_scene
from sensorium.world.language import RELATION_WORDS
from sensorium.world.relations import relation_holds
from sensorium.world.vocabulary import COLOURS, SYNONYMS, colours_for

SHAPE_WORD = {word: shape for shape in ("cube", "sphere", "cylinder", "cone", "torus") for word in SYNONYMS[shape]}
OBJECT = re.compile(rf"\b({'|'.join(COLOURS)}) (?:(?:matte|rubber|metal|shiny|metallic) )?({'|'.join(SHAPE_WORD)})\b")


def test_every_prompt_is_true_of_its_scene():
    options = SceneOptions(size=64, min_objects=1, max_objects=2, condition=Condition.A, sizes=("large",))
    relations_said = 0
    for index in range(150):
        scene, _ = generate_scene(3, index, options)
        rng = random.Random(index)
        for _ in range(3):
            prompt = scene_prompt(scene, rng)
            named = [(colour, SHAPE_WORD[word]) for colour, word in OBJECT.findall(prompt)]
            assert len(named) == len(scene.objects), prompt
            # the scene's objects in the order the prompt names them (two alike: either order may be meant)
            readings = [list(order) for order in itertools.permutations(scene.objects)
                        if [(o.colour, o.shape) for o in order] == named]
            assert readings, f"{prompt!r} names objects the scene lacks"
            for relation, words in RELATION_WORDS.items():
                if f" {words} " in prompt:
                    relations_said += 1
                    assert any(relation_holds(a, b, relation, scene.size) is True for a, b in readings), prompt
    assert relations_said > 50  # most two-object prompts say how the objects stand


def test_condition_a_never_shows_what_it_holds_out():
    held_out = held_out_combinations("A")
    assert len(held_out) == 8 and ("red", "cube") in held_out and ("gray", "cube") not in held_out
    assert set(held_out) == {(c, s) for s in ("cube", "cylinder") for c in colours_for(s, Condition.B)}
    assert not set(held_out) & set(held_out_combinations("B")) and held_out_combinations("all") == []
    world = world_pictures(200, 32, "A", seed=1, progress=False)
    named = {(colour, SHAPE_WORD[word]) for options in world.prompts for text in options
             for colour, word in OBJECT.findall(text)}
    assert named and not named & set(held_out)
    assert world.images.shape == (200, 32, 32, 3) and len(world.concepts) == 40


def world_config(folder, **imagine) -> str:
    table = {"data": '"world"', "prompts": '"world"', "scenes": 48, "size": 32, "image_size": 32, "channels": 3,
             "widths": "[16, 32, 32]", "samples_steps": 2, **imagine}
    lines = "\n".join(f"{key} = {value}" for key, value in table.items())
    path = folder / "world.toml"
    path.write_text(f"[imagine]\n{lines}\n\n[train]\nepochs = 1\nbatch_size = 16\nprogress = false\nseed = 0\n",
                    encoding="utf-8")
    return path


def test_a_world_config_trains_and_draws_rgb_scenes(tmp_path):
    train_imaginer(world_config(tmp_path, patch=2), tmp_path / "run")  # 2 x 2 squares folded: a 16 px UNet
    imaginer = load_imaginer(tmp_path / "run")
    assert imaginer.config.trained["condition"] == "A" and imaginer.config.channels == 3
    assert imaginer.config.patch == 2 and imaginer.model.unet.config.sample_size == 16
    drawn = imaginer.imagine("a red sphere to the left of a blue cone", n=2, steps=2, seed=0)
    assert drawn.images.shape == (2, 32, 32, 3) and drawn.images.dtype == np.uint8
    assert drawn.nearest[0].concept in {"red sphere", "blue cone"} and drawn.warning is None
    assert imaginer.imagine("a bowl of ramen with chopsticks", n=1, steps=1).warning


@pytest.mark.parametrize("change, field", [({"prompts": '"digits"'}, "imagine.prompts"),
                                            ({"channels": 1}, "imagine.channels"),
                                            ({"condition": '"C"'}, "imagine.condition"),
                                            ({"object_sizes": '["huge"]'}, "imagine.object_sizes")])
def test_a_bad_world_config_names_its_field(tmp_path, change, field):
    from sensorium.training.config import read_toml

    with pytest.raises(ConfigError, match=field):
        parse_run(read_toml(world_config(tmp_path, **change)))


def test_folding_pixel_squares_is_checked_against_the_picture_size(tmp_path):
    from sensorium.training.config import read_toml

    with pytest.raises(ConfigError, match=r"imagine\.patch: 1, 2 or 4, got 3"):
        parse_run(read_toml(world_config(tmp_path, patch=3)))
    with pytest.raises(ConfigError, match=r"imagine\.size: a multiple of 32 .* got 48"):
        parse_run(read_toml(world_config(tmp_path, patch=4, size=48, image_size=48)))


def test_a_world_model_that_reads_token_states_trains_saves_and_draws(tmp_path):
    prompt = "a red cube to the left of a blue sphere"
    train_imaginer(world_config(tmp_path, patch=2, tokens=24), tmp_path / "run")
    imaginer = load_imaginer(tmp_path / "run")
    assert imaginer.config.tokens == 24 and imaginer.embed([prompt]).shape == (1, 25, 384)
    drawn = imaginer.imagine(prompt, n=2, steps=2, seed=0)
    assert drawn.images.shape == (2, 32, 32, 3) and drawn.warning is None
    assert imaginer.imagine("a red cube", n=1, steps=1).nearest[0].concept == "red cube"
    again = imaginer.imagine(prompt, n=2, steps=2, seed=0)
    np.testing.assert_array_equal(drawn.images, again.images)


def test_a_world_layout_config_trains_saves_and_draws_to_its_plans(tmp_path):
    import json

    from PIL import Image

    from sensorium.generation.imagine import write_png

    train_imaginer(world_config(tmp_path, patch=2, layout="true"), tmp_path / "run")
    imaginer = load_imaginer(tmp_path / "run")
    assert imaginer.config.layout and imaginer.config.trained["drop_layout"] == 0.1
    prompt = "a red cube to the left of a blue sphere"
    drawn = imaginer.imagine(prompt, n=2, steps=2, seed=3)
    assert drawn.images.shape == (2, 32, 32, 3) and drawn.warning is None
    assert [[(o["colour"], o["shape"]) for o in plan] for plan in drawn.layouts] == [[("red", "cube"), ("blue", "sphere")]] * 2
    for plan in drawn.layouts:  # the plan says where; left of means a smaller centre column
        left, right = plan
        assert (left["box"][0] + left["box"][2]) < (right["box"][0] + right["box"][2])
    np.testing.assert_array_equal(drawn.images, imaginer.imagine(prompt, n=2, steps=2, seed=3).images)
    path = write_png(tmp_path / "one.png", drawn.images[0], drawn.metadata(drawn.images[0], 0))
    with Image.open(path) as image:
        assert json.loads(image.text["layout"]) == drawn.layouts[0]
    unplanned = imaginer.imagine("a bowl of ramen with chopsticks", n=1, steps=1)
    assert "no layout could be planned" in unplanned.warning and unplanned.layouts == [[]]
