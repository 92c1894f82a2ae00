"""Projection heads, the feature cache, pair manifests and training on synthetic paired views."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sensorium.align.data import load_pairs, pairs_from_folder
from sensorium.align.features import Extractor, FeatureCache
from sensorium.align.metrics import ranks_text_to_image, recall
from sensorium.align.heads import ProjectionHead, Space
from sensorium.align.train import AlignConfig, train_space
from sensorium.errors import ConfigError, ReadError


def two_views(n: int, seed: int, latent: int = 16, dims=(48, 40), noise: float = 0.05):
    """Two random linear views of the same latent: a learnable but non-trivial pairing."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, latent))
    view_a = rng.standard_normal((latent, dims[0]))
    view_b = rng.standard_normal((latent, dims[1]))
    a = z @ view_a + noise * rng.standard_normal((n, dims[0]))
    b = z @ view_b + noise * rng.standard_normal((n, dims[1]))
    return a.astype(np.float32), b.astype(np.float32), (view_a, view_b)


def test_mlp_head_with_equal_dims_starts_at_identity():
    head = ProjectionHead(24, 24, kind="mlp")
    x = torch.randn(5, 24)
    assert torch.equal(head(x), x)
    assert not ProjectionHead(24, 16, kind="mlp").residual


def test_space_save_load_round_trip(tmp_path):
    space = Space.build({"image": 20, "text": 12}, dim=8, kind="mlp", hidden=10, meta={"note": "x"})
    features = np.random.default_rng(0).standard_normal((4, 20)).astype(np.float32)
    before = space.embed("image", features)
    folder = space.save(tmp_path / "space")
    loaded = Space.load(folder)
    assert loaded.config() == space.config()
    np.testing.assert_array_equal(loaded.embed("image", features), before)
    np.testing.assert_allclose(np.linalg.norm(before, axis=1), 1.0, rtol=1e-5)


def test_space_load_errors_name_the_file(tmp_path):
    with pytest.raises(ReadError, match="space.json"):
        Space.load(tmp_path)
    (tmp_path / "space.json").write_text(json.dumps({"dim": 4, "heads": {"a": {"in_dim": 3}}}))
    with pytest.raises(ReadError, match="space"):
        Space.load(tmp_path)
    with pytest.raises(ConfigError, match="kind"):
        ProjectionHead(3, 3, kind="conv")


@pytest.mark.parametrize("loss", ["infonce", "siglip", "triplet"])
def test_training_on_two_views_reaches_high_recall(loss):
    a, b, views = two_views(600, seed=0)
    config = AlignConfig(dim=32, loss=loss, epochs=40, batch_size=100, lr=3e-3, seed=0)
    result = train_space(a, b, "a", "b", config)
    assert result.history[-1] < result.history[0]
    # fresh pairs from the same two views: the space must generalise, not memorise
    rng = np.random.default_rng(1)
    z = rng.standard_normal((200, 16))
    test_a = (z @ views[0]).astype(np.float32)
    test_b = (z @ views[1]).astype(np.float32)
    scores = result.space.embed("b", test_b) @ result.space.embed("a", test_a).T
    r = recall(ranks_text_to_image(scores, np.arange(200)), ks=(1,))
    untrained = Space.build({"a": 48, "b": 40}, 32)
    base = untrained.embed("b", test_b) @ untrained.embed("a", test_a).T
    assert r[1] >= 0.8, r
    assert recall(ranks_text_to_image(base, np.arange(200)), ks=(1,))[1] < 0.2


def test_training_is_seeded_and_handles_groups_missing_sides_and_hard_batches():
    a, b, _ = two_views(120, seed=3)
    groups = np.repeat(np.arange(40), 3)  # three "captions" per "photo"
    present = np.ones(120, bool)
    present[::7] = False
    config = AlignConfig(dim=16, epochs=5, batch_size=32, hard_negatives=True, seed=5)
    one = train_space(a, b, config=config, groups=groups, right_present=present)
    two = train_space(a, b, config=config, groups=groups, right_present=present)
    assert one.history == two.history
    assert all(np.isfinite(one.history))
    assert one.pairs_per_second > 0


