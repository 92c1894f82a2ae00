"""Convolutional encoders trained in channels-last memory where it pays: the training-side twin of
`training.inference`.

oneDNN's CPU convolutions and PyTorch's max pooling are written for channels-last (NHWC) tensors; on
MultiBench's LeNet pair a training step's convolution backward and pooling take about half the time
there. PyTorch's CPU batch norm is the exception: on NHWC maps with few channels (6 or 12) its
forward and backward run 4-5x slower than on NCHW ones, so those batch norms are run channels-first,
their input and output converted around them, while wide ones stay channels-last. Which batch norms
go which way is measured per layer on the first real batch (its forward and backward, both ways),
not guessed from the channel count, because the crossover depends on the CPU.

The layout is kept only when the encoder's outputs agree with the as-is form and its forward and
backward pass takes at most `KEEP_RATIO` of the as-is time (medians of alternated passes). Nothing
about the weights changes: the same parameters, the same state dict keys (hooks, not wrappers),
saved contiguous as before; `restore` puts the encoder back as it was. The numbers differ from an
NCHW run only by float re-association.
"""
from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from .inference import CHANNELS_LAST, outputs_agree, outputs_of

AUTO, AS_IS = "auto", "as-is"
LAYOUTS = (AUTO, CHANNELS_LAST, AS_IS)  # the values of `train.layout`
NORMS = (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)  # per-channel statistics over a map: timed both ways
MIN_PASS_SECONDS = 0.002  # an encoder's forward + backward quicker than this is not worth laying out (nor timing)
# channels-last is kept when its median pass takes at most this share of the as-is one: looser than scoring's
# 0.9 (`inference.KEEP_RATIO`), because a training run repeats the pass thousands of times and medians of
# alternated passes are steadier than one scoring batch's best
KEEP_RATIO = 0.95
ROUNDS = 5  # timed passes of each form, alternated; their medians are compared


def _elapsed(run: Callable[[], Any]) -> float:
    began = time.perf_counter()
    run()
    return time.perf_counter() - began


def median_times(runs: list[Callable[[], Any]]) -> list[float]:
    """The median time of each run over `ROUNDS` passes taken in turn, so that a slow spell of the
    machine falls on every form alike. (The best of a few passes favours a form whose speed swings:
    NCHW training steps here alternate between about 430 and 560 samples/s, channels-last ones do not.)"""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(ROUNDS):
        for spent, run in zip(times, runs):
            spent.append(_elapsed(run))
    return [statistics.median(spent) for spent in times]


@dataclass
class EncoderLayout:
    """How one modality's encoder is laid out while it trains, and why."""

    channels_last: bool
    channels_first_norms: tuple[str, ...] = ()  # normalisation layers (module names) run on NCHW maps
    speedup: float = 1.0  # as-is time over laid-out time on the first batch (1.0: unchanged or not measured)
    reason: str = ""  # why channels-last was not used, when it was not

    def as_dict(self) -> dict[str, Any]:
        return {"channels_last": self.channels_last, "channels_first_norms": list(self.channels_first_norms),
                "speedup": round(self.speedup, 2), "reason": self.reason}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> EncoderLayout:
        return cls(bool(record["channels_last"]), tuple(record.get("channels_first_norms", ())),
                   float(record.get("speedup", 1.0)), str(record.get("reason", "")))


@dataclass
class LaidOut:
    """An encoder put in a layout, with what `restore` needs to put it back."""

    encoder: nn.Module
    hooks: list[RemovableHandle] = field(default_factory=list)

    def restore(self) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks.clear()
        self.encoder.to(memory_format=torch.contiguous_format)


