"""Hub binding: A<->C alignment that emerges from training only A<->B and B<->C through a shared B head."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sensorium.align.bind import Edge, train_bound_space
from sensorium.align.metrics import ranks_text_to_image, recall
from sensorium.align.heads import Space
from sensorium.align.train import AlignConfig, train_space
from sensorium.errors import ConfigError

LATENT, DIMS = 8, {"a": 32, "b": 24, "c": 40}


def views(n: int, seed: int, projections: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each modality = a fixed random linear view of one shared latent, plus a little noise."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, LATENT))
    return {name: (latent @ w + 0.05 * rng.standard_normal((n, w.shape[1]))).astype(np.float32)
            for name, w in projections.items()}


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(0)
    projections = {name: rng.standard_normal((LATENT, dim)) for name, dim in DIMS.items()}
    # disjoint samples per edge: no item is ever seen in both a and c
    return views(400, 1, projections), views(400, 2, projections), views(200, 3, projections)


CONFIG = AlignConfig(dim=16, epochs=12, batch_size=64, lr=3e-3, seed=0)


def a_to_c_r1(space, test) -> float:
    scores = space.embed("a", test["a"]) @ space.embed("c", test["c"]).T
    return recall(ranks_text_to_image(scores, np.arange(len(scores))), (1,))[1]


def test_shared_hub_gives_emergent_alignment_and_unshared_does_not(world):
    ab, bc, test = world
    bound = train_bound_space({("a", "b"): (ab["a"], ab["b"]), ("b", "c"): (bc["b"], bc["c"])}, CONFIG)
    emergent = a_to_c_r1(bound.space, test)
    # control: the B<->C edge gets its own B head, so a and c never share a hub
    unshared = train_bound_space({("a", "b"): (ab["a"], ab["b"]), ("b2", "c"): (bc["b"], bc["c"])}, CONFIG)
    control = a_to_c_r1(unshared.space, test)
    chance = 1 / len(test["a"])
    assert emergent > 0.5, emergent  # 200 candidates: chance is 0.005
    assert control < 10 * chance, control
    assert bound.history[-1] < bound.history[0]
    assert sorted(bound.space.modalities) == ["a", "b", "c"]


def test_frozen_identity_head_stays_the_identity(world, tmp_path):
    ab, bc, _ = world
    config = AlignConfig(dim=DIMS["b"], epochs=3, batch_size=64, seed=0)
    result = train_bound_space({("a", "b"): (ab["a"], ab["b"]), ("b", "c"): (bc["b"], bc["c"])}, config,
                               frozen=("b",), identity=("b",))
    head = result.space.heads["b"]
    assert torch.equal(head.net.weight, torch.eye(DIMS["b"]))
    assert torch.count_nonzero(head.net.bias) == 0
    np.testing.assert_allclose(result.space.embed("b", bc["b"][:5]),
                               bc["b"][:5] / np.linalg.norm(bc["b"][:5], axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    loaded = Space.load(result.space.save(tmp_path / "bound"))
    np.testing.assert_allclose(loaded.embed("a", ab["a"][:5]), result.space.embed("a", ab["a"][:5]), atol=1e-6)
    assert loaded.meta["identity"] == ["b"]
    before = {k: v.clone() for k, v in result.space.heads["a"].state_dict().items()}
    # the unfrozen heads did train: a fresh run with 0 learning rate gives different weights
    still = train_bound_space({("a", "b"): (ab["a"], ab["b"])}, AlignConfig(**{**config.__dict__, "lr": 0.0}),
                              frozen=("b",), identity=("b",))
    assert not torch.allclose(still.space.heads["a"].net.weight, before["net.weight"])


def test_frozen_random_head_is_unchanged(world):
    ab, _, _ = world
    config = AlignConfig(dim=16, epochs=2, batch_size=64, seed=5)
    untrained = train_bound_space({("a", "b"): (ab["a"], ab["b"])}, AlignConfig(**{**config.__dict__, "lr": 0.0}))
    trained = train_bound_space({("a", "b"): (ab["a"], ab["b"])}, config, frozen=("a",))
    assert torch.equal(trained.space.heads["a"].net.weight, untrained.space.heads["a"].net.weight)
    assert not torch.equal(trained.space.heads["b"].net.weight, untrained.space.heads["b"].net.weight)


def test_absent_rows_do_not_change_training(world):
    """Pairs marked absent contribute nothing: replacing their features with noise changes no weight."""
    ab, bc, _ = world
    present = np.ones(400, bool)
    present[::3] = False
    garbage = bc["c"].copy()
    garbage[~present] = np.random.default_rng(9).standard_normal((int((~present).sum()), DIMS["c"])) * 100
    config = AlignConfig(dim=16, epochs=3, batch_size=64, seed=1)
    runs = []
    for c_features in (bc["c"], garbage):
        edges = {("a", "b"): (ab["a"], ab["b"]), ("b", "c"): Edge(bc["b"], c_features, right_present=present)}
        runs.append(train_bound_space(edges, config).space.state_dict())
    for name in runs[0]:
        assert torch.allclose(runs[0][name], runs[1][name], atol=1e-5), name
    # and the mask matters: without it the noise does change the heads
    unmasked = train_bound_space({("a", "b"): (ab["a"], ab["b"]), ("b", "c"): (bc["b"], garbage)}, config)
    assert not torch.allclose(unmasked.space.state_dict()["heads.c.net.weight"], runs[0]["heads.c.net.weight"])


@pytest.fixture(scope="module")
def words():
    """Ten words, each spoken many ways (audio = word latent + speaker noise) and written in one of
    three phrasings (text = word latent + a little phrasing noise): many pairs share a word."""
    rng = np.random.default_rng(7)
    audio_view, text_view = rng.standard_normal((LATENT, 32)), rng.standard_normal((LATENT, 24))
    latent = rng.standard_normal((10, LATENT))
    phrasings = latent[:, None, :] + 0.3 * rng.standard_normal((10, 3, LATENT))

    def sample(seed: int, per_word: int):
        draw = np.random.default_rng(seed)
        word = np.repeat(np.arange(10), per_word)
        audio = (latent[word] + draw.standard_normal((len(word), LATENT))) @ audio_view
        audio += 0.3 * draw.standard_normal(audio.shape)
        text = phrasings[word, draw.integers(0, 3, len(word))] @ text_view
        return audio.astype(np.float32), text.astype(np.float32), word

    return sample, (phrasings[:, 0] @ text_view).astype(np.float32)


@pytest.mark.parametrize("trainer", ["bind", "pair"])
def test_groups_keep_same_word_pairs_out_of_each_others_negatives(words, trainer):
    """With the VSE++ hinge the hardest negative of a clip is, without groups, another clip of the
    same word, a margin no head can meet; with groups those pairs never face each other, and the
    word each held-out clip lands nearest is right far more often (chance 0.1)."""
    sample, written = words
    audio, text, word = sample(0, 30)
    test_audio, _, test_word = sample(1, 20)
    config = AlignConfig(dim=16, loss="triplet", epochs=40, batch_size=64, lr=3e-3, seed=0)

    def accuracy(groups) -> float:
        if trainer == "bind":
            space = train_bound_space({("audio", "text"): Edge(audio, text, groups=groups)}, config).space
        else:
            space = train_space(audio, text, "audio", "text", config=config, groups=groups).space
        nearest = (space.embed("audio", test_audio) @ space.embed("text", written).T).argmax(1)
        return float((nearest == test_word).mean())

    grouped, ungrouped = accuracy(word), accuracy(None)
    assert grouped >= 0.5, grouped  # measured 0.61-0.67 over four seeds; ungrouped 0.45-0.51
    assert grouped >= ungrouped + 0.08, (grouped, ungrouped)


@pytest.mark.parametrize("edges, options, message", [
    ({("a", "b"): (np.zeros((5, 3)), np.zeros((4, 3)))}, {}, "has 5 rows"),
    ({("a", "a"): (np.zeros((5, 3)), np.zeros((5, 3)))}, {}, "two different"),
    ({("a", "b"): (np.zeros((5, 3)), np.zeros((5, 4))), ("b", "c"): (np.zeros((5, 5)), np.zeros((5, 3)))}, {},
     "disagree on its feature dim"),
    ({("a", "b"): (np.zeros((5, 3)), np.zeros((5, 4)))}, {"identity": ("a",)}, "space dim"),
    ({("a", "b"): (np.zeros((5, 3)), np.zeros((5, 4)))}, {"frozen": ("z",)}, "no edge has it"),
    ({("a", "b"): (np.zeros((5, 3)), np.zeros((5, 4)))}, {"frozen": ("a", "b")}, "nothing would train"),
])
def test_bad_edges_raise_config_errors(edges, options, message):
    with pytest.raises(ConfigError, match=message):
        train_bound_space(edges, AlignConfig(dim=8, epochs=1), **options)