def test_train_config_errors():
    a, b, _ = two_views(10, seed=0)
    with pytest.raises(ConfigError, match="loss"):
        train_space(a, b, config=AlignConfig(loss="nope"))
    with pytest.raises(ConfigError, match="rows"):
        train_space(a, b[:5])


def test_feature_cache_runs_the_expert_once_per_content(tmp_path):
    calls = []

    def extract(texts):
        calls.append(list(texts))
        return {"length": np.asarray([[len(t)] for t in texts], dtype=np.float32)}

    cache = FeatureCache(tmp_path)
    expert = Extractor("len", "abc123", extract, batch_size=2)
    out = cache.text_features(expert, ["a", "bb", "ccc"])
    np.testing.assert_array_equal(out["length"][:, 0], [1, 2, 3])
    again = cache.text_features(expert, ["ccc", "a", "dddd"])
    np.testing.assert_array_equal(again["length"][:, 0], [3, 1, 4])
    assert calls == [["a", "bb"], ["ccc"], ["dddd"]]
    assert (cache.stats.hits, cache.stats.misses) == (2, 4)
    other_model = Extractor("len", "fff999", extract)
    cache.text_features(other_model, ["a"])
    assert calls[-1] == ["a"]  # a new model checksum misses the cache


def test_image_cache_is_keyed_by_file_content(tmp_path):
    seen = []

    def extract(paths):
        seen.extend(paths)
        return {"size": np.asarray([[p.stat().st_size] for p in paths], dtype=np.float32)}

    one, two = tmp_path / "a.jpg", tmp_path / "b.jpg"
    one.write_bytes(b"same bytes")
    two.write_bytes(b"same bytes")
    cache = FeatureCache(tmp_path / "cache")
    cache.image_features(Extractor("size", "0", extract), [one])
    cache.image_features(Extractor("size", "0", extract), [two])
    assert seen == [one]  # identical content: cached
    with pytest.raises(ReadError, match="missing.jpg"):
        cache.image_features(Extractor("size", "0", extract), [tmp_path / "missing.jpg"])


def test_manifest_pairs_and_errors(tmp_path):
    (tmp_path / "cat.jpg").write_bytes(b"x")
    manifest = tmp_path / "pairs.csv"
    manifest.write_text("image,caption\ncat.jpg,a cat\ncat.jpg,a sleeping cat\n")
    pairs = load_pairs(manifest)
    assert [p.right for p in pairs] == ["a cat", "a sleeping cat"]
    assert pairs[0].left == tmp_path / "cat.jpg" and pairs[0].group == pairs[1].group
    manifest.write_text("image,caption\ncat.jpg,a cat\ndog.jpg,a dog\n")
    with pytest.raises(ReadError, match=r"row 2: image file .*dog.jpg does not exist"):
        load_pairs(manifest)
    manifest.write_text("image,caption\ncat.jpg,\n")
    with pytest.raises(ReadError, match="row 1: column 'caption' is empty"):
        load_pairs(manifest)
    assert load_pairs(manifest, allow_missing=True)[0].right is None
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text('{"photo": "cat.jpg", "text": "a cat"}\nnot json\n')
    with pytest.raises(ReadError, match="line 2"):
        load_pairs(jsonl, left="photo", right="text")
    with pytest.raises(ConfigError, match="no column 'image'"):
        load_pairs(_one_line(tmp_path))


def _one_line(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text('{"photo": "cat.jpg", "text": "a cat"}\n')
    return path


def test_folder_layout_pairs(tmp_path):
    (tmp_path / "cat.jpg").write_bytes(b"x")
    (tmp_path / "cat.txt").write_text("a cat\n\na cat on a mat\n")
    pairs = pairs_from_folder(tmp_path)
    assert [p.right for p in pairs] == ["a cat", "a cat on a mat"]
    (tmp_path / "dog.png").write_bytes(b"x")
    with pytest.raises(ReadError, match="dog.txt"):
        pairs_from_folder(tmp_path)
