"""`Batches`: the loader contract, written once. Every loader of aft_fast (in-memory tensors,
torchvision folders, DALI folders) subclasses it and supplies only `_batches(order)`:

  for images, labels in loader: ...   # on the requested device; images float32 in [0, 1], NCHW
  len(loader)                         # batches per epoch on this rank
  loader.num_samples                  # samples per epoch on this rank
  loader.set_epoch(epoch, start_batch=0)

Order: an epoch's order is a pure function of (seed, epoch) and follows
`torch.utils.data.DistributedSampler`: shuffled (training loaders) or in file order, padded by
wrapping around to a multiple of world_size, rank r takes every world_size-th index from r, so
every rank runs the same number of steps (DDP never hangs). The last partial batch is kept.

Exact resume: `set_epoch(epoch, start_batch=k)` makes the next pass start at batch k of that
epoch's order (the batches 0..k-1 are neither read nor decoded); the pass after it starts at 0.

Per-image state (ATTA's stored perturbations): after `ask_origin()` a training loader yields
`(images, labels, Origin)` (below: each image's index in the split and where its crop and
flip put it); a loader that cannot say where its augmentation put an image refuses, naming the
option to change.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from aft_fast.errors import OptionError


class Origin(NamedTuple):
    """Where each image of a training batch comes from: its `index` in the training split of
    `size` images, and where the augmentation put it: `crop`, the (top, left) corner of its crop
    in the image zero-padded by `pad` on every side (None: not cropped), and `flip`, whether it
    was mirrored left-right after the crop (None: never)."""
    index: torch.Tensor  # int64 [B]
    size: int
    crop: torch.Tensor | None = None  # int64 [B, 2]
    flip: torch.Tensor | None = None  # bool [B]
    pad: int = 0

    @classmethod
    def whole_batch(cls, n: int, device="cpu") -> "Origin":
        """A batch that is its own split (bench times one batch over and over)."""
        return cls(torch.arange(n, device=device), n)


class Batches:
    def __init__(self, size: int, batch_size: int, *, shuffle: bool, seed: int, device,
                 channels_last: bool, rank: int, world_size: int):
        if batch_size < 1:
            raise OptionError("batch_size", f"must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={rank}, "
                             f"world_size={world_size}")
        if size < 1:
            raise OptionError("data", "the split holds no samples")
        self.size, self.batch_size, self.shuffle, self.seed = size, batch_size, shuffle, seed
        self.device, self.channels_last = torch.device(device), channels_last
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_batch = 0, 0
        self.with_origin = False  # yield each batch's Origin too (ask_origin)
        self.pad = 0  # the zero padding its crops are taken from (Origin.pad)

    def ask_origin(self) -> None:
        """Yield `(images, labels, Origin)` from now on. In-memory tensors are not augmented:
        each image is where it is; a loader with augmentation says where it put each image, or
        refuses (OptionError naming the option to change)."""
        self.with_origin = True

    @property
    def num_samples(self) -> int:
        return math.ceil(self.size / self.world_size)

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        if not 0 <= start_batch <= len(self):
            raise ValueError(f"start_batch must be in [0, {len(self)}] (batches per epoch), "
                             f"got {start_batch}")
        self.epoch, self.start_batch = epoch, start_batch

    def shuffle_seed(self) -> int:
        """The generator seed of this epoch's shuffle (DistributedSampler's: seed + epoch)."""
        return self.seed + self.epoch

    def indices(self) -> torch.Tensor:
        """This rank's sample indices of the current epoch, in reading order (all batches)."""
        n = self.size
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.shuffle_seed()))
        else:
            order = torch.arange(n)
        total = self.num_samples * self.world_size
        if total > n:  # pad by wrapping around, as DistributedSampler does
            order = torch.cat([order, order.repeat(math.ceil((total - n) / n))[:total - n]])
        return order[self.rank:total:self.world_size]

    def _batches(self, order: torch.Tensor):
        """(images, labels) batches of the samples `order`, on any device: the loader's own part.
        With `with_origin` a loader that augments adds each image's placement, int64 [B, 3]:
        the crop's top and left in the padded image and 1 where it flipped."""
        raise NotImplementedError

    def _origin(self, index: torch.Tensor, placed: torch.Tensor | None = None) -> Origin:
        to = dict(device=self.device, non_blocking=True)
        if placed is None:
            return Origin(index.to(**to), self.size)
        placed = placed.to(**to)
        return Origin(index.to(**to), self.size, placed[:, :2], placed[:, 2].bool(), self.pad)

    def _move(self, x: torch.Tensor, y: torch.Tensor):
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y.to(self.device, non_blocking=True).long()

    def __iter__(self):
        start, self.start_batch = self.start_batch, 0  # a resume offset applies to one pass
        order = self.indices()[start * self.batch_size:]
        if not len(order):
            return
        for k, (x, y, *placed) in enumerate(self._batches(order)):
            x, y = self._move(x, y)
            if self.with_origin:
                yield x, y, self._origin(order[k * self.batch_size:][:self.batch_size], *placed)
            else:
                yield x, y
