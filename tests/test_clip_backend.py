"""The local CLIP backend, on a tiny randomly initialised CLIP checkpoint the test writes itself
(no CLIP weights ship in any installed package): loading offline, shapes, normalisation,
agreement with the in-memory model, and clear errors for folders that are not CLIP checkpoints."""
from __future__ import annotations

import hashlib
import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch  # torch and transformers are required: their absence fails the test, never skips it

from helpers.clip import PROJECTION, SENTENCES, tiny_tokenizer, write_checkpoint
from sensorium.errors import ModelError
from sensorium.experts.clip import ClipBackend


def _refuse_network(*_args, **_kwargs):
    raise OSError("network blocked by test")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-clip")
    model, tokenizer = write_checkpoint(folder)
    return folder, model, tokenizer


@pytest.fixture(scope="module")
def backend(checkpoint):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _refuse_network)
        clip = ClipBackend(checkpoint[0])
        clip.encode_texts(["warm up"])  # loads weights, tokenizer and processor while offline
    return clip


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(7)
    photos = [rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8) for _ in range(3)]
    photos.append(np.full((40, 40, 3), 200, dtype=np.uint8))  # flat grey, odd size
    return photos


def test_shapes_and_normalisation(backend, images):
    assert backend.dim == PROJECTION
    for vectors, count in ((backend.encode_images(images), len(images)), (backend.encode_texts(SENTENCES), 5)):
        assert vectors.shape == (count, PROJECTION) and vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert backend.encode_images([]).shape == (0, PROJECTION)
    assert backend.encode_texts([]).shape == (0, PROJECTION)


def test_texts_are_deterministic_and_distinct(backend):
    first = backend.encode_texts(SENTENCES)
    np.testing.assert_array_equal(first, backend.encode_texts(SENTENCES))
    same = backend.encode_texts(["a photo of a cat sleeping on the sofa"] * 2)
    # a batch's rows may take different float paths on some CPUs (6e-8 apart seen): equal, not bit-equal
    np.testing.assert_allclose(same[0], same[1], atol=1e-6)
    similarity = first @ first.T
    assert np.all(similarity[~np.eye(5, dtype=bool)] < 0.9999)  # every sentence maps elsewhere


def test_images_are_deterministic_distinct_and_batch_independent(backend, images):
    together = backend.encode_images(images)
    np.testing.assert_array_equal(together, backend.encode_images(images))
    for index, pixels in enumerate(images):
        np.testing.assert_allclose(backend.encode_images([pixels])[0], together[index], atol=1e-5)
    similarity = together @ together.T
    assert np.all(similarity[~np.eye(len(images), dtype=bool)] < 0.9999)


def test_matches_the_model_it_was_saved_from(backend, checkpoint):
    _, model, tokenizer = checkpoint
    inputs = tokenizer(SENTENCES[:2], padding=True, return_tensors="pt")
    with torch.inference_mode():
        out = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    expected = (out if torch.is_tensor(out) else out.pooler_output).numpy()
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(backend.encode_texts(SENTENCES[:2]), expected, atol=1e-5)


def test_a_second_instance_gives_identical_vectors(backend, checkpoint, images):
    again = ClipBackend(checkpoint[0])
    np.testing.assert_array_equal(again.encode_images(images[:2]), backend.encode_images(images[:2]))


def test_rejects_bad_pixels(backend):
    with pytest.raises(ValueError, match="uint8"):
        backend.encode_images([np.zeros((8, 8), dtype=np.uint8)])


def test_info_names_the_local_folder_and_weights(backend, checkpoint):
    info = backend.info()
    weights = checkpoint[0] / "model.safetensors"
    assert info.package == f"local:{checkpoint[0]}"
    assert info.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert info.size_bytes == weights.stat().st_size and info.dim == PROJECTION


def _copy(checkpoint, tmp_path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(checkpoint[0], target)
    return target


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda d: shutil.rmtree(d), "does not exist"),
        (lambda d: (d / "config.json").unlink(), "missing config.json"),
        (lambda d: (d / "config.json").write_text("{not json"), "unreadable model config"),
        (lambda d: (d / "config.json").write_text('{"model_type": "bert"}'), "not a CLIP checkpoint"),
        (lambda d: (d / "model.safetensors").rename(d / "pytorch_model.bin"), "safetensors weights required"),
        (lambda d: (d / "tokenizer.json").unlink(), "missing tokenizer files"),
        (lambda d: (d / "preprocessor_config.json").unlink(), "preprocessor_config.json"),
    ],
)
def test_folder_problems_raise_model_error(checkpoint, tmp_path, damage, reason):
    folder = _copy(checkpoint, tmp_path)
    damage(folder)
    with pytest.raises(ModelError, match=reason):
        ClipBackend(folder)


def test_corrupt_weights_raise_model_error_on_first_use(checkpoint, tmp_path):
    folder = _copy(checkpoint, tmp_path)
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    clip = ClipBackend(folder)
    with pytest.raises(ModelError, match="cannot load CLIP checkpoint"):
        clip.encode_texts(["hello"])