# Only while training: in eval mode a norm is a per-channel scale and shift, and NHWC is the faster
# layout for it (6 channels at 112 x 112: 2.3 ms against 6.0 ms converted, batches of 40).
def _channels_first_input(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    return (args[0].contiguous(), *args[1:]) if module.training else None


def _channels_last_output(module: nn.Module, args: tuple[Any, ...], output: Tensor) -> Tensor | None:
    return output.contiguous(memory_format=torch.channels_last) if module.training else None


def lay_out(encoder: nn.Module, layout: EncoderLayout) -> LaidOut:
    """Put `encoder` (in place) in `layout`: 4-D weights channels-last, the named normalisation layers
    run channels-first while training. A layout that is not channels-last changes nothing."""
    laid = LaidOut(encoder)
    if not layout.channels_last:
        return laid
    encoder.to(memory_format=torch.channels_last)
    modules = dict(encoder.named_modules())
    for name in layout.channels_first_norms:
        norm = modules[name]
        laid.hooks += [norm.register_forward_pre_hook(_channels_first_input),
                       norm.register_forward_hook(_channels_last_output)]
    return laid


def _backward_pass(module: nn.Module, arguments: tuple[Any, ...], context: Callable[[], Any]) -> None:
    """One forward and backward through `module`, as a training step runs it (gradients cleared after)."""
    with context():
        outputs = [o for o in outputs_of(module(*arguments)) if o.is_floating_point() and o.requires_grad]
    if outputs:
        sum(o.float().sum() for o in outputs).backward()
    module.zero_grad(set_to_none=True)


def _norm_inputs(encoder: nn.Module, value: Tensor, mask: Tensor | None,
                 context: Callable[[], Any]) -> dict[str, Tensor]:
    """The input each normalisation layer of a channels-last `encoder` receives on this batch."""
    seen: dict[str, Tensor] = {}
    hooks = [module.register_forward_pre_hook(lambda m, args, name=name: seen.__setitem__(name, args[0].detach()))
             for name, module in encoder.named_modules() if isinstance(module, NORMS)]
    try:
        with torch.no_grad(), context():
            encoder(value, mask)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def channels_first_norms(encoder: nn.Module, value: Tensor, mask: Tensor | None,
                         context: Callable[[], Any]) -> tuple[str, ...]:
    """The normalisation layers of a channels-last `encoder` whose forward and backward on this batch's
    maps are faster on NCHW, conversions included, than on NHWC (each timed on a copy: no statistics
    move)."""
    faster = []
    modules = dict(encoder.named_modules())
    for name, seen in _norm_inputs(encoder, value, mask, context).items():
        if seen.dim() != 4:
            continue
        norm = copy.deepcopy(modules[name]).train()
        mapped = seen.contiguous(memory_format=torch.channels_last).requires_grad_(True)
        as_last = lay_out(copy.deepcopy(norm), EncoderLayout(True)).encoder
        as_first = lay_out(copy.deepcopy(norm), EncoderLayout(True, ("",))).encoder
        passes = [lambda form=form: _backward_pass(form, (mapped,), context) for form in (as_last, as_first)]
        for run in passes:
            run()  # kernel selection, allocation
        times = median_times(passes)
        if times[1] < times[0]:
            faster.append(name)
    return tuple(faster)


def choose_layout(encoder: nn.Module, value: Any, mask: Tensor | None, context: Callable[[], Any],
                  keep_ratio: float = KEEP_RATIO) -> EncoderLayout:
    """The layout `encoder` trains fastest in on one real batch (`value`, `mask` as it is called), checked
    to give its outputs; channels-last is kept when it takes at most `keep_ratio` of the as-is time (inf:
    whenever it works). The encoder itself is untouched: every trial runs on a copy, with the random
    state put back afterwards so that choosing does not change the run that follows."""
    if not any(isinstance(m, nn.Conv2d) for m in encoder.modules()):
        return EncoderLayout(False, reason="no 2-D convolution")
    if not (isinstance(value, Tensor) and value.dim() == 4):
        return EncoderLayout(False, reason="input is not a batch of 2-D maps")
    with torch.random.fork_rng(devices=[]):
        as_is = copy.deepcopy(encoder).train()
        _backward_pass(as_is, (value, mask), context)  # kernel selection, allocation
        first = _elapsed(lambda: _backward_pass(as_is, (value, mask), context))
        if first < MIN_PASS_SECONDS:
            return EncoderLayout(False, reason=f"too small to gain ({first * 1e3:.1f} ms a pass)")
        try:
            trial = copy.deepcopy(encoder).to(memory_format=torch.channels_last)
            layout = EncoderLayout(True, channels_first_norms(trial, value, mask, context))
            trial = lay_out(copy.deepcopy(encoder), layout).encoder
            with torch.no_grad(), context():
                reference = outputs_of(copy.deepcopy(encoder).eval()(value, mask))
                agree = outputs_agree(reference, outputs_of(trial.eval()(value, mask)))
            if not agree:
                return EncoderLayout(False, reason=f"{CHANNELS_LAST}: outputs differ")
            trial.train()
            _backward_pass(trial, (value, mask), context)
            as_is_time, trial_time = median_times([lambda form=form: _backward_pass(form, (value, mask), context)
                                                   for form in (as_is, trial)])
        except Exception as exc:  # noqa: BLE001 - code that does not survive NHWC maps (`.view`) just trains as is
            return EncoderLayout(False, reason=f"{CHANNELS_LAST}: {type(exc).__name__}")
    layout.speedup = as_is_time / trial_time
    if trial_time > keep_ratio * as_is_time:
        return EncoderLayout(False, reason=f"{CHANNELS_LAST}: not faster ({layout.speedup:.2f}x)")
    return layout


def choose_layouts(encoders: Mapping[str, nn.Module], arguments: Mapping[str, tuple[Any, ...]],
                   context: Callable[[], Any], keep_ratio: float = KEEP_RATIO) -> dict[str, EncoderLayout]:
    """`choose_layout` for each modality in `arguments` ((value, mask, presence) per modality, as
    `MultimodalModel.encoder_arguments` gives them)."""
    return {modality: choose_layout(encoders[modality], value, mask, context, keep_ratio)
            for modality, (value, mask, *_) in arguments.items() if modality in encoders}


def restore_all(laid: Iterable[LaidOut]) -> None:
    for each in laid:
        each.restore()
