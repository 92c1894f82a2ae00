"""The form a trained model is scored in (`sensorium.training.inference`, issue 22's evaluation speed):
batch norms folded into their convolutions, channels-last memory, each kept only when it gives the
model's own outputs. The timing rule is opened wide in most tests (every agreeing rewrite counts as
faster), so what is checked is that every kept form scores as the trained model does, whatever
this machine's timings."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from sensorium import fusion
from sensorium.encoders.foreign import ForeignEncoder
from sensorium.training import inference
from sensorium.training.inference import CHANNELS_LAST, FOLDED, fastest_encoder, fastest_form, fold_batch_norms
from sensorium.training.model import MultimodalModel


class CheckedNet(nn.Module):
    """A LeNet-like body behind a shape check in Python, which torch.fx cannot trace."""

    def __init__(self, flatten: str = "flatten", layout_dependent: bool = False):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
                                  nn.MaxPool2d(2), nn.Conv2d(6, 12, 3, padding=1, bias=False), nn.BatchNorm2d(12),
                                  nn.ReLU(), nn.AdaptiveAvgPool2d(2))
        self.flatten, self.layout_dependent = flatten, layout_dependent
        self.output_dim = 48
        for norm in (self.body[1], self.body[5]):  # statistics as training leaves them, not the identity
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
            norm.weight.data.uniform_(0.5, 1.5)
            norm.bias.data.uniform_(-0.2, 0.2)

    def forward(self, x):
        if x.dim() != 4:
            raise ValueError("expected (B, 1, H, W)")
        out = self.body(x)
        if self.layout_dependent and not out.is_contiguous():
            out = out * 1.5  # a model whose numbers change with memory layout: its rewrite must be refused
        return out.view(out.shape[0], -1) if self.flatten == "view" else out.flatten(1)


@pytest.fixture
def every_agreeing_rewrite_is_kept(monkeypatch):
    monkeypatch.setattr(inference, "KEEP_RATIO", 1e9)


def pictures(count: int, seed: int) -> torch.Tensor:
    return torch.rand(count, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


def model_of(net: nn.Module) -> MultimodalModel:
    torch.manual_seed(0)
    encoder = ForeignEncoder(net, net.output_dim, "image")
    fused = fusion.create("late", {"image": net.output_dim}, 16)
    return MultimodalModel({"image": encoder}, fused, {"digit": 10}).eval()


def batch_of(values: torch.Tensor) -> dict:
    return {"inputs": {"image": values}, "masks": {}, "present": {"image": torch.ones(len(values), dtype=torch.bool)}}


def test_batch_norms_inside_an_untraceable_module_are_folded_and_change_nothing():
    net = CheckedNet().eval()
    folded, count = fold_batch_norms(net)
    assert count == 2 and inference.batch_norms(folded) == 0 and inference.batch_norms(net) == 2  # a copy
    with torch.inference_mode():
        x = pictures(8, 1)
        assert torch.allclose(folded(x), net(x), rtol=1e-4, atol=1e-5)


def test_the_fastest_form_scores_as_the_trained_model_and_leaves_it_untouched(every_agreeing_rewrite_is_kept):
    model = model_of(CheckedNet())
    fast, forms = fastest_form(model, batch_of(pictures(16, 2)))
    assert forms["image"].rewrites == (FOLDED, CHANNELS_LAST)
    assert inference.batch_norms(model.encoders["image"]) == 2 and inference.batch_norms(fast.encoders["image"]) == 0
    with torch.inference_mode():
        unseen = batch_of(pictures(64, 3))
        trained, rewritten = model(unseen)["digit"], fast(unseen)["digit"]
    assert torch.allclose(rewritten, trained, rtol=1e-3, atol=1e-4)
    assert torch.equal(rewritten.argmax(1), trained.argmax(1))
    assert fast.heads is model.heads and fast.fusion is model.fusion  # only the encoders are new


@pytest.mark.parametrize("options, why", [
    ({"flatten": "view"}, "RuntimeError"),  # .view cannot read a channels-last map
    ({"layout_dependent": True}, "outputs differ"),
])
def test_a_rewrite_that_fails_or_changes_the_outputs_is_not_used(every_agreeing_rewrite_is_kept, monkeypatch,
                                                                 options, why):
    torch.manual_seed(5)
    net = CheckedNet(**options).eval()
    sample = pictures(8, 4)
    encoder = ForeignEncoder(net, net.output_dim, "image")
    chosen, form = fastest_encoder(encoder, sample, None)
    assert form.rewrites == (FOLDED,)  # channels-last refused, folding kept
    with torch.inference_mode():
        assert torch.allclose(chosen(sample).pooled, encoder(sample).pooled, rtol=1e-3, atol=1e-4)
    monkeypatch.setattr(inference, "KEEP_RATIO", 0.0)  # nothing counts as faster: the trained form, with reasons
    chosen, form = fastest_encoder(encoder, sample, None)
    assert chosen is encoder and form.rewrites == () and why in form.reason


def test_an_encoder_without_convolutions_or_batch_norm_is_left_as_it_is():
    encoder = ForeignEncoder(nn.Sequential(nn.Flatten(), nn.Linear(16, 4)), 4, "signal")
    chosen, form = fastest_encoder(encoder, torch.rand(3, 4, 4), None)
    assert chosen is encoder and form.rewrites == () and "no 2-D convolution" in form.reason
