"""Batches from in-memory tensors (mnist5k, Fashion-MNIST, synthetic): no DataLoader, no workers,
exact and deterministic. The contract (order, shards, resume) is `aft_fast.data.batches.Batches`.
Images may be stored as uint8 (0..255, a quarter of the memory) and become float32 in [0, 1] one
batch at a time."""
from __future__ import annotations

import torch

from aft_fast.data.batches import Batches


class TensorBatches(Batches):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *,
                 shuffle: bool = False, seed: int = 0, device="cpu", channels_last: bool = False,
                 rank: int = 0, world_size: int = 1):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        super().__init__(len(labels), batch_size, shuffle=shuffle, seed=seed, device=device,
                         channels_last=channels_last, rank=rank, world_size=world_size)
        self.images, self.labels = images, labels

    def shuffle_seed(self) -> int:
        # Not DistributedSampler's seed + epoch: kept so that runs recorded before the shared
        # base class existed reshuffle the same way.
        return self.seed * 1_000_003 + self.epoch

    def _batches(self, order: torch.Tensor):
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            x = self.images[idx]
            yield (x.float().div_(255.0) if x.dtype == torch.uint8 else x), self.labels[idx]
