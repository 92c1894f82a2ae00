"""Fusion zoo: shapes, every modality subset, exact handling of missing modalities, gradients, learning."""
from __future__ import annotations

import itertools

import pytest
import torch

from sensorium import fusion
from sensorium.encoders import EncoderOutput
from sensorium.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DIMS = {"image": 8, "audio": 6, "text": 4}
SUBSETS = [s for r in (1, 2, 3) for s in itertools.combinations(DIMS, r)]
METHODS = fusion.available()


def make(name: str, dims=DIMS, out: int = 3, seed: int = 0):
    torch.manual_seed(seed)
    return fusion.create(name, dims, out).eval()


def pooled_inputs(batch: int = 5, seed: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(batch, dim, generator=generator) for name, dim in DIMS.items()}


def token_inputs(batch: int = 4, seed: int = 2) -> dict[str, EncoderOutput]:
    """Token sequences of different lengths per modality, each sample right-padded differently."""
    generator = torch.Generator().manual_seed(seed)
    inputs = {}
    for (name, dim), length in zip(DIMS.items(), (7, 5, 3)):
        tokens = torch.randn(batch, length, dim, generator=generator)
        lengths = torch.tensor([length - i % length for i in range(batch)])
        mask = torch.arange(length)[None] < lengths[:, None]
        tokens = tokens * mask[..., None]
        pooled = tokens.sum(1) / lengths[:, None]
        inputs[name] = EncoderOutput(tokens, mask, pooled)
    return inputs


def select(inputs, names, rows):
    """The given modalities of the given samples only (EncoderOutput rows sliced consistently)."""
    picked = {}
    for name in names:
        value = inputs[name]
        if isinstance(value, EncoderOutput):
            picked[name] = EncoderOutput(value.tokens[rows], value.mask[rows], value.pooled[rows])
        else:
            picked[name] = value[rows]
    return picked


def test_available_lists_every_method_of_the_issue():
    assert set(METHODS) == {"early", "late", "tensor", "low_rank_tensor", "gated", "cross_attention",
                            "single_stream", "mixture_of_experts", "film"}
    with pytest.raises(ConfigError, match="nope"):
        fusion.create("nope", DIMS, 3)
    with pytest.raises(ConfigError, match="input_dims"):
        fusion.create("early", {}, 3)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("kind", ["pooled", "tokens"])
