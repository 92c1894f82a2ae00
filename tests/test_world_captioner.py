"""The world captioner (`sensorium.world.captioner`): decoding controls; attribute words come only from
the objects it found, so it cannot name a shape nobody saw, whatever its weights; trained briefly on
what the shared world-reading fixture's detector and object reader see, it reads the objects, keeps
condition B's pairings, and round-trips through its files and the CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from sensorium.errors import ReadError
from sensorium.world.chair import chair
from sensorium.world.captioner import FEATURES, GROUPS, ObjectCaptioner, ObjectCaptionerConfig, WorldCaptioner, pack
from sensorium.world.decoding import EOS_ID, build_vocabulary
from sensorium.world.scene import Scene
from sensorium.world.vocabulary import SHAPES, Attribute, canonical, words_of
from sensorium.world.writer import read_pictures

CAPTIONS = ["a red cube behind a small ball", "there are two cones", "a scene with three objects: a cube, a cone "
            "and a ring", "only one large metal cylinder", "two small gray spheres", "a big blue rubber block",
            "a green torus", "purple cylinders", "a cyan shiny sphere", "a brown tiny cube", "yellow cones"]


def _seen(*objects: tuple[str, str, str, str]) -> np.ndarray:
    """Object tokens as a perfectly sure object reader would give them, boxes side by side."""
    rows = []
    for n, values in enumerate(objects):
        row = np.zeros(FEATURES, np.float32)
        for value in values:
            row[next(i for i, (_, v) in enumerate(GROUPS) if v == value)] = 1.0
        row[len(GROUPS):] = [0.2 + 0.25 * n, 0.5, 0.2, 0.2, 0.9]
        rows.append(row)
    return np.stack(rows)


def _shapes_said(caption: str) -> set[str]:
    return {canonical(w) for w in words_of(caption)} & set(SHAPES)


def test_an_untrained_decoder_already_names_only_shapes_it_was_shown():
    """The guarantee is structural: whatever the weights, a shape word's probability is bounded by
    what the pointed objects were seen to be."""
    torch.manual_seed(0)
    model = ObjectCaptioner(ObjectCaptionerConfig(vocabulary=build_vocabulary(CAPTIONS), width=32, layers=1,
                                                  heads=2, max_words=16)).eval()
    scenes = [_seen(("cube", "red", "small", "matte")), _seen(("sphere", "gray", "large", "metal"),
                                                             ("cone", "cyan", "small", "matte"))]
    allowed = [{"cube"}, {"sphere", "cone"}]
    for beam in (1, 3):
        for caption, shapes in zip(model.caption_features(scenes, beam=beam, min_words=6), allowed):
            assert _shapes_said(caption) <= shapes, caption
    memory = pack([scenes[0], scenes[1], np.zeros((0, FEATURES), np.float32)])
    assert memory.shape == (3, 2, FEATURES + 1) and memory[:, :, -1].tolist() == [[1, 0], [1, 1], [0, 0]]
    prefix = torch.tensor([[1, *model.encode_words(CAPTIONS[0])[:4]]] * 3)
    with torch.no_grad():
        log_probs = model.logits(memory, prefix)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(3, 5), atol=1e-4)  # a distribution over words
    assert model.decode_words(model.encode_words(CAPTIONS[2])) == CAPTIONS[2]
    assert model.encode_words("a cube")[-1] == EOS_ID


def _model(seed: int = 0) -> ObjectCaptioner:
    torch.manual_seed(seed)
    return ObjectCaptioner(ObjectCaptionerConfig(vocabulary=build_vocabulary(CAPTIONS), width=32, layers=1, heads=2,
                                                 max_words=16)).eval()


SCENES = [_seen(("cube", "red", "small", "matte")),
          _seen(("sphere", "gray", "large", "metal"), ("cone", "cyan", "small", "matte")),
          _seen(("torus", "yellow", "small", "metal"), ("cube", "blue", "large", "matte"), ("cube", "green", "small", "metal"))]


def test_decoding_honours_length_and_repetition_controls():
    model = _model()
    for beam in (1, 3):
        for text in model.caption_features(SCENES, beam=beam, min_words=4, max_words=6, no_repeat_ngram=1):
            words = text.replace(",", " ,").replace(":", " :").split()
            assert 4 <= len(words) <= 6, text
            assert len(set(words)) == len(words), text  # no word (1-gram) twice
    together = model.caption_features(SCENES, beam=1)
    assert together == [model.caption_features([s], beam=1)[0] for s in SCENES]  # batching changes nothing
    with pytest.raises(ValueError, match="beam"):
        model.caption_features(SCENES, beam=0)


def test_beam_search_finds_captions_at_least_as_likely_as_greedy():
    model = _model(1)

    def log_probability(text: str) -> float:
        ids = torch.tensor([model.encode_words(text)])
        with torch.no_grad():
            prefix = torch.cat([torch.full((1, 1), 1), ids[:, :-1]], dim=1)
            log_probs = model.logits(pack([SCENES[2]]), prefix)
        return float(log_probs[0].gather(1, ids[0][:, None]).sum())

    greedy = model.caption_features([SCENES[2]], beam=1, no_repeat_ngram=0)[0]
    beam = model.caption_features([SCENES[2]], beam=4, no_repeat_ngram=0)[0]
    assert log_probability(beam) >= log_probability(greedy) - 1e-4


def test_the_word_decoder_round_trips_and_bad_folders_are_named(tmp_path):
    model = _model()
    folder = model.save(tmp_path / "words")
    again = ObjectCaptioner.load(folder)
    assert again.caption_features(SCENES, beam=2) == model.caption_features(SCENES, beam=2)
    assert json.loads((folder / "object_captioner.json").read_text())["vocabulary"][:4] == [
        "<pad>", "<bos>", "<eos>", "<unk>"]
    with pytest.raises(ReadError, match="not a world captioner"):
        ObjectCaptioner.load(tmp_path)
    (folder / "object_captioner.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ReadError, match="safetensors"):
        ObjectCaptioner.load(folder)


@pytest.fixture(scope="module")
def captioner(world_reader):
    """The word decoder trained for a few seconds on what the fixture's detector and object reader see."""
    from sensorium.training.captioning import CaptionTraining, train_world_captioner

    root, _ = world_reader
    settings = CaptionTraining(epochs=15, width=64, layers=2, batch_size=32, warmup_steps=10,
                                       progress=False)
    return root, train_world_captioner(root / "train", root / "run", settings)


