"""Write a real ImageNet-style JPEG folder from installed data (mnist5k, Fashion-MNIST), so the
folder loaders (torchvision, DALI) and `--data PATH` can be exercised with no download."""
from __future__ import annotations

from pathlib import Path

import torch

from aft_fast.data.fashion_mnist import fashion_mnist
from aft_fast.data.mnist5k import mnist5k
from aft_fast.errors import OptionError

SOURCES = {"mnist5k": mnist5k, "fashion-mnist": fashion_mnist}


def make_folder(out, *, source: str = "mnist5k", size: int = 64, per_class: int | None = None,
                quality: int = 90) -> dict:
    """train/ from the source's train split, val/ from its test split; RGB JPEGs of size×size in
    class folders "0".."9". Returns {split: number of images}."""
    from PIL import Image

    if source not in SOURCES:
        raise OptionError("from", f"must be one of {', '.join(SOURCES)}; got {source!r}")
    if size < 8:
        raise OptionError("size", f"must be >= 8, got {size}")
    if per_class is not None and per_class < 1:  # 0 would write a folder of no images
        raise OptionError("per_class", f"must be >= 1, got {per_class}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise OptionError("out", f"{out} is not empty; choose a new folder")
    counts = {}
    for split, src in (("train", "train"), ("val", "test")):
        images, labels = SOURCES[source](src)
        taken = {c: 0 for c in range(10)}
        for i, (img, label) in enumerate(zip(images, labels.tolist())):
            if per_class is not None and taken[label] >= per_class:
                continue
            taken[label] += 1
            folder = out / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            arr = (img[0] * 255).round().to(torch.uint8).numpy()
            Image.fromarray(arr, mode="L").convert("RGB").resize((size, size), Image.BILINEAR) \
                .save(folder / f"{split}_{i:05d}.jpg", quality=quality)
        counts[split] = sum(taken.values())
    return counts
