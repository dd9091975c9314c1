"""Normalisation inside the model: every model in aft_fast takes images in [0, 1], so eps and
alpha are in pixel units and no loader ever divides by a per-channel std."""
from __future__ import annotations

import re

import torch
import torch.nn as nn

from aft_fast.errors import OptionError

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CIFAR10 = ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616))
MNIST = ((0.1307,), (0.3081,))
HALF = ((0.5,), (0.5,))  # x ↦ 2x − 1: TF-style models (EfficientNet-Lite, Inception)


class Normalized(nn.Module):
    """`model((x - mean) / std)`; `.model` is the plain network (torchvision-compatible keys)."""

    def __init__(self, model: nn.Module, mean, std):
        super().__init__()
        if len(mean) != len(std):
            raise OptionError("mean", f"needs one value per channel like std; got {list(mean)} "
                              f"and std {list(std)}")
        if any(s <= 0 for s in std):
            raise OptionError("std", f"must be > 0, got {list(std)}")
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In x's dtype: the attack's bf16/fp16 input copy stays low precision into the first
        # layer instead of being promoted to fp32 by the fp32 buffers (a no-op for fp32 x).
        return self.model((x - self.mean.to(x.dtype)) / self.std.to(x.dtype))


def parse_floats(name: str, value) -> tuple[float, ...] | None:
    """Per-channel values as a user writes them: 0.5, "0.5", "0.485,0.456,0.406",
    "0.485 0.456 0.406", "[0.485, 0.456, 0.406]" (a YAML list read back as text) or a sequence.
    None stays None (the architecture's default applies)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in re.split(r"[\s,]+", value.strip().strip("[]()")) if v]
    elif not isinstance(value, (list, tuple)):
        value = [value]
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise OptionError(name, f"expected numbers in [0, 1] pixel units, one per channel or one "
                          f"for all, like 0.5 or 0.485,0.456,0.406; got {value!r}") from None
    if not values:
        raise OptionError(name, "is empty: give one value per channel or one for all")
    return values


def per_channel(name: str, given, default: tuple, channels: int) -> tuple[float, ...]:
    """One value per input channel. A single value is repeated; a default made for another channel
    count (ImageNet's 3 values for a 1-channel input) is averaged; a given value must fit."""
    values = parse_floats(name, given)
    if values is not None:
        if len(values) not in (1, channels):
            raise OptionError(name, f"must have 1 or {channels} values (one per channel), "
                              f"got {len(values)}")
    else:
        values = tuple(default)
        if len(values) not in (1, channels):
            values = (sum(values) / len(values),)
    return values * channels if len(values) == 1 else values