def test_a_short_training_reads_the_objects_and_names_what_is_there(captioner):
    from sensorium.training.captioning import ObjectCaptionData, collate_objects, perceive_all
    from sensorium.training.captioning import read_pictures_and_captions

    root, model = captioner
    pictures, references, records = read_pictures_and_captions(root / "test")
    features = perceive_all(model.detector, model.perception, pictures, progress=False)
    data = ObjectCaptionData(features, references, model.words, per_step=5)
    batch = collate_objects([data[i] for i in range(len(data))])
    with torch.no_grad():
        own = float(model.words(batch))
        batch["memory"] = batch["memory"].roll(1, dims=0)  # each caption beside another scene's objects
        other = float(model.words(batch))
    # nats per word; a decoder that ignored the objects would score both alike (a gap of 0). Measured: 0.18
    # on one thread of a Zen 4 EPYC (the suite pins each worker to one core), 0.25 on its two threads
    assert other - own > 0.1, (own, other)
    scenes = [Scene.from_json(r) for r in records]
    captions = model.caption(list(pictures), beam=3)
    found = chair(zip(captions, scenes))
    assert found.recall > chair(zip(captions, scenes[1:] + scenes[:1])).recall
    assert found.chair_i < chair(zip(captions, scenes[1:] + scenes[:1])).chair_i, found
    # what it still gets wrong is what the (briefly trained) object reader got wrong: every shape said is
    # one the reader gave some object it found (0.25 of mentions absent measured here, a minute of training)
    grounded = [rows[:, GROUPS.index((Attribute.SHAPE, shape))].max() >= 0.2 if len(rows) else False
                for caption, rows in zip(captions, features) for shape in _shapes_said(caption)]
    assert len(grounded) >= 40 and np.mean(grounded) >= 0.95, np.mean(grounded)
    # condition B's pairing (a red cube), never seen in training: still a cube, never "a cylinder"
    said = model.words.caption_features([_seen(("cube", "red", "large", "metal"))], beam=3)[0]
    assert _shapes_said(said) <= {"cube"}, said


def test_the_grounded_captioner_round_trips_through_its_files_and_the_cli(captioner, tmp_path):
    root, model = captioner
    pictures, records = read_pictures(root / "test", 2)
    again = WorldCaptioner.load(root / "run")  # the run folder or its captioner/ both load
    assert again.caption(list(pictures)) == model.caption(list(pictures))
    picture = str(root / "test" / records[0]["image"])
    result = subprocess.run([sys.executable, "-m", "sensorium.cli", "world", "caption", str(root / "run"),
                             picture, str(root / "test" / "world.json"), "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr  # one picture unreadable: the other is still captioned
    out = json.loads(result.stdout)
    assert out["results"][0]["caption"] == model.caption([pictures[0]])[0]
    assert out["failures"][0]["path"].endswith("world.json")
    with pytest.raises(ReadError, match="world_captioner.json"):
        WorldCaptioner.load(tmp_path)
