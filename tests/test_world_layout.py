"""Layouts planned from prompts (`sensorium.world.layout`) and the text-to-image model that draws to them:
a prompt is read into objects and a relation, the plan stands them as asked (measured by the world's
own renderer), the map paints each object's colour and shape over its box with nearer objects on
top, and a layout-reading model trains, saves and draws to its plans. (Whether a trained model
follows the plan is a benchmark: benchmarks/quality/imagine_world.py.)"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sensorium.diffusion import ImagineConfig, TextToImage
from sensorium.errors import ConfigError
from sensorium.world.layout import (LAYOUT_CHANNELS, layout_map, layout_rows, plan_layout, planned_maps,
                                    read_prompt)
from sensorium.world.relations import Relation, relation_holds
from sensorium.world.scene import WorldObject
from sensorium.world.vocabulary import COLOURS, SHAPES, Attribute


@pytest.mark.parametrize("text, objects, relation", [
    ("a big red metal ball to the left of a blue cone",
     [{"size": "large", "colour": "red", "material": "metal", "shape": "sphere"}, {"colour": "blue", "shape": "cone"}],
     Relation.LEFT),
    ("A picture of a green ring and a brown cylinder", [{"colour": "green", "shape": "torus"},
                                                         {"colour": "brown", "shape": "cylinder"}], None),
    ("a scene with a yellow cone behind a gray block", [{"colour": "yellow", "shape": "cone"},
                                                         {"colour": "gray", "shape": "cube"}], Relation.BEHIND),
    ("the cyan thing in front of the purple one", [{"colour": "cyan"}, {"colour": "purple"}], Relation.FRONT),
    ("shiny spheres", [{"material": "metal", "shape": "sphere"}], None),
    ("a red cube right", [{"colour": "red", "shape": "cube"}], None),  # a relation needs two objects
])
def test_a_prompt_is_read_into_objects_and_a_relation(text, objects, relation):
    reading = read_prompt(text)
    assert [{a.value: v for a, v in o.items()} for o in reading.objects] == objects
    assert reading.relation == relation and not reading.unread


def test_a_prompt_with_no_object_word_is_unread_and_gets_no_plan():
    reading = read_prompt("a bowl of ramen with chopsticks")
    assert reading.unread and reading.objects == []
    assert plan_layout(reading, 64, np.random.default_rng(0)) is None
    maps, plans = planned_maps(["a bowl of ramen"], 64, seed=0)
    assert plans == [None] and not maps.any()


@pytest.mark.parametrize("relation", list(Relation))
def test_a_planned_layout_stands_as_asked(relation):
    words = {Relation.LEFT: "to the left of", Relation.RIGHT: "to the right of", Relation.FRONT: "in front of",
             Relation.BEHIND: "behind"}[relation]
    reading = read_prompt(f"a red cube {words} a blue sphere")  # a red cube: held out under condition A, still planned
    for seed in range(8):
        plan = plan_layout(reading, 64, np.random.default_rng(seed))
        first, second = plan.objects
        assert (first.colour, first.shape, second.colour, second.shape) == ("red", "cube", "blue", "sphere")
        assert relation_holds(first, second, relation, 64) is True
        for obj in plan.objects:
            x0, y0, x1, y1 = obj.box
            assert 0 < x0 < x1 < 64 and 0 < y0 < y1 < 64 and obj.size == "large"


def test_unnamed_attributes_are_drawn_and_sizes_kept_to_the_trained_ones():
    plans = [plan_layout(read_prompt("a small sphere"), 64, np.random.default_rng(seed)) for seed in range(12)]
    assert {p.objects[0].shape for p in plans} == {"sphere"}
    assert len({p.objects[0].colour for p in plans}) > 2  # no colour asked: any
    assert {p.objects[0].size for p in plans} == {"large"}  # small was never trained: large instead
    small = plan_layout(read_prompt("a small sphere"), 64, np.random.default_rng(0), sizes=("small", "large"))
    assert small.objects[0].size == "small"


def test_the_map_paints_colour_shape_and_occupancy_with_nearer_objects_on_top():
    near = WorldObject(0, "cone", "yellow", "large", "matte", (0.0, -1.0), box=(10, 10, 30, 30), depth=5.0)
    far = WorldObject(1, "torus", "blue", "large", "metal", (0.0, 2.0), box=(20, 20, 40, 40), depth=8.0)
    rows = layout_rows([near, far])
    assert rows[0][1:3].tolist() == [COLOURS.index("blue"), SHAPES.index("torus")]  # far first: painted under
    painted = layout_map(rows, 48)
    assert painted.shape == (LAYOUT_CHANNELS, 48, 48)
    yellow, cone = COLOURS.index("yellow"), len(COLOURS) + SHAPES.index("cone")
    blue, torus = COLOURS.index("blue"), len(COLOURS) + SHAPES.index("torus")
    assert painted[yellow, 25, 25] == painted[cone, 25, 25] == 1 and painted[blue, 25, 25] == painted[torus, 25, 25] == 0
    assert painted[blue, 35, 35] == painted[torus, 35, 35] == 1 and painted[yellow, 35, 35] == 0
    assert painted[-1].sum() == 20 * 20 + 20 * 20 - 10 * 10 and painted[:, 45, 45].sum() == 0
    assert (painted[:len(COLOURS)].sum(0) == painted[-1]).all()  # one colour wherever something stands


def test_plans_are_a_function_of_the_seed():
    prompts = ["a red sphere to the left of a blue cone"] * 3
    first, plans = planned_maps(prompts, 64, seed=5)
    again, _ = planned_maps(prompts, 64, seed=5)
    other, _ = planned_maps(prompts, 64, seed=6)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other) and not np.array_equal(first[0], first[1])  # each picture its own plan
    assert all(relation_holds(p.objects[0], p.objects[1], Relation.LEFT, 64) for p in plans)


def tiny_model(layout: bool) -> TextToImage:
    torch.manual_seed(0)
    return TextToImage(ImagineConfig(size=32, image_size=32, channels=3, widths=[32, 32, 32], patch=2,
                                     attention=False, layout=layout)).eval()


def test_a_layout_reading_model_sees_the_layout_and_none_means_zeros():
    model = tiny_model(layout=True)
    with torch.no_grad():  # a fresh UNet's last convolution is zero: give it weights so outputs can differ
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    noisy, steps, prompts = torch.randn(2, 3, 32, 32), torch.tensor([500, 500]), torch.randn(2, 384)
    maps = torch.from_numpy(planned_maps(["a red sphere left of a blue cone"] * 2, 32, seed=0)[0])
    with torch.no_grad():
        planned = model(noisy, steps, prompts, None, maps)
        empty = model(noisy, steps, prompts, None, None)
        zeros = model(noisy, steps, prompts, None, torch.zeros_like(maps))
        dropped = model(noisy, steps, prompts, torch.tensor([True, True]), maps, torch.tensor([False, False]))
    assert not torch.allclose(planned, empty)
    torch.testing.assert_close(empty, zeros)
    torch.testing.assert_close(dropped, model(noisy, steps, prompts, torch.tensor([True, True]), None))
    with pytest.raises(ValueError, match="layouts: shape"):
        model(noisy, steps, prompts, None, maps[:, :3])
    assert tiny_model(layout=False).unet.config.in_channels == 12
    assert model.unet.config.in_channels == (3 + LAYOUT_CHANNELS) * 4


@pytest.mark.parametrize("table, field", [
    ('data = "digits.npz"\nprompts = "digits"\nlayout = true', "imagine.layout: only for data"),
    ('data = "world"\nprompts = "world"\nsize = 64\nimage_size = 64\nchannels = 3\nlayout = true\ndrop_layout = 1.0',
     r"imagine.drop_layout: in \[0, 1\)"),
])
def test_a_layout_outside_the_world_or_a_bad_drop_rate_names_its_field(tmp_path, table, field):
    from sensorium.training.config import read_toml
    from sensorium.training.imagining import parse_run

    path = tmp_path / "bad.toml"
    path.write_text(f"[imagine]\n{table}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=field):
        parse_run(read_toml(path))


def test_attribute_values_read_from_synonyms_are_canonical():
    reading = read_prompt("two tiny rubber rings")
    assert reading.objects == [{Attribute.SIZE: "small", Attribute.MATERIAL: "matte", Attribute.SHAPE: "torus"}]