def test_every_non_empty_subset_gives_finite_output_of_the_right_shape(name, kind):
    model = make(name)
    inputs, batch = (pooled_inputs(5), 5) if kind == "pooled" else (token_inputs(4), 4)
    outputs = {}
    for subset in SUBSETS:
        out = model({m: inputs[m] for m in subset})
        assert out.shape == (batch, 3)
        assert torch.isfinite(out).all()
        outputs[subset] = out
    # the subset matters: dropping a modality changes the answer
    assert not torch.allclose(outputs[("image",)], outputs[("image", "audio")])


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("kind", ["pooled", "tokens"])
def test_per_sample_missing_equals_dropping_the_modality_for_that_sample(name, kind):
    model = make(name)
    inputs = pooled_inputs(4) if kind == "pooled" else token_inputs(4)
    # sample 0 lacks image, sample 1 lacks audio and text, sample 2 lacks text, sample 3 has all
    present = {"image": torch.tensor([False, True, True, True]),
               "audio": torch.tensor([True, False, True, True]),
               "text": torch.tensor([True, False, False, True])}
    with torch.no_grad():
        batched = model(inputs, present=present)
        for row in range(4):
            names = [m for m in DIMS if present[m][row]]
            alone = model(select(inputs, names, slice(row, row + 1)))
            torch.testing.assert_close(batched[row], alone[0], atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("name", METHODS)
def test_all_false_mask_rows_mean_missing_just_like_the_present_argument(name):
    model = make(name)
    inputs = token_inputs(3)
    audio = inputs["audio"]
    hidden = EncoderOutput(audio.tokens, audio.mask & torch.tensor([True, False, True])[:, None], audio.pooled)
    with torch.no_grad():
        via_mask = model({**inputs, "audio": hidden})
        via_flag = model(inputs, present={"audio": torch.tensor([True, False, True])})
    torch.testing.assert_close(via_mask, via_flag)


@pytest.mark.parametrize("name", [m for m in METHODS if m != "low_rank_tensor"])
def test_missing_is_not_the_same_as_a_zero_vector(name):
    """Absence is explicit: a present all-zero input is a different input from no input.

    (Low-rank fusion is the exception by design: Liu et al. represent a missing modality by the
    constant-1 augmentation alone, which is what a zero vector gives too.)"""
    model = make(name)
    inputs = pooled_inputs()
    with torch.no_grad():
        absent = model({"image": inputs["image"]})
        zeros = model({"image": inputs["image"], "audio": torch.zeros(5, DIMS["audio"])})
    assert not torch.allclose(absent, zeros, atol=1e-6)


@pytest.mark.parametrize("name", METHODS)
def test_gradients_reach_every_present_input_and_never_an_absent_one(name):
    model = make(name).train()
    inputs = {m: x.requires_grad_() for m, x in pooled_inputs(4).items()}
    present = {"text": torch.tensor([True, True, False, True])}
    model(inputs, present=present).pow(2).sum().backward()
    for m, x in inputs.items():
        assert x.grad is not None and x.grad.abs().sum() > 0, m
    assert torch.all(inputs["text"].grad[2] == 0)
    assert inputs["text"].grad[[0, 1, 3]].abs().sum(1).gt(0).all()


@pytest.mark.parametrize("name", METHODS)
def test_errors_name_the_offending_key(name):
    model = make(name)
    inputs = pooled_inputs()
    with pytest.raises(ValueError, match="no inputs"):
        model({})
    with pytest.raises(ValueError, match="'depth'"):
        model({"image": inputs["image"], "depth": inputs["image"]})
    with pytest.raises(ValueError, match="'audio'.*width"):
        model({"audio": inputs["image"]})
    with pytest.raises(ValueError, match=r"sample\(s\) \[1\]"):
        model({"image": inputs["image"]}, present={"image": torch.tensor([True, False, True, True, True])})
    with pytest.raises(ValueError, match="'text'"):
        model({"image": inputs["image"]}, present={"text": torch.ones(5, dtype=torch.bool)})


def two_modality_task(count: int, seed: int):
    """The label needs image AND audio (their first features summed); text is noise."""
    generator = torch.Generator().manual_seed(seed)
    inputs = {name: torch.randn(count, dim, generator=generator) for name, dim in DIMS.items()}
    labels = (inputs["image"][:, 0] + inputs["audio"][:, 0] > 0).long()
    return inputs, labels


# small widths keep the learning test to about a second per method on one thread
SMALL = {"early": dict(hidden=32), "late": dict(hidden=16), "tensor": dict(rank_dim=4, hidden=32),
         "low_rank_tensor": dict(rank=4), "gated": dict(hidden=16), "cross_attention": dict(dim=16, depth=1, heads=2),
         "single_stream": dict(dim=16, depth=1, heads=2), "mixture_of_experts": dict(hidden=16),
         "film": dict(dim=16, blocks=2, hidden=16)}


def small(name: str, dims) -> fusion.Fusion:
    torch.manual_seed(0)
    return fusion.create(name, dims, 2, **SMALL[name])


def train_and_score(model, inputs, labels, test_inputs, test_labels, steps: int = 60) -> float:
    """Full-batch Adam on the training set; cross-entropy on the held-out set."""
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), labels).backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        return torch.nn.functional.cross_entropy(model(test_inputs), test_labels).item()


@pytest.mark.parametrize("name", METHODS)
def test_fusing_two_informative_modalities_beats_the_best_single_one(name):
    inputs, labels = two_modality_task(512, seed=3)
    test_inputs, test_labels = two_modality_task(512, seed=4)
    fused = train_and_score(small(name, DIMS), inputs, labels, test_inputs, test_labels)
    single = train_and_score(small(name, {"image": DIMS["image"]}), {"image": inputs["image"]}, labels,
                             {"image": test_inputs["image"]}, test_labels)
    # with image alone the Bayes-optimal cross-entropy is about 0.42
    assert single > 0.35
    assert fused < 0.75 * single, (fused, single)


