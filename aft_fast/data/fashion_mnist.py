"""Fashion-MNIST (Xiao et al. 2017), the official 60,000 training and 10,000 test images, read
from the original idx files. No download: Debian's `dataset-fashion-mnist` package installs them
under /usr/share/datasets/fashion-mnist/ (`make install` does where it can); the environment
variable AFT_FAST_FASHION_MNIST points at another folder holding the same four files (gzipped or
not).

Splits: `test` = the official 10,000 test images; `val` = 5,000 images carved from the official
training set with a fixed permutation (torch.Generator seeded with SPLIT_SEED, independent of the
run's seed); `train` = the other 55,000, in their official order.
"""
from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

import numpy as np
import torch

from aft_fast.data.types import SPLIT_SEED
from aft_fast.errors import OptionError

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
ENV_VAR = "AFT_FAST_FASHION_MNIST"
INSTALL = "sudo apt-get install dataset-fashion-mnist"
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
SIZES = {"train": 60_000, "test": 10_000}
N_VAL = 5_000
SPLITS = ("train", "val", "test")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]


def data_dir() -> Path:
    return Path(os.environ.get(ENV_VAR) or DEFAULT_DIR)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_idx(path: Path, magic: int, count: int) -> np.ndarray:
    """The payload of an idx file (big-endian header: magic, then one int32 per dimension)."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    ndim = magic & 0xFF
    header = np.frombuffer(raw[:4 * (1 + ndim)], dtype=">i4")
    if header[0] != magic or header[1] != count:
        raise OptionError("data", f"{path} is not the Fashion-MNIST idx file expected (magic "
                                  f"{header[0]}, {header[1]} items; expected {magic}, {count})")
    return np.frombuffer(raw[4 * (1 + ndim):], dtype=np.uint8).reshape(header[1:])


@functools.lru_cache(maxsize=2)
def _official(part: str) -> tuple[torch.Tensor, torch.Tensor]:
    folder = data_dir()
    paths = [_find(folder, stem) for stem in FILES[part]]
    if None in paths:
        missing = ", ".join(s + "[.gz]" for s, p in zip(FILES[part], paths) if p is None)
        raise OptionError("data", f"fashion-mnist: {missing} not found in {folder}. Install the "
                                  f"official files with `{INSTALL}`, or set {ENV_VAR} to a folder "
                                  "holding them")
    images = _read_idx(paths[0], 2051, SIZES[part])
    labels = _read_idx(paths[1], 2049, SIZES[part])
    return (torch.from_numpy(images.copy()).unsqueeze(1),
            torch.from_numpy(labels.astype(np.int64)))


def val_indices() -> torch.Tensor:
    """The official training images held out as `val` (sorted), fixed by SPLIT_SEED."""
    perm = torch.randperm(SIZES["train"], generator=torch.Generator().manual_seed(SPLIT_SEED))
    return perm[:N_VAL].sort().values


def fashion_mnist(split: str = "train", *, uint8: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [N,1,28,28], labels int64 [N]) of one split (train 55,000, val 5,000, test
    10,000): float32 in [0, 1], or the stored uint8 0..255 with `uint8=True` (a quarter of the
    memory; `TensorBatches` scales a batch at a time)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    images, labels = _official("test" if split == "test" else "train")
    if split != "test":
        held = torch.zeros(len(labels), dtype=torch.bool)
        held[val_indices()] = True
        keep = held if split == "val" else ~held
        images, labels = images[keep], labels[keep]
    return (images, labels) if uint8 else (images.float().div_(255.0), labels)
