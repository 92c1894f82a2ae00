"""The label bridge: images land near the sentences that describe them."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

skimage_data = pytest.importorskip("skimage.data")

from sensorium.experts.image import ImageExpert  # noqa: E402
from sensorium.experts.text import TextEncoder  # noqa: E402
from sensorium.space.label_bridge import PLAIN_TEMPLATES, BridgeConfig, LabelBridge, clean_names, is_latin_binomial, load_synonyms  # noqa: E402

COCO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco_mini"


@pytest.fixture(scope="module", autouse=True)
def sensorium_home(tmp_path_factory):
    """Empty caches (class banks), but the suite's models folder: the joined and exported models are
    not what this module tests, and exporting them again cost ~20 s."""
    from sensorium.paths import models_dir

    shared_models = models_dir()
    shared_models.mkdir(parents=True, exist_ok=True)
    home = tmp_path_factory.mktemp("home")
    (home / "models").symlink_to(shared_models, target_is_directory=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SENSORIUM_HOME", str(home))
        yield


@pytest.fixture(scope="module")
def expert():
    return ImageExpert()


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder()


def test_clean_names_drop_latin_and_keep_english(expert):
    assert is_latin_binomial("Tinca tinca") and is_latin_binomial("Canis lupus tundrarum")
    assert not is_latin_binomial("Japanese spaniel") and not is_latin_binomial("Indian cobra")
    names = clean_names(expert.class_names, load_synonyms(), 2)
    assert names[0] == ["tench"]
    assert names[134][0] == "crane bird" and names[517][0] == "construction crane"
    assert all(names), "every class keeps at least one name"


def test_cat_photo_is_near_cat_sentence(expert, encoder):
    bridge = LabelBridge(encoder, expert.class_names, replace(BridgeConfig.plain(), hypernym_weight=0.0))
    vector = bridge.embed(expert.run([skimage_data.chelsea()]).probs)
    assert vector.shape == (384,) and abs(np.linalg.norm(vector) - 1) < 1e-5
    texts = ["a photo of a cat", "a cup of coffee", "a bowl of soup", "a car", "an astronaut in a space suit",
             "a rocket on its launch pad", "a horse", "a city street at night"]
    queries = bridge.embed_query(texts)
    # two photos, eight sentences: a broken bridge gets both right about 1 time in 64
    for photo, expected in ((skimage_data.chelsea(), 0), (skimage_data.coffee(), 1)):
        vector = bridge.embed(expert.run([photo]).probs)
        assert int(np.argmax(queries @ vector)) == expected, texts[int(np.argmax(queries @ vector))]


def test_class_bank_is_cached(expert, encoder):
    config = BridgeConfig.plain()
    first = LabelBridge(encoder, expert.class_names, config)
    again = LabelBridge(encoder, expert.class_names, config)
    np.testing.assert_allclose(first._class_vectors, again._class_vectors)
    from sensorium import paths

    assert list((paths.home() / "cache").glob("imagenet_bank_*.npz"))


def test_the_default_bank_ships_with_the_package_and_matches_what_this_machine_embeds(expert, encoder, monkeypatch):
    """A first default bridge (an empty home) embeds no class prompt: the package's seed holds them.
    A sample of classes embedded here agrees with the seed. Fails when the text model, the prompts or
    the class names changed without rebuilding the seed."""
    from sensorium.space import label_bridge
    from sensorium.space.image_bridge import DEFAULT_CONFIG

    key = label_bridge.bank_key(encoder, expert.class_names, DEFAULT_CONFIG)
    seed = label_bridge.seeded_bank(key)
    assert seed is not None, "stale seed: run scripts/seed_class_bank.py"
    assert seed["names"].shape == seed["hypernyms"].shape == (1000, encoder.dim) and seed["person"].shape == (encoder.dim,)
    with monkeypatch.context() as patch:
        patch.setattr(encoder, "encode", lambda texts: pytest.fail(f"embedded {len(texts)} prompts despite the seed"))
        bridge = LabelBridge(encoder, expert.class_names, DEFAULT_CONFIG)
    np.testing.assert_allclose(bridge.bank.names, seed["names"])
    sample = sorted(np.random.default_rng(0).choice(1000, 24, replace=False).tolist()) + [151, 281, 967]
    fresh = label_bridge.embed_class_prompts(encoder, expert.class_names, DEFAULT_CONFIG, classes=sample)
    for shipped, made in ((seed["names"][sample], fresh["names"]), (seed["hypernyms"][sample], fresh["hypernyms"]),
                          (seed["person"][None], fresh["person"][None])):
        made_norm = np.linalg.norm(made, axis=1)
        cosines = np.sum(shipped * made, axis=1) / np.maximum(np.linalg.norm(shipped, axis=1) * made_norm, 1e-12)
        assert np.all(cosines[made_norm > 0] > 0.999), cosines  # float16 keeps about 3 digits
        assert np.all(np.abs(np.linalg.norm(shipped, axis=1) - made_norm) < 2e-3)


def test_describe_gives_vectors_labels_and_words(encoder):
    from sensorium.space.image_bridge import ImageBridge

    bridge = ImageBridge(config=replace(BridgeConfig.plain(), crops="grid", person_weight=0.25),
                         encoder=encoder, ocr="never")
    astronaut, coffee = bridge.describe([skimage_data.astronaut(), skimage_data.coffee()])
    for desc in (astronaut, coffee):
        assert desc.shared.shape == (384,) and desc.native.shape == (1280,)
        assert abs(np.linalg.norm(desc.shared) - 1) < 1e-5 and desc.labels and desc.text
    assert astronaut.people >= 1 and "person" in astronaut.text
    assert coffee.people == 0 and coffee.labels[0][0] == "espresso"
    query = bridge.embed_query(["a cup of coffee"])[0]
    assert query @ coffee.shared > query @ astronaut.shared


@pytest.mark.skipif(not (COCO / "captions_train2017.json").is_file(), reason="coco_mini data absent")
def test_improved_bridge_beats_plain_on_coco(expert, encoder):
    """Full-view probabilities only (fast); the improved bridge must retrieve better than ConSE."""
    from benchmarks.quality.coco_retrieval import load_coco, recall_table

    pixels, captions, owner = load_coco(COCO)
    probs = expert.run(pixels).probs
    queries = encoder.encode(captions)
    scores = {}
    # one template keeps the class bank cheap to build; names + hypernyms + weights do the work
    improved = replace(BridgeConfig(), crops="full", templates=PLAIN_TEMPLATES)
    for name, config in (("plain", BridgeConfig.plain()), ("improved", improved)):
        bridge = LabelBridge(encoder, expert.class_names, config)
        images = np.stack([bridge.embed(p) for p in probs])
        scores[name] = recall_table(images, queries, owner)["t2i_r5"]
    assert scores["improved"] > scores["plain"] + 0.03, scores
