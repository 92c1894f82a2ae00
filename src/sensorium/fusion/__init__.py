"""Fusion methods, each built by name: `create(name, input_dims, output_dim, **kwargs)`.

Every method takes any non-empty subset of its modalities at run time (see base.Fusion for the
contract) and returns (B, output_dim). Classes load lazily from one module per method.
"""
from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module

from ..errors import ConfigError
from .base import Fusion

_METHODS: dict[str, tuple[str, str]] = {
    "early": ("early", "EarlyFusion"),
    "late": ("late", "LateFusion"),
    "tensor": ("tensor", "TensorFusion"),
    "low_rank_tensor": ("low_rank_tensor", "LowRankTensorFusion"),
    "gated": ("gated", "GatedFusion"),
    "cross_attention": ("cross_attention", "CrossAttentionFusion"),
    "single_stream": ("single_stream", "SingleStreamFusion"),
    "mixture_of_experts": ("mixture_of_experts", "MixtureOfExpertsFusion"),
    "film": ("film", "FiLMFusion"),
}

#: Methods that read token sequences (the others use each modality's pooled vector).
TOKEN_METHODS = frozenset({"cross_attention", "single_stream", "film"})

__all__ = ["Fusion", "TOKEN_METHODS", "available", "create", "fusion_class"]


def available() -> list[str]:
    """Names `create` accepts, in the order of the issue (simplest first)."""
    return list(_METHODS)


def fusion_class(name: str) -> type[Fusion]:
    """A method by name, or your own by import path ("mypackage.fusion:MyFusion"): a module built as
    cls(input_dims, output_dim, **kwargs) and called like `Fusion` (encoder outputs by modality and
    their presence; subclassing `Fusion` gives the checks and the missing-modality handling)."""
    from ..imported import is_import_path, load_object

    if is_import_path(name):
        return load_object(name, "fusion")
    if name not in _METHODS:
        raise ConfigError(f"fusion: unknown method {name!r}; available: {', '.join(available())}")
    module, cls = _METHODS[name]
    return getattr(import_module(f".{module}", __name__), cls)


def create(name: str, input_dims: Mapping[str, int], output_dim: int, **kwargs) -> Fusion:
    """Build fusion method `name` for modalities `input_dims` ({modality: width}) -> output_dim."""
    try:
        return fusion_class(name)(input_dims, output_dim, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"fusion {name!r}: {exc}") from exc
