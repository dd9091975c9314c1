"""`make_loaders(data, ...)`: the train / train_eval / val / test loaders of one data source.

- train: shuffled every epoch (`set_epoch`), sharded across ranks, augmented for image folders;
  `train_images=N`: a fixed subset of N of them (the same N for every seed; quick runs).
- train_eval: a fixed, unshuffled subset of the training images (train robust accuracy).
- val: held out from training, never the test split (model selection, per-epoch metrics).
- test: what papers report (the official test split; the folder's `val/` directory).

Sources: "mnist5k" (bundled), "fashion-mnist" (the official idx files, fashion_mnist.py),
"synthetic" (random, for speed work), or an ImageNet-style folder (folder.py), optionally with a
class map onto a pretrained model's outputs (class_map.py).

Every loader is a `Batches` (batches.py): tensors in memory (tensors.py), image files through
torchvision (torchvision_batches.py) or DALI (dali.py, imported only when asked for).
"""
from __future__ import annotations

import os

from aft_fast.data import augment as aug
from aft_fast.data.batches import Batches
from aft_fast.data.class_map import load_class_map
from aft_fast.data.fashion_mnist import CLASSES as FASHION_CLASSES
from aft_fast.data.fashion_mnist import fashion_mnist
from aft_fast.data.folder import first_image_side, folder_splits, subset
from aft_fast.data.mnist5k import mnist5k
from aft_fast.data.synthetic import synthetic
from aft_fast.data.tensors import TensorBatches
from aft_fast.data.types import DataSpec, Loaders
from aft_fast.errors import OptionError
from aft_fast.policy import CHECK_FILES_OF, LOADERS, SMALL_IMAGE_MAX

BUILTIN = ("mnist5k", "fashion-mnist", "synthetic")
FOLDER_IMAGE_SIZE = 224  # a folder's default side, unless its images are small (then their own)



def make_loaders(data: str, *, batch_size: int, loader: str = "pytorch",
                 image_size: int | None = None, augment: str | None = None,
                 class_map: str | None = None, device="cpu",
                 workers: int = 2, seed: int = 0, rank: int = 0, world_size: int = 1,
                 channels_last: bool = False, train_images: int | None = None,
                 train_eval_size: int = 512,
                 val_size: int | None = None, eval_batch_size: int | None = None,
                 synthetic_shape=(3, 32, 32), synthetic_classes: int = 10,
                 synthetic_size: int = 1024, check_files: str | bool = "bytes") -> Loaders:
    if loader not in LOADERS:
        raise OptionError("loader", f"must be one of {', '.join(LOADERS)}; got {loader!r}")
    if batch_size < 1:
        raise OptionError("batch_size", f"must be >= 1, got {batch_size}")
    shard = dict(rank=rank, world_size=world_size, device=device, channels_last=channels_last)
    eval_bs = eval_batch_size or batch_size
    if train_images is not None and train_images < 1:
        raise OptionError("train_images", f"must be >= 1, got {train_images}")
    if data in BUILTIN:
        for name, value in (("augment", augment), ("class_map", class_map),
                            ("val_images", val_size)):
            if value is not None:
                raise OptionError(name, f"applies to image folders; {data} is read as it is")
        splits, spec = _tensor_splits(data, image_size, seed, synthetic_shape, synthetic_classes,
                                      synthetic_size)
        if train_images is not None:
            keep = subset(len(splits["train"][1]), train_images)
            splits["train"] = tuple(t[keep] for t in splits["train"])
            spec.train_size = len(keep)
        k = min(train_eval_size, len(splits["train"][1]))
        train_eval = tuple(t[:k] for t in splits["train"])
        return Loaders(TensorBatches(*splits["train"], batch_size, shuffle=True, seed=seed, **shard),
                       TensorBatches(*train_eval, eval_bs, **shard),
                       TensorBatches(*splits["val"], eval_bs, **shard),
                       TensorBatches(*splits["test"], eval_bs, **shard), spec)
    if os.path.isdir(data):
        files, classes = folder_splits(data, val_size=val_size, train_images=train_images,
                                       train_eval_size=train_eval_size, eval_batch_size=eval_bs,
                                       check=CHECK_FILES_OF.get(check_files, check_files))
        native = first_image_side(files["train"])
        if image_size is None:
            image_size = native if native <= SMALL_IMAGE_MAX else FOLDER_IMAGE_SIZE
        preset = aug.resolve(augment, native)
        spec = DataSpec(str(data), len(classes), 3, image_size, len(files["train"].files), classes,
                        augment=preset)
        if class_map is not None:
            cmap = load_class_map(class_map)
            spec.class_indices = cmap.labels_for(classes)
            spec.num_classes = cmap.num_classes
            files = {k: v.relabel(spec.class_indices) for k, v in files.items()}
        make = _folder_batches_class(loader)
        common = dict(augment=preset, image_size=image_size, workers=workers, seed=seed, **shard)
        return Loaders(make(files["train"], batch_size, train=True, **common),
                       *(make(files[s], eval_bs, train=False, **common)
                         for s in ("train_eval", "val", "test")), spec)
    raise OptionError("data", f"must be one of {', '.join(BUILTIN)} or an existing ImageNet-style "
                              f"folder (train/<class>/*.jpg, val/<class>/*.jpg); got {data!r}")


def _tensor_splits(data, image_size, seed, synthetic_shape, synthetic_classes, synthetic_size):
    """({split: (images, labels)}, spec) of a built-in in-memory source."""
    if data == "mnist5k":
        splits = {s: mnist5k(s) for s in ("train", "val", "test")}
        return splits, DataSpec("mnist5k", 10, 1, 28, len(splits["train"][1]),
                                [str(i) for i in range(10)])
    if data == "fashion-mnist":  # kept as uint8 (55,000 images): scaled a batch at a time
        splits = {s: fashion_mnist(s, uint8=True) for s in ("train", "val", "test")}
        return splits, DataSpec("fashion-mnist", 10, 1, 28, len(splits["train"][1]),
                                list(FASHION_CLASSES))
    if image_size:  # speed work at the real resolution: --data synthetic --image-size 224
        synthetic_shape = (synthetic_shape[0], image_size, image_size)
    n, c = synthetic_size, synthetic_classes
    splits = {"train": synthetic(n, synthetic_shape, c, seed),
              "val": synthetic(max(n // 8, 1), synthetic_shape, c, seed + 1),
              "test": synthetic(max(n // 8, 1), synthetic_shape, c, seed + 2)}
    return splits, DataSpec("synthetic", c, synthetic_shape[0], synthetic_shape[-1], n,
                            [str(i) for i in range(c)])


def _folder_batches_class(loader: str) -> type[Batches]:
    if loader == "dali":
        from aft_fast.data.dali import DaliBatches

        return DaliBatches
    from aft_fast.data.torchvision_batches import TorchvisionBatches

    return TorchvisionBatches
