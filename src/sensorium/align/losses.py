"""Alignment losses that pull paired embeddings of two modalities together in one space.

Every loss takes two batches `a` (B, d) and `b` (B, d) where row i of `a` is paired with row i of
`b`, plus optional presence masks: a pair whose `a` or `b` side is missing (a photo without a
caption, a clip without audio) is dropped from the positives AND from everyone's negatives, so the
loss is exactly the loss of the present subset. Inputs need not be unit length; the losses
normalise them, because the learned temperature is what sets the scale.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def present_subset(a: Tensor, b: Tensor, a_present: Tensor | None = None,
                   b_present: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Rows of the batch where both sides exist."""
    keep = torch.ones(a.shape[0], dtype=torch.bool, device=a.device)
    if a_present is not None:
        keep &= a_present.to(torch.bool)
    if b_present is not None:
        keep &= b_present.to(torch.bool)
    return a[keep], b[keep]


def _zero(a: Tensor, b: Tensor, *params: Tensor) -> Tensor:
    """A zero loss still attached to the graph (an all-missing batch must not break backward)."""
    return (a.sum() + b.sum() + sum(p.sum() for p in params)) * 0.0


class InfoNCELoss(nn.Module):
    """CLIP's symmetric cross-entropy (Radford et al. 2021) with a learnable, clamped temperature.

    `logit_scale` = log(1 / temperature), initialised at 1/0.07 and clamped at `max_scale` (100) as
    in CLIP so training cannot sharpen the softmax without bound.
    """

    def __init__(self, temperature: float = 0.07, max_scale: float = 100.0, learn_temperature: bool = True):
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)), requires_grad=learn_temperature)
        self.max_log_scale = math.log(max_scale)

    @property
    def scale(self) -> Tensor:
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    def logits(self, a: Tensor, b: Tensor) -> Tensor:
        return self.scale * F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T

    def forward(self, a: Tensor, b: Tensor, a_present: Tensor | None = None,
                b_present: Tensor | None = None) -> Tensor:
        a, b = present_subset(a, b, a_present, b_present)
        if a.shape[0] == 0:
            return _zero(a, b, self.logit_scale)
        logits = self.logits(a, b)
        target = torch.arange(a.shape[0], device=a.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


class SigLIPLoss(nn.Module):
    """SigLIP's pairwise sigmoid loss (Zhai et al. 2023): every (i, j) is a binary "paired?" question.

    Learnable temperature t' (scale = exp(t'), init 10) and bias (init -10), as in the paper; the
    bias starts the model off predicting "not paired", which matches the B-1 to 1 class balance.
    """

    def __init__(self, scale: float = 10.0, bias: float = -10.0, max_scale: float = 100.0):
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(scale)))
        self.bias = nn.Parameter(torch.tensor(float(bias)))
        self.max_log_scale = math.log(max_scale)

    def logits(self, a: Tensor, b: Tensor) -> Tensor:
        scale = self.logit_scale.clamp(max=self.max_log_scale).exp()
        return scale * F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T + self.bias

    def forward(self, a: Tensor, b: Tensor, a_present: Tensor | None = None,
                b_present: Tensor | None = None) -> Tensor:
        a, b = present_subset(a, b, a_present, b_present)
        if a.shape[0] == 0:
            return _zero(a, b, self.logit_scale, self.bias)
        logits = self.logits(a, b)
        signs = 2.0 * torch.eye(a.shape[0], device=a.device) - 1.0
        return -F.logsigmoid(signs * logits).sum() / a.shape[0]


class TripletLoss(nn.Module):
    """VSE++ hinge loss (Faghri et al. 2018): each positive must beat the hardest negative by `margin`.

    With `hardest=False` it sums the violation over all negatives (the older VSE loss), which
    learns faster at the start and is less sensitive to one mislabelled neighbour.
    """

    def __init__(self, margin: float = 0.2, hardest: bool = True):
        super().__init__()
        self.margin = margin
        self.hardest = hardest

    def forward(self, a: Tensor, b: Tensor, a_present: Tensor | None = None,
                b_present: Tensor | None = None) -> Tensor:
        a, b = present_subset(a, b, a_present, b_present)
        if a.shape[0] < 2:
            return _zero(a, b)
        scores = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T
        positive = scores.diag()
        eye = torch.eye(a.shape[0], dtype=torch.bool, device=a.device)
        cost_b = (self.margin + scores - positive[:, None]).clamp(min=0).masked_fill(eye, 0)  # a -> wrong b
        cost_a = (self.margin + scores - positive[None, :]).clamp(min=0).masked_fill(eye, 0)  # b -> wrong a
        if self.hardest:
            return (cost_b.max(dim=1).values + cost_a.max(dim=0).values).mean()
        return (cost_b.sum(dim=1) + cost_a.sum(dim=0)).mean()


