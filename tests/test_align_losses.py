"""Alignment losses: gradients, aligned < shuffled, learnable temperature, exact presence masks, OT marginals."""
from __future__ import annotations

import pytest
import torch

from sensorium.align.losses import InfoNCELoss, SigLIPLoss, SinkhornAlignmentLoss, TripletLoss, sinkhorn
from sensorium.errors import ConfigError
from sensorium.align.losses import make_loss

PAIRWISE = [InfoNCELoss, SigLIPLoss, TripletLoss]


def paired_batch(n: int = 16, d: int = 32, noise: float = 0.1, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g)
    b = a + noise * torch.randn(n, d, generator=g)
    return a, b


@pytest.mark.parametrize("loss_type", PAIRWISE)
def test_aligned_pairs_cost_less_than_shuffled(loss_type):
    loss = loss_type()
    a, b = paired_batch()
    shuffled = b[torch.roll(torch.arange(len(b)), 3)]
    assert loss(a, b).item() < loss(a, shuffled).item()


@pytest.mark.parametrize("loss_type", PAIRWISE)
def test_gradients_are_finite_and_reach_both_sides(loss_type):
    loss = loss_type()
    a, b = paired_batch(noise=1.0)
    a.requires_grad_(True)
    b.requires_grad_(True)
    loss(a, b).backward()
    for tensor in (a, b):
        assert torch.isfinite(tensor.grad).all()
        assert tensor.grad.abs().sum() > 0


@pytest.mark.parametrize("loss_type", PAIRWISE)
def test_one_gradient_step_lowers_the_loss(loss_type):
    loss = loss_type()
    a, b = paired_batch(noise=1.5, seed=1)
    a.requires_grad_(True)
    before = loss(a, b)
    before.backward()
    with torch.no_grad():
        after = loss(a - 0.5 * a.grad, b)
    assert after.item() < before.item()


@pytest.mark.parametrize("loss_type", [InfoNCELoss, SigLIPLoss])
def test_temperature_is_learnable(loss_type):
    loss = loss_type()
    a, b = paired_batch()
    loss(a, b).backward()
    assert loss.logit_scale.requires_grad and loss.logit_scale.grad is not None
    assert loss.logit_scale.grad.abs().item() > 0
    if loss_type is SigLIPLoss:
        assert loss.bias.grad is not None and loss.bias.grad.abs().item() > 0


def test_infonce_scale_is_clamped():
    loss = InfoNCELoss(max_scale=100.0)
    with torch.no_grad():
        loss.logit_scale.fill_(10.0)
    assert loss.scale.item() == pytest.approx(100.0)


@pytest.mark.parametrize("loss_type", PAIRWISE)
def test_presence_mask_equals_loss_on_present_subset(loss_type):
    loss = loss_type()
    a, b = paired_batch(n=12, noise=0.8, seed=2)
    a_present = torch.tensor([1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1], dtype=torch.bool)
    b_present = torch.tensor([1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1], dtype=torch.bool)
    keep = a_present & b_present
    masked = loss(a, b, a_present, b_present)
    subset = loss(a[keep], b[keep])
    assert masked.item() == pytest.approx(subset.item(), rel=1e-6)
    # and the missing rows really are out: changing them changes nothing
    a2, b2 = a.clone(), b.clone()
    a2[~keep] = 100.0 * torch.randn_like(a2[~keep])
    b2[~keep] = -b2[~keep]
    assert loss(a2, b2, a_present, b_present).item() == pytest.approx(masked.item(), rel=1e-6)


@pytest.mark.parametrize("loss_type", PAIRWISE)
def test_all_missing_batch_gives_zero_with_a_graph(loss_type):
    loss = loss_type()
    a, b = paired_batch(n=4)
    a.requires_grad_(True)
    out = loss(a, b, torch.zeros(4, dtype=torch.bool))
    assert out.item() == 0.0
    out.backward()


def test_triplet_hardest_negative_matches_hand_computation():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b = torch.tensor([[1.0, 0.1], [0.1, 1.0], [1.0, 0.9]])
    loss = TripletLoss(margin=0.2)
    an, bn = torch.nn.functional.normalize(a, dim=1), torch.nn.functional.normalize(b, dim=1)
    s = an @ bn.T
    expected = 0.0
    for i in range(3):
        neg_b = max(max(0.0, 0.2 + s[i, j].item() - s[i, i].item()) for j in range(3) if j != i)
        neg_a = max(max(0.0, 0.2 + s[j, i].item() - s[i, i].item()) for j in range(3) if j != i)
        expected += neg_b + neg_a
    assert loss(a, b).item() == pytest.approx(expected / 3, rel=1e-5)


def test_sinkhorn_plan_has_the_requested_marginals():
    g = torch.Generator().manual_seed(0)
    cost = torch.rand(3, 5, 7, generator=g)
    wa = torch.rand(3, 5, generator=g)
    wa /= wa.sum(dim=1, keepdim=True)
    wb = torch.rand(3, 7, generator=g)
    wb[:, -2:] = 0  # padding tokens carry no mass
    wb /= wb.sum(dim=1, keepdim=True)
    plan = sinkhorn(cost, wa, wb, epsilon=0.05, iterations=300)
    assert torch.allclose(plan.sum(dim=-1), wa, atol=1e-4)
    assert torch.allclose(plan.sum(dim=-2), wb, atol=1e-4)
    assert plan[..., -2:].abs().max() < 1e-6


def test_sinkhorn_finds_the_permutation_at_low_epsilon():
    cost = 1.0 - torch.eye(4)[[2, 0, 3, 1]]
    plan = sinkhorn(cost, torch.full((4,), 0.25), torch.full((4,), 0.25), epsilon=0.01, iterations=200)
    assert torch.equal(plan.argmax(dim=1), torch.tensor([2, 0, 3, 1]))


def test_ot_loss_prefers_matching_token_sets_and_respects_masks():
    g = torch.Generator().manual_seed(3)
    words = torch.randn(6, 4, 16, generator=g)
    regions = words[:, torch.randperm(4, generator=g)] + 0.1 * torch.randn(6, 4, 16, generator=g)
    word_mask = torch.ones(6, 4, dtype=torch.bool)
    word_mask[0, 3] = False
    loss = SinkhornAlignmentLoss()
    aligned = loss(words, regions, word_mask)
    shuffled = loss(words, regions[torch.roll(torch.arange(6), 1)], word_mask)
    assert aligned.item() < shuffled.item()
    present = torch.tensor([1, 1, 0, 1, 1, 1], dtype=torch.bool)
    keep = present
    assert loss(words, regions, word_mask, a_present=present).item() == pytest.approx(
        loss(words[keep], regions[keep], word_mask[keep]).item(), rel=1e-5)
    words.requires_grad_(True)
    loss(words, regions, word_mask).backward()
    assert torch.isfinite(words.grad).all() and words.grad.abs().sum() > 0
    assert words.grad[0, 3].abs().sum() == 0  # a padding token gets no gradient


def test_unknown_loss_name_is_a_config_error():
    with pytest.raises(ConfigError, match="loss"):
        make_loss("cosine-ish")
