"""Normalisation inside the model: every model in aft_fast takes images in [0, 1], so eps and
alpha are in pixel units and no loader ever divides by a per-channel std."""
from __future__ import annotations

import torch
import torch.nn as nn

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CIFAR10 = ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616))
MNIST = ((0.1307,), (0.3081,))


class Normalized(nn.Module):
    """`model((x - mean) / std)`; `.model` is the plain network (torchvision-compatible keys)."""

    def __init__(self, model: nn.Module, mean, std):
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean and std must have one value per channel, got {mean} and {std}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be > 0, got {std}")
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In x's dtype: the attack's bf16/fp16 input copy stays low precision into the first
        # layer instead of being promoted to fp32 by the fp32 buffers (a no-op for fp32 x).
        return self.model((x - self.mean.to(x.dtype)) / self.std.to(x.dtype))
