"""Random images and labels of a given shape, fixed by a seed: for speed work, not learning."""
from __future__ import annotations

import torch


def synthetic(n: int, shape=(3, 32, 32), num_classes: int = 10, seed: int = 0):
    """(images uniform in [0, 1] of shape [n, *shape], labels uniform in [0, num_classes))."""
    if n < 1 or num_classes < 1:
        raise ValueError(f"synthetic data needs n >= 1 and num_classes >= 1, got {n}, {num_classes}")
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=g), torch.randint(0, num_classes, (n,), generator=g)
