"""ImageNet-style folders (`root/train/<class>/*.jpg`, `root/val/<class>/*.jpg`): the file lists
of the four splits. The loaders that read them are `torchvision_batches.py` and `dali.py`.

Labels follow torchvision's ImageFolder: classes are the sorted sub-folder names of train/,
hidden ones (`.ipynb_checkpoints/`) excepted (or,
with a class map, the pretrained model's output indices: `class_map.py`). Splits: `train` =
train/ minus a held-out `val` carved with a fixed seed (model selection, never the test split);
`train_eval` = a fixed subset of train spread over the classes (no augmentation); `test` = the
folder's val/ directory (what ImageNet papers report).

Corrupt files: DALI cannot skip a file it fails to decode: it aborts the pipeline, and on some
truncated JPEGs the process dies with a segfault. So both loaders behave the same way: before the
first batch, a cheap check reads each file's first and last bytes (JPEG SOI/EOI markers, PNG
signature/IEND) and refuses to start, naming the bad files (`check=False` skips it, e.g. for a
folder already scanned). A file that passes the check but fails to decode still stops the
torchvision loader with a one-line error naming it (`decode.py`, the decoder `data scan` uses). `aft-fast data scan DIR` decodes every file fully
and lists the unreadable ones.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from aft_fast.data.decode import hidden
from aft_fast.data.types import IMAGE_EXTENSIONS, SPLIT_SEED, FileList
from aft_fast.errors import OptionError


def scan_split(root: Path, split: str, classes: list[str] | None = None) -> tuple[FileList, list[str]]:
    """Files and labels (sorted class index) of `root/split`; checks the layout, names what is wrong."""
    base = root / split
    if not base.is_dir():
        raise OptionError("data", f"{root}: missing {split}/ folder (expected "
                                  f"{root}/{split}/<class>/<image>)")
    found = sorted(d.name for d in base.iterdir() if d.is_dir() and not hidden(Path(d.name)))
    if not found:
        raise OptionError("data", f"{root}: {base} has no class sub-folders")
    if classes is None:
        classes = found
    elif found != classes:
        raise OptionError("data", f"{root}: {split}/ classes differ from train/ "
                                  f"({sorted(set(found) ^ set(classes))[:5]})")
    files, labels = [], []
    for idx, cls in enumerate(classes):
        named = [p for p in (base / cls).iterdir()
                 if p.suffix.lower() in IMAGE_EXTENSIONS and not hidden(Path(p.name))]
        broken = [str(p) for p in named if not p.is_file()]  # a folder, a broken or looping link
        if broken:
            raise OptionError("data", f"{root}: {len(broken)} image name(s) that are not readable "
                                      f"files (a folder, or a broken or looping symlink): "
                                      f"{', '.join(broken[:5])}. Remove or fix them")
        imgs = sorted(str(p) for p in named)
        if not imgs:
            raise OptionError("data", f"{root}: class folder {base / cls} holds no images "
                                      f"({', '.join(IMAGE_EXTENSIONS)})")
        files += imgs
        labels += [idx] * len(imgs)
    return FileList(files, labels), classes


def quick_check(path: str) -> str | None:
    """Why `path` is certainly unreadable (truncated or not an image), or None. Reads 2 KiB."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 1024))
            tail = f.read()
    except OSError as exc:
        return f"unreadable ({exc})"
    suffix = path.lower().rsplit(".", 1)[-1]
    if suffix in ("jpg", "jpeg"):
        if head[:2] != b"\xff\xd8":
            return "not a JPEG (no SOI marker)"
        if b"\xff\xd9" not in tail:
            return "truncated JPEG (no EOI marker)"
    elif suffix == "png":
        if head != b"\x89PNG\r\n\x1a\n":
            return "not a PNG (bad signature)"
        if b"IEND" not in tail:
            return "truncated PNG (no IEND chunk)"
    elif size == 0:
        return "empty file"
    return None


def decode_check(path) -> str | None:
    """Why the loader could not read `path` (it decodes the whole image, as the loader does), or
    None."""
    from aft_fast.data.decode import UnreadableImage, open_rgb

    try:
        open_rgb(path)
    except UnreadableImage as exc:
        return str(exc).split(": ", 1)[-1]
    return None


def check_files(files: FileList, root, mode: str = "bytes") -> None:
    """The pre-flight check of `--check-files`: "bytes" reads each file's first and last bytes
    (cheap: truncated and foreign files), "decode" decodes every image as the loader will (finds
    a corrupt middle too; costs a decode of the whole folder, in threads)."""
    if mode == "decode":
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            reasons = list(pool.map(decode_check, files.files))
    else:
        reasons = [quick_check(p) for p in files.files]
    bad = [(p, why) for p, why in zip(files.files, reasons) if why is not None]
    if bad:
        listed = "; ".join(f"{p}: {why}" for p, why in bad[:5])
        raise OptionError("data", f"{root}: {len(bad)} unreadable image file(s): {listed}"
                                  f"{' ...' if len(bad) > 5 else ''}. Remove or replace them (list "
                                  f"them all with `aft-fast data scan {root}`)")


def subset(size: int, n: int, seed: int = SPLIT_SEED) -> list[int]:
    """n of range(size) (all if n >= size), sorted, by a fixed permutation: the same for every
    run's seed, spread over a class-sorted list."""
    perm = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    return sorted(perm[:n].tolist())


def carve(files: FileList, n: int, seed: int = SPLIT_SEED) -> tuple[FileList, FileList]:
    """(rest, held out n) with a fixed permutation; both keep the sorted (class) order. The seed
    is fixed, not the run's: runs with different seeds are selected on the same val images."""
    held = subset(len(files.files), n, seed)
    chosen = set(held)
    return files.pick([i for i in range(len(files.files)) if i not in chosen]), files.pick(held)


def first_image_side(files: FileList) -> int:
    """The shorter side of the first image (reads its header only): the folder's native size."""
    from PIL import Image

    with Image.open(files.files[0]) as img:
        return min(img.size)


def folder_splits(root, *, val_size: int | None, train_eval_size: int, eval_batch_size: int,
                  train_images: int | None = None,
                  check: str = "bytes") -> tuple[dict[str, FileList], list[str]]:
    """({"train", "train_eval", "val", "test": FileList}, class names) of an ImageNet-style folder."""
    root = Path(root)
    train_all, classes = scan_split(root, "train")
    test, _ = scan_split(root, "val", classes)
    if check != "off":
        check_files(train_all, root, check)
        check_files(test, root, check)
    if val_size is None:  # one evaluation batch or 2%, but never more than a fifth of train
        val_size = min(10_000, max(eval_batch_size, math.ceil(0.02 * len(train_all.files))),
                       max(1, len(train_all.files) // 5))
    if not 0 < val_size < len(train_all.files):
        raise OptionError("val_images", f"must be in [1, {len(train_all.files) - 1}] (the training "
                                        f"images minus one), got {val_size}")
    train, val = carve(train_all, val_size)
    if train_images is not None:  # a fixed subset (quick runs); val stays as it is
        train = train.pick(subset(len(train.files), train_images))
    # A fixed sample spread over every class (the first k of a class-sorted list would be class 0).
    _, train_eval = carve(train, min(train_eval_size, len(train.files)))
    return {"train": train, "train_eval": train_eval, "val": val, "test": test}, classes
