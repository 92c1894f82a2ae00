"""A trained model made faster to score, checked against itself: the form `sensorium evaluate` runs.

Two standard CPU inference rewrites, applied per encoder and kept only where they pay:
- **batch norm folded into the convolution before it** (`torch.fx`'s conv/BN fusion): in eval mode
  a BatchNorm is a per-channel scale and shift, which the convolution's weights can carry, so one
  pass over the activations disappears;
- **channels-last memory** (NHWC) for 2-D convolutions, the layout oneDNN's CPU convolutions are
  written for (PyTorch's channels-last tutorial); the input is converted once, at the encoder.

Each candidate is run on a real batch beside the model as trained; it is kept only when its output
agrees (the same tolerance as float32 re-association) and it is measurably faster on that batch
(best of a few timed passes). Where torch.fx cannot trace an encoder, its traceable parts are folded;
a candidate that raises is dropped. Measured on MultiBench's LeNet pair: BENCHMARKS.md, "Beside
MultiBench on its own AV-MNIST format".
"""
from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

FOLDED = "batch norm folded"
CHANNELS_LAST = "channels-last"
KEEP_RATIO = 0.9  # a candidate must take at most this share of the trained form's time
TIMED_PASSES = 2  # choosing costs 2 + (2 + 1) x candidates tried passes over one batch
RELATIVE_TOLERANCE, ABSOLUTE_TOLERANCE = 1e-3, 1e-4  # float32 re-association, scaled by the output's size


@dataclass
class EncoderForm:
    """What scoring uses for one modality's encoder, and why."""

    rewrites: tuple[str, ...]
    speedup: float  # time of the trained form over the kept form on the sample batch (1.0: unchanged)
    reason: str = ""  # why a candidate was not kept, when none was

    def as_dict(self) -> dict[str, Any]:
        return {"rewrites": list(self.rewrites), "speedup": round(self.speedup, 2), "reason": self.reason}


def fold_batch_norms(module: nn.Module) -> tuple[nn.Module, int]:
    """A copy of `module` with every eval-mode BatchNorm that directly follows a convolution (or a
    Linear) folded into it, and how many were folded. Submodules are traced from the top down: where
    `torch.fx` cannot trace a module (data-dependent control flow, checks on shapes), its children are
    tried instead, so a traceable body inside an untraceable wrapper is still folded."""
    folded = _fold(copy.deepcopy(module))
    return folded, batch_norms(module) - batch_norms(folded)


def _fold(module: nn.Module) -> nn.Module:
    with warnings.catch_warnings():  # the module imports torch.utils.mkldnn, which warns about TorchScript on import
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.fx.experimental.optimization import fuse

    if not batch_norms(module):
        return module
    try:
        return fuse(module, inplace=True)
    except Exception:  # noqa: BLE001 - fx raises many kinds on untraceable code; the children are tried next
        for name, child in list(module.named_children()):
            setattr(module, name, _fold(child))
        return module


def batch_norms(module: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


class ChannelsLast(nn.Module):
    """An encoder whose 2-D convolution weights and 4-D inputs are channels-last (NHWC)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder.to(memory_format=torch.channels_last)
        for attribute in ("output_dim", "name"):
            if hasattr(encoder, attribute):
                setattr(self, attribute, getattr(encoder, attribute))

    def forward(self, value: Tensor, mask: Tensor | None = None):
        if isinstance(value, Tensor) and value.dim() == 4:
            value = value.contiguous(memory_format=torch.channels_last)
        return self.encoder(value, mask)


def outputs_of(result: Any) -> list[Tensor]:
    """The tensors an encoder returned (an EncoderOutput's fields, or a tensor)."""
    if isinstance(result, Tensor):
        return [result]
    return [v for v in vars(result).values() if isinstance(v, Tensor)]


def outputs_agree(reference: list[Tensor], candidate: list[Tensor]) -> bool:
    """Whether a rewritten module's outputs are the original's, up to float32 re-association."""
    if len(reference) != len(candidate):
        return False
    for a, b in zip(reference, candidate):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.is_floating_point():
            scale = float(a.abs().max()) if a.numel() else 0.0
            if not torch.allclose(a, b, rtol=RELATIVE_TOLERANCE, atol=ABSOLUTE_TOLERANCE * max(1.0, scale)):
                return False
        elif not torch.equal(a, b):
            return False
    return True


def best_time(run: Callable[[], Any]) -> float:
    """The fastest of a few passes; the caller has run it once already (allocation, kernel selection)."""
    times = []
    for _ in range(TIMED_PASSES):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return min(times)


def fastest_encoder(encoder: nn.Module, value: Tensor, mask: Tensor | None,
                    context: Callable[[], Any] = torch.inference_mode) -> tuple[nn.Module, EncoderForm]:
    """A faster form of `encoder` on one real batch that gives its outputs, with what was done. The
    candidates are tried with the most rewrites first; the first that agrees and is faster is kept, so
    a typical encoder costs two forms' passes, and a single rewrite is tried only when both together
    fail or do not pay."""
    encoder.eval()
    has_conv2d = any(isinstance(m, nn.Conv2d) for m in encoder.modules())
    if not has_conv2d and not batch_norms(encoder):
        return encoder, EncoderForm((), 1.0, "no 2-D convolution or batch norm")
    folded, count = fold_batch_norms(encoder) if batch_norms(encoder) else (encoder, 0)
    four_dimensional = has_conv2d and isinstance(value, Tensor) and value.dim() == 4
    candidates: list[tuple[tuple[str, ...], Callable[[], nn.Module]]] = []
    if count and four_dimensional:
        candidates.append(((FOLDED, CHANNELS_LAST), lambda: ChannelsLast(copy.deepcopy(folded))))
    if count:
        candidates.append(((FOLDED,), lambda: folded))
    if four_dimensional:
        candidates.append(((CHANNELS_LAST,), lambda: ChannelsLast(copy.deepcopy(encoder))))
    with context():
        reference = outputs_of(encoder(value, mask))
        trained_time = best_time(lambda: encoder(value, mask))
    reasons = []
    for rewrites, build in candidates:
        try:
            candidate = build().eval()
            with context():
                if not outputs_agree(reference, outputs_of(candidate(value, mask))):
                    reasons.append(f"{' + '.join(rewrites)}: outputs differ")
                    continue
                seconds = best_time(lambda: candidate(value, mask))
        except Exception as exc:  # noqa: BLE001 - a rewrite the encoder's code does not survive is just not used
            reasons.append(f"{' + '.join(rewrites)}: {type(exc).__name__}")
            continue
        if seconds <= KEEP_RATIO * trained_time:
            return candidate, EncoderForm(rewrites, trained_time / seconds)
        reasons.append(f"{' + '.join(rewrites)}: not faster ({trained_time / seconds:.2f}x)")
    return encoder, EncoderForm((), 1.0, "; ".join(reasons))


def fastest_form(model: nn.Module, batch: Mapping[str, Any],
                 context: Callable[[], Any] = torch.inference_mode) -> tuple[nn.Module, dict[str, EncoderForm]]:
    """A copy of a MultimodalModel whose encoders are each in their fastest checked form on `batch`
    (a collated batch of real items), and the form chosen per modality. The model itself is untouched."""
    fast = copy.copy(model)  # a shallow copy: the fusion and heads are shared, the encoder table is new
    fast._modules = dict(model._modules)
    fast.encoders = nn.ModuleDict(dict(model.encoders))
    forms = {}
    for modality, (value, mask, _) in model.encoder_arguments(batch).items():
        fast.encoders[modality], forms[modality] = fastest_encoder(model.encoders[modality], value, mask, context)
    return fast, forms
