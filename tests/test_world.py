"""The procedural world: scenes are reproducible, obey their rules, look like what they say, and every
caption and answer is true of the scene, checked here by code independent of the generator's."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sensorium.cli import app
from sensorium.world import (ANSWERS, CANNOT_TELL, Condition, SceneOptions, WorldError, WorldSpec, generate_scene,
                             make_world, render_scene)
from sensorium.world.language import captions, language_rng, questions
from sensorium.world.vocabulary import COLOURS, PALETTE, SIZE_RADIUS, canonical

ATTRIBUTES = ("shape", "colour", "size", "material")


def _scenes(n, seed=11, **options):
    return [generate_scene(seed, i, SceneOptions(**options)) for i in range(n)]


def test_a_scene_is_a_function_of_seed_and_index():
    first, image = generate_scene(4, 9)
    again, image_again = generate_scene(4, 9)
    other, image_other = generate_scene(4, 10)
    assert first.to_json() == again.to_json() and np.array_equal(image, image_again)
    assert first.to_json()["objects"] != other.to_json()["objects"]
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8
    assert not np.array_equal(image, image_other)


def test_scenes_obey_their_rules():
    options = dict(size=96, min_objects=3, max_objects=10)
    counts = []
    for scene, image in _scenes(40, **options):
        assert image.shape == (96, 96, 3)
        assert 3 <= len(scene.objects) <= 10
        counts.append(len(scene.objects))
        for obj in scene.objects:
            x0, y0, x1, y1 = obj.box
            assert 0 < x0 < x1 < 96 and 0 < y0 < y1 < 96, "every object wholly inside the picture"
            assert obj.visible >= 0.35
            assert all(-3 <= v <= 3 for v in obj.position)
        for a in scene.objects:  # footprints never touch
            for b in scene.objects:
                if a.id < b.id:
                    gap = math.dist(a.position, b.position)
                    assert gap >= SIZE_RADIUS[a.size] + SIZE_RADIUS[b.size]
    assert min(counts) <= 5 and max(counts) >= 8, "object counts spread over the range"


def test_cogent_conditions_swap_the_colours_of_cubes_and_cylinders():
    first, second = {"gray", "blue", "brown", "yellow"}, {"red", "green", "purple", "cyan"}
    seen = {}
    for condition in (Condition.A, Condition.B):
        cubes, cylinders, others = set(), set(), set()
        for scene, _ in _scenes(60, seed=3, condition=condition):
            for obj in scene.objects:
                {"cube": cubes, "cylinder": cylinders}.get(obj.shape, others).add(obj.colour)
        seen[condition] = cubes, cylinders
        assert len(others) == 8, "the other shapes take every colour"
    assert seen[Condition.A] == (first, second)
    assert seen[Condition.B] == (second, first)


def _chromaticity(rgb):
    rgb = np.asarray(rgb, dtype=float) + 1.0
    return rgb / rgb.sum(axis=-1, keepdims=True)


def test_pixels_show_the_annotated_colour_and_material():
    """Each object's own pixels (the renderer's owner map) have its palette colour's hue; metal
    objects, mirroring a bright sky and a dark floor, have far more contrast than matte ones."""
    palette = {name: _chromaticity(rgb) for name, rgb in PALETTE.items()}
    right = total = material_right = 0
    for scene, image in _scenes(30, seed=21):
        drawn = render_scene(scene)
        assert np.array_equal(drawn.image, image)
        for obj in scene.objects:
            pixels = image[drawn.owner == obj.id].astype(float)
            if len(pixels) < 40:
                continue
            chroma = pixels.max(axis=1) - pixels.min(axis=1)
            vivid = pixels[chroma >= np.median(chroma)]  # the pixels least washed out by reflections
            hue = _chromaticity(np.median(vivid, axis=0))
            nearest = min(palette, key=lambda name: np.abs(palette[name] - hue).sum())
            right += nearest == obj.colour
            total += 1
            brightness = pixels.mean(axis=1)
            contrast = (np.percentile(brightness, 95) - np.percentile(brightness, 5)) / (np.median(brightness) + 1)
            material_right += (contrast > 1.05) == (obj.material == "metal")
    assert total > 100 and right / total >= 0.95, f"{right}/{total} objects show their colour"
    assert material_right / total >= 0.85, f"{material_right}/{total} objects' material told by contrast alone"


def _objects_fitting(scene, words):
    """Objects a noun phrase fits, decoding the words with the vocabulary only (not the generator's code)."""
    wanted = {}
    for word in words:
        value = canonical(word)
        if value is None:
            assert word in ("thing", "things", "object", "objects"), word
            continue
        attribute = next(a for a, values in (("shape", ("cube", "sphere", "cylinder", "cone", "torus")),
                                             ("colour", COLOURS), ("size", ("small", "large")),
                                             ("material", ("matte", "metal"))) if value in values)
        wanted[attribute] = value
    return [o for o in scene.objects if all(getattr(o, a) == v for a, v in wanted.items())]


QUERIES = [(r"What colour is the (.+)\?", "colour"), (r"What is the colour of the (.+)\?", "colour"),
           (r"The (.+) is what colour\?", "colour"), (r"What shape is the (.+)\?", "shape"),
           (r"What is the shape of the (.+)\?", "shape"), (r"What size is the (.+)\?", "size"),
           (r"How big is the (.+)\?", "size"), (r"What material is the (.+) made of\?", "material"),
           (r"What is the (.+) made of\?", "material")]
RELATION_WORDS = re.compile(r"\b(left of|right of|in front of|behind)\b")


def test_captions_and_answers_are_true_of_the_scene():
    checked = {"count": 0, "query": 0, "absent": 0, "caption": 0, "relation": 0}
    for index, (scene, _) in enumerate(_scenes(40, seed=8)):
        rng = language_rng(8, index)
        for caption in captions(scene, 5, rng):
            for mention in caption.mentions:
                fits = [o.id for o in scene.objects if all(getattr(o, a) == v for a, v in mention["description"].items())]
                if caption.template in ("count", "inventory", "object", "pair"):
                    assert set(mention["objects"]) <= set(fits)
                if caption.template in ("count", "inventory"):
                    assert mention["count"] == len(fits), caption.text
                    checked["caption"] += 1
        for question in questions(scene, 12, rng):
            assert question.answer in ANSWERS
            text = question.text
            match = re.fullmatch(r"How many (.+) are (there|in the scene)\?", text) or \
                re.fullmatch(r"What number of (.+) are there\?", text)
            if match:
                assert question.answer == str(len(_objects_fitting(scene, match.group(1).split()))), text
                checked["count"] += 1
            for pattern, attribute in QUERIES:
                match = re.fullmatch(pattern, text)
                if not match or RELATION_WORDS.search(match.group(1)):
                    continue
                fits = _objects_fitting(scene, match.group(1).split())
                if question.answer == CANNOT_TELL:
                    assert fits == [], text
                    checked["absent"] += 1
                else:
                    assert len(fits) == 1 and getattr(fits[0], attribute) == question.answer, text
                    checked["query"] += 1
            match = re.fullmatch(r"Is the (.+) to the (left|right) of the (.+)\?", text)
            if match and question.answerable:
                subject, anchor = (_objects_fitting(scene, match.group(g).split()) for g in (1, 3))
                assert len(subject) == 1 and len(anchor) == 1, text
                left = subject[0].centre_x < anchor[0].centre_x
                assert question.answer == ("yes" if left == (match.group(2) == "left") else "no"), text
                checked["relation"] += 1
    assert all(count >= 5 for count in checked.values()), checked


def test_every_family_appears_and_unanswerable_questions_abstain():
    families, answers = {}, set()
    for index, (scene, _) in enumerate(_scenes(30, seed=2)):
        for question in questions(scene, 10, language_rng(2, index)):
            families[question.family.value] = families.get(question.family.value, 0) + 1
            answers.add(question.answer)
            assert (question.answer == CANNOT_TELL) == (question.family.value == "unanswerable")
    assert set(families) == {"exist", "count", "query_attribute", "compare_attribute", "compare_count", "relation",
                             "unanswerable"}
    assert {"yes", "no", CANNOT_TELL} <= answers and len(answers) >= 20


def test_make_world_writes_resumes_and_refuses_to_mix(tmp_path: Path):
    spec = WorldSpec(seed=6, options=SceneOptions(size=64, max_objects=6), questions_per_scene=4, captions_per_scene=2)
    whole = tmp_path / "whole"
    summary = make_world(whole, 12, spec, workers=1)
    assert summary["scenes"] == 12 and summary["questions"] == sum(1 for _ in open(whole / "questions.jsonl"))
    assert len(list((whole / "images").glob("*.png"))) == 12
    line = json.loads((whole / "questions.jsonl").read_text().splitlines()[0])
    assert (whole / line["image"]).is_file() and line["answer"] in ANSWERS

    parts = tmp_path / "parts"  # interrupted mid-line after 7 scenes, then resumed and extended
    make_world(parts, 8, spec, workers=1)
    text = (parts / "scenes.jsonl").read_bytes()
    cut = text.index(b"\n", text.index(b'"scene":7')) - 40
    (parts / "scenes.jsonl").write_bytes(text[:cut])
    make_world(parts, 12, spec, workers=1)
    assert (parts / "scenes.jsonl").read_bytes() == (whole / "scenes.jsonl").read_bytes()
    assert (parts / "images" / "000007.png").read_bytes() == (whole / "images" / "000007.png").read_bytes()

    with pytest.raises(WorldError, match="other parameters"):
        make_world(parts, 12, WorldSpec(seed=7, options=spec.options), workers=1)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(WorldError, match="not empty"):
        make_world(tmp_path / "busy", 3, spec, workers=1)


def test_worker_processes_write_the_same_world(tmp_path: Path):
    spec = WorldSpec(seed=1, options=SceneOptions(size=48, max_objects=4), questions_per_scene=2, captions_per_scene=1)
    make_world(tmp_path / "one", 70, spec, workers=1)
    make_world(tmp_path / "two", 70, spec, workers=2)
    assert (tmp_path / "one" / "scenes.jsonl").read_bytes() == (tmp_path / "two" / "scenes.jsonl").read_bytes()


def test_cli_world_make(tmp_path: Path):
    runner = CliRunner()
    result = runner.invoke(app, ["world", "make", str(tmp_path / "w"), "--scenes", "5", "--split", "B", "--size", "64",
                                 "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["scenes"] == 5 and summary["questions"] > 20
    meta = json.loads((tmp_path / "w" / "world.json").read_text())
    assert meta["condition"] == "B" and meta["condition_colours"]["cube"] == ["red", "green", "purple", "cyan"]
    bad = runner.invoke(app, ["world", "make", str(tmp_path / "x"), "--split", "C"])
    assert bad.exit_code == 2 and "--split" in bad.output
    bad = runner.invoke(app, ["world", "make", str(tmp_path / "x"), "--size", "8"])
    assert bad.exit_code == 2 and "size" in bad.output


def test_questions_manifest_trains_a_model(tmp_path: Path):
    """questions.jsonl is a training manifest as written: picture + question text -> answer."""
    from sensorium.training.config import load_config
    from sensorium.training.data import open_dataset
    from sensorium.training.runs import run_training

    world = tmp_path / "world"
    make_world(world, 40, WorldSpec(seed=3, options=SceneOptions(size=48), questions_per_scene=6), workers=1)
    config_path = tmp_path / "vqa.toml"
    config_path.write_text(f"""
[data]
train = "{world / 'questions.jsonl'}"
val_fraction = 0.2
label = "answer"
[data.modalities.image]
kind = "image"
size = 32
[data.modalities.question]
kind = "text"
max_length = 24
vocab_size = 200
[model.encoders.image]
name = "image_cnn"
dim = 32
widths = [16, 32]
[model.encoders.question]
name = "text_transformer"
dim = 32
depth = 1
heads = 2
max_length = 24
[model.fusion]
method = "cross_attention"
output_dim = 32
[train]
epochs = 1
batch_size = 32
threads = 1
""")
    config = load_config(config_path)
    dataset = open_dataset(config.data.train, config)
    first = json.loads((world / "questions.jsonl").read_text().splitlines()[0])
    sample = dataset[0]
    assert sample["inputs"]["question"] == first["question"]
    assert tuple(sample["inputs"]["image"].shape) == (3, 32, 32)
    assert {"yes", "no", CANNOT_TELL} <= set(dataset.classes["label"])
    run_training(config_path, tmp_path / "run")
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()


def test_jsonl_manifest_errors_name_the_line(tmp_path: Path):
    from sensorium.errors import ReadError
    from sensorium.training.config import load_config
    from sensorium.training.data import open_dataset

    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"question": "is it red?", "answer": "yes"}\n{"question": "what", \n')
    config_path = tmp_path / "c.toml"
    config_path.write_text(f'[data]\ntrain = "{manifest}"\nlabel = "answer"\n[data.modalities.question]\nkind = "text"\n'
                           '[model.encoders.question]\nname = "text_transformer"\n')
    with pytest.raises(ReadError, match="line 2: not JSON"):
        open_dataset(manifest, load_config(config_path))
    manifest.write_text('{"question": "is it red?", "answer": ""}\n')
    with pytest.raises(ReadError, match="line 1, column 'answer': empty label"):
        open_dataset(manifest, load_config(config_path))


def test_chair_is_zero_for_true_captions_and_catches_swapped_words():
    from sensorium.world.chair import chair, mentions

    said = mentions("two small metal spheres to the left of a large green cylinder")
    assert [(m.shape, {a.value: v for a, v in m.attributes.items()}) for m in said] == [
        ("sphere", {"size": "small", "material": "metal"}), ("cylinder", {"size": "large", "colour": "green"})]
    assert [m.shape for m in mentions("a shiny red ball and three tiny things")] == ["sphere", None]

    pairs = []
    for index, (scene, _) in enumerate(_scenes(25, seed=13)):
        pairs += [(c.text, scene) for c in captions(scene, 5, language_rng(13, index))]
    truth = chair(pairs)
    assert truth.captions == len(pairs) and truth.mentions > 100
    assert truth.chair_i == truth.chair_s == truth.attribute_chair_i == truth.attribute_chair_s == 0.0
    assert 0.2 < truth.recall <= 1.0

    wrong_colour, wrong_shape = [], []
    for text, scene in pairs:
        shapes = {o.shape for o in scene.objects}
        absent = next((s for s in ("torus", "cone", "sphere", "cube", "cylinder") if s not in shapes), None)
        for obj in scene.objects:
            if f"{obj.colour} " in text and absent:
                others = {o.colour for o in scene.objects}
                new = next(c for c in COLOURS if c not in others)
                wrong_colour.append((text.replace(f"{obj.colour} ", f"{new} ", 1), scene))
                break
        present = next((o.shape for o in scene.objects if re.search(rf"\b{o.shape}\b", text)), None)
        if absent and present:
            wrong_shape.append((re.sub(rf"\b{present}\b", absent, text, count=1), scene))
    colour = chair(wrong_colour)
    assert colour.attribute_chair_s == 1.0 and colour.chair_i == 0.0, "a wrong colour is an attribute hallucination"
    shape = chair(wrong_shape)
    assert shape.chair_s == 1.0 and shape.chair_i > 0.1


def test_every_question_carries_a_program_that_answers_it():
    """CLEVR-style functional programs: executed on the scene's objects they give the generator's
    answer for every question, "cannot tell" included (a second route to the same truth)."""
    from sensorium.world.program import SLOTS, execute, flatten, unflatten

    ops = set()
    for index, (scene, _) in enumerate(_scenes(40, seed=17)):
        for question in questions(scene, 12, language_rng(17, index)):
            assert execute(question.program, scene) == question.answer, (question.text, question.program)
            ops.add(question.program["op"])
            slots = flatten(question.program)
            assert set(slots) == set(SLOTS) and unflatten(slots) == question.program
    assert ops == {"exist", "count", "query", "same", "more", "fewer", "equal", "relate", "count_related",
                   "query_related"}


def test_a_box_bottom_on_the_floor_says_where_the_object_stands():
    """The camera is known, so the floor point under a box's bottom edge, moved back by the
    footprint's radius, places an object (what a detector's boxes are turned into for relations)."""
    from sensorium.world.render import place_from_box, solid

    errors, depth_errors = [], []
    for scene, _ in _scenes(20, seed=19):
        for obj in scene.objects:
            if obj.visible < 0.9:
                continue  # a hidden bottom edge says nothing
            body = solid(obj.shape, obj.size, obj.colour, obj.material, *obj.position)
            x, z, depth = place_from_box(obj.box, scene.size, body.radius, body.height)
            errors.append(math.dist((x, z), obj.position))
            depth_errors.append(abs(depth - obj.depth))
    assert len(errors) > 60
    assert np.median(errors) < 0.15 and np.percentile(errors, 95) < 0.6
    assert np.median(depth_errors) < 0.15, "well inside the 0.35 margin relations need"
