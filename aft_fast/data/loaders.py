"""`make_loaders(data, ...)`: the train / train_eval / val / test loaders of one data source.

- train: shuffled every epoch (`set_epoch`), sharded across ranks, augmented for image folders.
- train_eval: a fixed, unshuffled subset of the training images (train robust accuracy).
- val: held out from training, never the test split (model selection, per-epoch metrics).
- test: what papers report (mnist5k test split; the folder's `val/` directory).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from aft_fast.data.mnist5k import mnist5k
from aft_fast.data.synthetic import synthetic
from aft_fast.data.tensors import TensorBatches

BUILTIN = ("mnist5k", "synthetic")
LOADERS = ("pytorch", "dali")


@dataclass
class DataSpec:
    name: str
    num_classes: int
    channels: int
    image_size: int
    train_size: int
    class_names: list[str] = field(default_factory=list)


class Loaders(NamedTuple):
    train: Any
    train_eval: Any
    val: Any
    test: Any
    spec: DataSpec


def make_loaders(data: str, *, batch_size: int, loader: str = "pytorch",
                 image_size: int | None = None, device="cpu", workers: int = 2, seed: int = 0,
                 rank: int = 0, world_size: int = 1, channels_last: bool = False,
                 train_eval_size: int = 512, val_size: int | None = None,
                 eval_batch_size: int | None = None, synthetic_shape=(3, 32, 32),
                 synthetic_classes: int = 10, synthetic_size: int = 1024,
                 check_files: bool = True) -> Loaders:
    if loader not in LOADERS:
        raise ValueError(f"--loader must be one of {', '.join(LOADERS)}; got {loader!r}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    eval_bs = eval_batch_size or batch_size
    common = dict(device=device, channels_last=channels_last)
    if data in BUILTIN:
        if data == "mnist5k":
            train, val, test = mnist5k("train"), mnist5k("val"), mnist5k("test")
            spec = DataSpec("mnist5k", 10, 1, 28, len(train[1]), [str(i) for i in range(10)])
        else:
            if image_size:  # speed work at the real resolution: --data synthetic --image-size 224
                synthetic_shape = (synthetic_shape[0], image_size, image_size)
            n = synthetic_size
            train = synthetic(n, synthetic_shape, synthetic_classes, seed)
            val = synthetic(max(n // 8, 1), synthetic_shape, synthetic_classes, seed + 1)
            test = synthetic(max(n // 8, 1), synthetic_shape, synthetic_classes, seed + 2)
            spec = DataSpec("synthetic", synthetic_classes, synthetic_shape[0], synthetic_shape[-1],
                            n, [str(i) for i in range(synthetic_classes)])
        k = min(train_eval_size, len(train[1]))
        return Loaders(
            TensorBatches(*train, batch_size, shuffle=True, seed=seed, rank=rank,
                          world_size=world_size, **common),
            TensorBatches(train[0][:k], train[1][:k], eval_bs, rank=rank, world_size=world_size,
                          **common),
            TensorBatches(*val, eval_bs, rank=rank, world_size=world_size, **common),
            TensorBatches(*test, eval_bs, rank=rank, world_size=world_size, **common),
            spec)
    if os.path.isdir(data):
        from aft_fast.data.folder import folder_loaders

        return folder_loaders(data, batch_size=batch_size, eval_batch_size=eval_bs, loader=loader,
                              image_size=image_size or 224, workers=workers, seed=seed, rank=rank,
                              world_size=world_size, train_eval_size=train_eval_size,
                              val_size=val_size, check=check_files, **common)
    raise ValueError(f"--data must be one of {', '.join(BUILTIN)} or an existing ImageNet-style "
                     f"folder (train/<class>/*.jpg, val/<class>/*.jpg); got {data!r}")
