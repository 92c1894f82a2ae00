"""A learned space at query time: the numpy heads compute what the trained torch heads compute, read
only safetensors + JSON, and a search (with or without an attached space) never imports torch."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from sensorium.align.heads import ProjectionHead, Space
from sensorium.align.job import save_space
from sensorium.errors import ReadError
from sensorium.space.projection import Projection, erf


def _space(kind: str, in_dim: int, out_dim: int, seed: int) -> Space:
    torch.manual_seed(seed)
    heads = {"image": ProjectionHead(in_dim, out_dim, kind), "text": ProjectionHead(384, out_dim, "linear")}
    space = Space(heads)
    if kind == "mlp":  # a residual MLP starts at the identity: move it off, so the second layer counts
        with torch.no_grad():
            for parameter in space.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
    return space


@pytest.mark.parametrize("kind,in_dim,out_dim", [("linear", 48, 16), ("mlp", 48, 16), ("mlp", 32, 32)])
def test_numpy_heads_equal_the_trained_torch_heads(tmp_path, kind, in_dim, out_dim):
    space = _space(kind, in_dim, out_dim, seed=in_dim + out_dim)
    space.save(tmp_path)
    loaded = Projection.load(tmp_path)
    assert loaded.dim == out_dim and set(loaded.heads) == {"image", "text"}
    rng = np.random.default_rng(0)
    for head, dim in (("image", in_dim), ("text", 384)):
        features = rng.normal(size=(64, dim)).astype(np.float32) * 3
        expected = space.embed(head, features)
        got = loaded.embed(head, features)
        np.testing.assert_allclose(got, expected, atol=2e-5)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    if kind == "mlp" and in_dim == out_dim:
        assert loaded.heads["image"].spec.residual


def test_erf_matches_the_reference_to_float32_precision():
    x = np.linspace(-6, 6, 20001).astype(np.float32)
    np.testing.assert_allclose(erf(x), torch.erf(torch.from_numpy(x)).numpy(), atol=2e-7)


def test_a_damaged_space_folder_is_a_read_error_naming_the_file(tmp_path):
    _space("linear", 8, 4, seed=1).save(tmp_path)
    weights = (tmp_path / "space.safetensors").read_bytes()
    (tmp_path / "space.safetensors").write_bytes(weights[:40])
    with pytest.raises(ReadError, match="space.safetensors"):
        Projection.load(tmp_path)
    _space("linear", 8, 4, seed=1).save(tmp_path)
    config = json.loads((tmp_path / "space.json").read_text())
    config["heads"]["image"]["in_dim"] = 9  # the weights no longer fit
    (tmp_path / "space.json").write_text(json.dumps(config))
    with pytest.raises(ReadError, match="does not fit"):
        Projection.load(tmp_path)
    (tmp_path / "space.json").write_text("{not json")
    with pytest.raises(ReadError, match="space.json"):
        Projection.load(tmp_path)


SEARCH_IN_A_NEW_PROCESS = textwrap.dedent("""
    import json, sys
    from sensorium import Collection
    collection = Collection(sys.argv[1])
    hits = collection.search("a recipe with tomatoes and basil", k=3)
    heavy = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "sensorium.align",
                                                                           "sensorium.training")))
    print(json.dumps({"heavy": heavy, "hits": [[h.path, h.score, h.why] for h in hits],
                      "space": collection.info()["space"]}))
""")


def _search_elsewhere(directory) -> dict:
    done = subprocess.run([sys.executable, "-c", SEARCH_IN_A_NEW_PROCESS, str(directory)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_search_imports_no_torch_with_or_without_a_learned_space(tmp_path):
    from sensorium import Collection

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "pasta.txt").write_text("Tomato sauce with fresh basil, garlic and olive oil over spaghetti.")
    (notes / "bike.txt").write_text("The rear derailleur of my bicycle needs a new cable before the race.")
    (notes / "taxes.txt").write_text("Quarterly tax return: receipts, invoices and the VAT summary.")
    with Collection(tmp_path / "col") as collection:  # the text model's ONNX export happens here, once
        assert collection.index(notes).added == 3
        before = [(h.path, round(h.score, 5)) for h in collection.search("a recipe with tomatoes and basil", k=3)]

    plain = _search_elsewhere(tmp_path / "col")
    assert plain["heavy"] == [] and plain["space"] is None
    assert [(p, round(s, 5)) for p, s, _ in plain["hits"]] == before
    assert plain["hits"][0][0].endswith("pasta.txt")

    # an image-text space (numpy heads at query time): the text head runs on every text query
    torch.manual_seed(0)
    space = Space.build({"image": 1280 + 384, "text": 384}, dim=16)
    save_space(tmp_path / "space", space, weight=1.0)
    with Collection(tmp_path / "col") as collection:
        collection.attach_space(tmp_path / "space")
        expected = collection.attached_space().embed_text(collection.experts.text.encode(["a recipe"]))
        np.testing.assert_allclose(expected, space.embed("text", collection.experts.text.encode(["a recipe"])),
                                   atol=2e-5)
    learned = _search_elsewhere(tmp_path / "col")
    assert learned["heavy"] == [] and learned["space"]["attached"]
    assert learned["hits"][0][0].endswith("pasta.txt")