def sinkhorn(cost: Tensor, a_weights: Tensor, b_weights: Tensor, epsilon: float = 0.05,
             iterations: int = 100) -> Tensor:
    """Entropic optimal-transport plan (Cuturi 2013), in the log domain so small epsilon is stable.

    cost (..., n, m); a_weights (..., n) and b_weights (..., m) each sum to 1 (zeros allowed for
    padding). Returns the plan P (..., n, m) whose row sums are a_weights and column sums b_weights.
    """
    log_a = torch.log(a_weights.clamp(min=1e-30)).masked_fill(a_weights <= 0, -1e9)
    log_b = torch.log(b_weights.clamp(min=1e-30)).masked_fill(b_weights <= 0, -1e9)
    kernel = -cost / epsilon
    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    for _ in range(iterations):
        f = log_a - torch.logsumexp(kernel + g[..., None, :], dim=-1)
        g = log_b - torch.logsumexp(kernel + f[..., :, None], dim=-2)
    return torch.exp(kernel + f[..., :, None] + g[..., None, :])


class SinkhornAlignmentLoss(nn.Module):
    """Contrastive loss on optimal-transport similarity between token sets (e.g. words <-> crops).

    For every (i, j) in the batch, the tokens of a_i are transported onto the tokens of b_j with
    cost 1 - cosine; the similarity is minus the transport cost. A symmetric InfoNCE over those
    similarities then asks each set to be cheapest to match with its own partner. Token masks mark
    padding; presence masks drop whole pairs exactly as in the other losses.
    """

    def __init__(self, epsilon: float = 0.05, iterations: int = 50, temperature: float = 0.07,
                 max_scale: float = 100.0):
        super().__init__()
        self.epsilon = epsilon
        self.iterations = iterations
        self.contrast = InfoNCELoss(temperature, max_scale)

    def similarity(self, a_tokens: Tensor, b_tokens: Tensor, a_mask: Tensor | None = None,
                   b_mask: Tensor | None = None) -> Tensor:
        """(Ba, Na, d) x (Bb, Nb, d) -> (Ba, Bb) similarity = -OT cost."""
        a_mask = torch.ones(a_tokens.shape[:2], device=a_tokens.device) if a_mask is None else a_mask.float()
        b_mask = torch.ones(b_tokens.shape[:2], device=b_tokens.device) if b_mask is None else b_mask.float()
        a_weights = a_mask / a_mask.sum(dim=1, keepdim=True).clamp(min=1)
        b_weights = b_mask / b_mask.sum(dim=1, keepdim=True).clamp(min=1)
        a_unit, b_unit = F.normalize(a_tokens, dim=-1), F.normalize(b_tokens, dim=-1)
        cost = 1.0 - torch.einsum("ind,jmd->ijnm", a_unit, b_unit)  # (Ba, Bb, Na, Nb)
        shape = cost.shape
        wa = a_weights[:, None, :].expand(shape[0], shape[1], shape[2])
        wb = b_weights[None, :, :].expand(shape[0], shape[1], shape[3])
        with torch.no_grad():  # envelope theorem: the plan is treated as fixed for the gradient
            plan = sinkhorn(cost.detach(), wa, wb, self.epsilon, self.iterations)
        return -(plan * cost).sum(dim=(-1, -2))

    def forward(self, a_tokens: Tensor, b_tokens: Tensor, a_mask: Tensor | None = None,
                b_mask: Tensor | None = None, a_present: Tensor | None = None,
                b_present: Tensor | None = None) -> Tensor:
        keep = torch.ones(a_tokens.shape[0], dtype=torch.bool, device=a_tokens.device)
        if a_present is not None:
            keep &= a_present.to(torch.bool)
        if b_present is not None:
            keep &= b_present.to(torch.bool)
        a_tokens, b_tokens = a_tokens[keep], b_tokens[keep]
        a_mask = a_mask[keep] if a_mask is not None else None
        b_mask = b_mask[keep] if b_mask is not None else None
        if a_tokens.shape[0] == 0:
            return _zero(a_tokens, b_tokens, self.contrast.logit_scale)
        similarity = self.similarity(a_tokens, b_tokens, a_mask, b_mask)
        logits = self.contrast.scale * similarity
        target = torch.arange(a_tokens.shape[0], device=a_tokens.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


LOSSES = {"infonce": InfoNCELoss, "siglip": SigLIPLoss, "triplet": TripletLoss}


def make_loss(name: str, **options) -> nn.Module:
    """A pairwise loss by name; the OT loss needs token sets and is built directly."""
    from ..errors import ConfigError

    if name not in LOSSES:
        raise ConfigError(f"loss: {name!r} is not one of {sorted(LOSSES)}")
    return LOSSES[name](**options)
