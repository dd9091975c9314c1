"""Batches from in-memory tensors (mnist5k, synthetic): no DataLoader, no workers, exact and
deterministic. Implements the loader contract every loader in aft_fast follows:

  for images, labels in loader: ...   # on the requested device; images float32 in [0, 1]
  len(loader)                         # batches per epoch on this rank
  loader.num_samples                  # samples per epoch on this rank
  loader.set_epoch(epoch)             # the shuffle of an epoch is a pure function of (seed, epoch)

Sharding (world_size > 1) follows DistributedSampler: the (shuffled) index list is padded by
wrapping around to a multiple of world_size and rank r takes every world_size-th index from r, so
every rank sees the same number of batches. The last partial batch is kept.
"""
from __future__ import annotations

import math

import torch


class TensorBatches:
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *,
                 shuffle: bool = False, seed: int = 0, device="cpu", channels_last: bool = False,
                 rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.device, self.channels_last = torch.device(device), channels_last
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    @property
    def num_samples(self) -> int:
        return math.ceil(len(self.labels) / self.world_size)

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> torch.Tensor:
        n = len(self.labels)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        total = self.num_samples * self.world_size
        if total > n:
            order = torch.cat([order, order[: total - n]])
        return order[self.rank::self.world_size]

    def __iter__(self):
        order = self.indices()
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            x = self.images[idx].to(self.device, non_blocking=True)
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx].to(self.device, non_blocking=True)