def test_mixture_of_experts_gives_missing_experts_zero_weight_and_reports_balance():
    model = fusion.create("mixture_of_experts", DIMS, 3, top_k=2, shared_experts=2).eval()
    inputs = pooled_inputs()
    with torch.no_grad():
        model({"image": inputs["image"], "text": inputs["text"]},
              present={"text": torch.tensor([True, False, True, False, True])})
    gates = model.gates  # experts: image, audio, text, shared, shared
    assert gates.shape == (5, 5)
    assert torch.all(gates[:, 1] == 0)  # audio never given
    assert torch.all(gates[[1, 3], 2] == 0)  # text absent for samples 1 and 3
    assert torch.all((gates > 0).sum(dim=1) <= 2)  # top-2 routing
    torch.testing.assert_close(gates.sum(dim=1), torch.ones(5))
    assert model.balance_loss.item() >= 1.0 - 1e-6


@pytest.mark.parametrize("name", METHODS)
def test_an_absent_modality_trains_none_of_its_own_weights(name):
    """Absence must cut a modality's own path, not feed it zeros: its weights get no gradient.

    The explicit stand-ins for missing input (early/gated `missing.*`, and the constant row of a
    low-rank factor) are the exceptions, and they must be the ones that learn instead."""
    model = make(name).train()
    inputs = pooled_inputs(4)
    model(inputs, present={"audio": torch.zeros(4, dtype=torch.bool)}).pow(2).sum().backward()
    own = {n: p for n, p in model.named_parameters() if "audio" in n}
    assert own, "every method has weights specific to each modality"
    for n, p in own.items():
        grad = torch.zeros_like(p) if p.grad is None else p.grad
        if n.startswith("missing."):
            assert grad.abs().sum() > 0, n
        elif name == "low_rank_tensor":
            assert grad[:, 0].abs().sum() > 0 and torch.all(grad[:, 1:] == 0), n
        else:
            assert torch.all(grad == 0), n


@pytest.mark.parametrize("name,kwargs", [("late", {}), ("late", {"weighting": "learned"}), ("gated", {})])
def test_a_lone_modality_gets_the_whole_weight(name, kwargs):
    """Late and gated fusion renormalise over present modalities: one alone is not diluted."""
    torch.manual_seed(0)
    model = fusion.create(name, DIMS, 3, **kwargs).eval()
    image = pooled_inputs()["image"]
    with torch.no_grad():
        fused = model({"image": image})
        if name == "late":
            expected = model.heads["image"](image)
        else:
            expected = model.out(torch.tanh(model.transform["image"](image)))
    torch.testing.assert_close(fused, expected)


def _where_task(count: int, seed: int):
    """A 4 x 4 grid of cells, one lit; the question asks "is it on the left?" or "is it at the top?"."""
    generator = torch.Generator().manual_seed(seed)
    cell = torch.randint(0, 16, (count,), generator=generator)
    ask = torch.randint(0, 2, (count,), generator=generator)
    tokens = 0.1 * torch.randn(count, 16, 4, generator=generator)
    tokens[torch.arange(count), cell, 0] += 1.0
    row, col = cell // 4, cell % 4
    labels = torch.where(ask == 0, col < 2, row < 2).long()
    grid = EncoderOutput(tokens, torch.ones(count, 16, dtype=torch.bool), tokens.mean(1))
    return {"grid": grid, "question": torch.nn.functional.one_hot(ask, 2).float()}, labels, cell


def test_film_answers_where_questions_that_pooling_cannot():
    """FiLM sees each cell's coordinates and lets the question steer the convolutions; a fusion of
    pooled vectors has lost where the lit cell was."""
    inputs, labels, _ = _where_task(768, seed=5)
    test_inputs, test_labels, cells = _where_task(512, seed=6)
    dims = {"grid": 4, "question": 2}
    scores = {}
    for name, kwargs in (("film", dict(dim=16, blocks=2, hidden=32)), ("late", dict(hidden=32))):
        torch.manual_seed(0)
        model = fusion.create(name, dims, 2, **kwargs)
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(150):
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(inputs), labels).backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            scores[name] = (model(test_inputs).argmax(1) == test_labels).float().mean().item()
        if name == "film":
            attention = model.attention
    assert scores["film"] >= 0.9 and scores["late"] <= 0.75, scores
    assert attention.shape == (len(cells), 4, 4)  # where each answer looked, a distribution over cells
    torch.testing.assert_close(attention.flatten(1).sum(1), torch.ones(len(cells)))
