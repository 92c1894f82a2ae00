"""Prompts read token by token: MiniLM's token states (whose pooled mean is the sentence vector every
model reads) and a text-to-image model that also reads them by cross-attention, because the sentence
vector barely tells "a red cube left of a blue ball" from "a blue ball left of a red cube"."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sensorium.diffusion import ImagineConfig, TextToImage, condition_width, prompt_conditions
from sensorium.experts.text import TextEncoder

PROMPTS = ["a red cube to the left of a blue sphere", "a blue sphere to the left of a red cube", "seven"]


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder()


def test_one_pass_gives_the_sentence_vectors_and_token_states_that_pool_to_them(encoder):
    vectors, states = encoder.encode_with_tokens(PROMPTS, 16)
    assert states.shape == (3, 16, 384) and states.dtype == np.float32
    np.testing.assert_allclose(vectors, encoder.encode(PROMPTS), atol=1e-5)
    length = (np.abs(states).sum(-1) > 0).sum(1)
    assert length[2] == 3 and 10 < length[0] == length[1] <= 16  # [CLS] seven [SEP]; the same words reordered
    pooled = states.sum(1) / length[:, None]
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    np.testing.assert_allclose(pooled, vectors, atol=2e-4)
    assert not np.allclose(states[0], states[1], atol=1e-2)  # the order of the words is in the states
    cut_vectors, cut = encoder.encode_with_tokens(PROMPTS, 4)
    assert cut.shape == (3, 4, 384)  # cut, not refused
    np.testing.assert_allclose(cut_vectors, vectors, atol=1e-5)  # the vector still pools every word
    np.testing.assert_allclose(cut, states[:, :4], atol=1e-4)


def test_the_numpy_backend_gives_the_same_token_states(encoder):
    vectors, states = encoder.encode_with_tokens(PROMPTS, 16)
    numpy_vectors, numpy_states = TextEncoder(backend="numpy").encode_with_tokens(PROMPTS, 16)
    np.testing.assert_allclose(numpy_vectors, vectors, atol=1e-5)
    np.testing.assert_allclose(numpy_states, states, atol=1e-3)
    assert TextEncoder().encode_with_tokens([], 8)[1].shape == (0, 8, 384)


def test_cross_attention_reads_the_tokens_and_the_null_condition_reads_nothing(encoder):
    torch.manual_seed(0)
    config = ImagineConfig(size=16, image_size=16, channels=3, widths=[32, 32, 32], tokens=16, patch=2)
    model = TextToImage(config).eval()
    for parameter in model.parameters():  # a fresh model's output layers are zero: give every path a say
        parameter.data.add_(torch.randn_like(parameter) * 0.02)
    conditions = prompt_conditions(encoder, PROMPTS[:2], 16)
    assert conditions.shape == (2, *condition_width(config))
    same_sentence = conditions.clone()
    same_sentence[1, 0] = conditions[0, 0]  # only the token states differ now
    noisy, steps = torch.randn(1, 3, 16, 16).expand(2, -1, -1, -1), torch.tensor([500, 500])
    with torch.no_grad():
        kept = model(noisy, steps, same_sentence, torch.tensor([True, True]))
        dropped = model(noisy, steps, same_sentence, torch.tensor([False, False]))
    assert (kept[0] - kept[1]).abs().max() > 1e-4
    torch.testing.assert_close(dropped[0], dropped[1])
    with pytest.raises(ValueError, match="conditions of shape"):
        model(noisy, steps, conditions[:, 0])

