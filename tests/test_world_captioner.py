"""The world captioner: decoding controls, safetensors + JSON round trip, and that a minute of
training on a small generated world learns to read its pictures (far better than chance)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sensorium.errors import ReadError
from sensorium.world.captioner import (EOS_ID, Captioner, CaptionerConfig, build_vocabulary, words_of)

CAPTIONS = ["a red cube behind a small ball", "there are two cones", "a scene with three objects: a cube, a cone "
            "and a ring", "only one large metal cylinder"]


def _model(seed: int = 0) -> Captioner:
    torch.manual_seed(seed)
    return Captioner(CaptionerConfig(vocabulary=build_vocabulary(CAPTIONS), image_size=32, width=32, layers=1,
                                     heads=2, max_words=16)).eval()


def _pictures(count: int, size: int = 32) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)]


def test_words_round_trip_through_the_vocabulary():
    model = _model()
    ids = model.encode_words(CAPTIONS[2])
    assert ids[-1] == EOS_ID and model.decode_words(ids) == CAPTIONS[2]
    assert words_of("A Red, cube:") == ["a", "red", ",", "cube", ":"]
    assert model.decode_words(model.encode_words("a purple cube")) == "a cube"  # unknown words are dropped


def test_decoding_honours_length_and_repetition_controls():
    model = _model()
    pictures = _pictures(3)
    for beam in (1, 3):
        for text in model.caption(pictures, beam=beam, min_words=4, max_words=6, no_repeat_ngram=1):
            words = text.replace(",", " ,").replace(":", " :").split()
            assert 4 <= len(words) <= 6, text
            assert len(set(words)) == len(words), text  # no word (1-gram) twice
    greedy = model.caption(pictures, beam=1)
    assert greedy == [model.caption([p], beam=1)[0] for p in pictures]  # batching changes nothing
    with pytest.raises(ValueError, match="images\\[0\\]"):
        model.caption([np.zeros((32, 32), np.uint8)])


def test_beam_search_finds_captions_at_least_as_likely_as_greedy():
    model = _model(1)
    picture = _pictures(1)[0]

    def log_probability(text: str) -> float:
        ids = torch.tensor([model.encode_words(text)])
        with torch.no_grad():
            memory = model.memory(model.pictures_tensor([picture]))
            prefix = torch.cat([torch.full((1, 1), 1), ids[:, :-1]], dim=1)
            logits = torch.log_softmax(model.logits(memory, prefix), -1)
        return float(logits[0].gather(1, ids[0][:, None]).sum())

    greedy = model.caption([picture], beam=1, no_repeat_ngram=0)[0]
    beam = model.caption([picture], beam=4, no_repeat_ngram=0)[0]
    assert log_probability(beam) >= log_probability(greedy) - 1e-4


def test_save_and_load_give_the_same_captions_and_bad_folders_are_named(tmp_path):
    model = _model()
    folder = model.save(tmp_path / "captioner")
    again = Captioner.load(folder)
    pictures = _pictures(2)
    assert again.caption(pictures, beam=2) == model.caption(pictures, beam=2)
    assert json.loads((folder / "captioner.json").read_text())["vocabulary"][:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    with pytest.raises(ReadError, match="not a captioner folder"):
        Captioner.load(tmp_path)
    (folder / "captioner.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ReadError, match="safetensors"):
        Captioner.load(folder)


def test_a_minute_of_training_reads_the_pictures(tmp_path):
    """Trained for about a minute on 500 small scenes, the captioner finds the captions of 100 new scenes
    far more likely beside their own pictures than beside other scenes' (chance), names more of the
    shapes that are there, and the CLI captions a picture."""
    from typer.testing import CliRunner

    from sensorium.cli import app
    from sensorium.training.captioning import (CaptionData, CaptionTraining, collate, read_pictures_and_captions,
                                               train_captioner)
    from sensorium.world import SceneOptions, WorldSpec, make_world
    from sensorium.world.chair import chair
    from sensorium.world.scene import Scene

    options = SceneOptions(size=64, min_objects=1, max_objects=3)
    make_world(tmp_path / "train", 500, WorldSpec(seed=1, options=options, questions_per_scene=0))
    make_world(tmp_path / "test", 100, WorldSpec(seed=2, options=options, questions_per_scene=0))
    model = train_captioner(tmp_path / "train", tmp_path / "run", CaptionTraining(
        epochs=12, batch_size=16, lr=3e-3, warmup_steps=10, width=64, layers=2, captions_per_step=5,
        progress=False))
    pictures, references, records = read_pictures_and_captions(tmp_path / "test")
    data = CaptionData(pictures, references, model, per_step=5)  # no cell targets: the word loss alone
    batch = collate([data[i] for i in range(len(data))])
    with torch.no_grad():
        own = float(model(batch))
        batch["pictures"] = batch["pictures"].roll(1, dims=0)  # every caption beside another scene's picture
        other = float(model(batch))
    assert other - own > 0.1, (own, other)  # nats per word
    scenes = [Scene.from_json(r) for r in records]
    captions = model.caption(list(pictures), beam=1)
    assert chair(zip(captions, scenes)).recall > chair(zip(captions, scenes[1:] + scenes[:1])).recall
    result = CliRunner().invoke(app, ["world", "caption", str(tmp_path / "run" / "captioner"),
                                      str(tmp_path / "test" / records[0]["image"]), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"][0]["caption"]
