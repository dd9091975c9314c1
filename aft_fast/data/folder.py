"""ImageNet-style folders (`root/train/<class>/*.jpg`, `root/val/<class>/*.jpg`) through
torchvision or DALI behind one contract (see tensors.py): `(images, labels)` on the device,
images float32 in [0, 1], labels int64, `len`, `num_samples`, `set_epoch`.

Labels follow torchvision's ImageFolder: classes are the sorted sub-folder names of train/.
Splits: `train` = train/ minus a held-out `val` carved with a fixed seed (model selection, never
the test split); `train_eval` = a fixed subset of train (no augmentation); `test` = the folder's
val/ directory (what ImageNet papers report).

Corrupt files: DALI cannot skip a file it fails to decode: it aborts the pipeline, and on some
truncated JPEGs the process dies with a segfault. So both loaders behave the same way: before the
first batch, a cheap check reads each file's first and last bytes (JPEG SOI/EOI markers, PNG
signature/IEND) and refuses to start, naming the bad files (`check_files=False` skips it, e.g.
for a folder already scanned). A file that passes the check but fails to decode still stops the
torchvision loader with an error naming it. `aft-fast data scan DIR` decodes every file fully
and lists the unreadable ones.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SPLIT_SEED = 0  # the fixed permutation that carves val (and train_eval) out of train/
CROP_RATIO = 0.875  # eval: resize the shorter side to size / 0.875, centre-crop size


@dataclass
class FileList:
    files: list[str]
    labels: list[int]


def scan_split(root: Path, split: str, classes: list[str] | None = None) -> tuple[FileList, list[str]]:
    """Files and labels of `root/split`; checks the layout and names what is wrong."""
    base = root / split
    if not base.is_dir():
        raise FileNotFoundError(f"--data {root}: missing {split}/ folder (expected "
                                f"{root}/{split}/<class>/<image>)")
    found = sorted(d.name for d in base.iterdir() if d.is_dir())
    if not found:
        raise ValueError(f"--data {root}: {base} has no class sub-folders")
    if classes is None:
        classes = found
    elif found != classes:
        raise ValueError(f"--data {root}: {split}/ classes differ from train/ "
                         f"({sorted(set(found) ^ set(classes))[:5]})")
    files, labels = [], []
    for idx, cls in enumerate(classes):
        imgs = sorted(str(p) for p in (base / cls).iterdir()
                      if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not imgs:
            raise ValueError(f"--data {root}: class folder {base / cls} holds no images "
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


def check_files(files: FileList, root) -> None:
    bad = [(p, why) for p in files.files if (why := quick_check(p)) is not None]
    if bad:
        listed = "; ".join(f"{p}: {why}" for p, why in bad[:5])
        raise ValueError(f"--data {root}: {len(bad)} unreadable image file(s): {listed}"
                         f"{' ...' if len(bad) > 5 else ''}. Remove or replace them (list them all "
                         f"with `aft-fast data scan {root}`)")


def carve(files: FileList, n: int, seed: int = SPLIT_SEED) -> tuple[FileList, FileList]:
    """(rest, held out n) with a fixed permutation; both keep the sorted (class) order. The seed
    is fixed, not the run's: runs with different seeds are selected on the same val images."""
    perm = torch.randperm(len(files.files), generator=torch.Generator().manual_seed(seed)).tolist()
    held, rest = sorted(perm[:n]), sorted(perm[n:])
    pick = lambda ids: FileList([files.files[i] for i in ids], [files.labels[i] for i in ids])  # noqa: E731
    return pick(rest), pick(held)


def folder_loaders(root, *, batch_size: int, eval_batch_size: int, loader: str, image_size: int,
                   device, workers: int, seed: int, rank: int, world_size: int,
                   train_eval_size: int, val_size: int | None, channels_last: bool,
                   check: bool = True):
    from aft_fast.data.loaders import DataSpec, Loaders

    root = Path(root)
    train_all, classes = scan_split(root, "train")
    test, _ = scan_split(root, "val", classes)
    if check:
        check_files(train_all, root)
        check_files(test, root)
    if val_size is None:
        val_size = min(10_000, max(eval_batch_size, math.ceil(0.02 * len(train_all.files))))
    if not 0 < val_size < len(train_all.files):
        raise ValueError(f"--val-size must be in [1, {len(train_all.files) - 1}], got {val_size}")
    train, val = carve(train_all, val_size)
    # A fixed sample spread over every class (the first k of a class-sorted list would be class 0).
    _, train_eval = carve(train, min(train_eval_size, len(train.files)))
    make = dali_loader if loader == "dali" else torchvision_loader
    common = dict(image_size=image_size, device=device, workers=workers, seed=seed,
                  channels_last=channels_last)
    spec = DataSpec(str(root), len(classes), 3, image_size, len(train.files), classes)
    return Loaders(
        make(train, batch_size, train=True, rank=rank, world_size=world_size, **common),
        make(train_eval, eval_batch_size, train=False, rank=rank, world_size=world_size, **common),
        make(val, eval_batch_size, train=False, rank=rank, world_size=world_size, **common),
        make(test, eval_batch_size, train=False, rank=rank, world_size=world_size, **common),
        spec)


# ------------------------------------------------------------------------------- torchvision
class ImageFiles(torch.utils.data.Dataset):
    def __init__(self, files: FileList, transform):
        self.files, self.transform = files, transform

    def __len__(self):
        return len(self.files.files)

    def __getitem__(self, i):
        from PIL import Image, ImageFile

        ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, as in DALI
        path = self.files.files[i]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
        except Exception as exc:
            raise RuntimeError(f"cannot decode {path}: {exc}. Find every bad file with "
                               f"`aft-fast data scan <folder>`") from exc
        return self.transform(img), self.files.labels[i]


def transforms(image_size: int, train: bool):
    from torchvision import transforms as T

    if train:
        return T.Compose([T.RandomResizedCrop(image_size), T.RandomHorizontalFlip(), T.ToTensor()])
    return T.Compose([T.Resize(int(image_size / CROP_RATIO)), T.CenterCrop(image_size), T.ToTensor()])


class TorchvisionBatches:
    """DataLoader + DistributedSampler (shuffle per epoch from seed + epoch; shards padded like
    DistributedSampler; the last partial batch is kept)."""

    def __init__(self, files, batch_size, *, train, image_size, device, workers, seed,
                 channels_last, rank, world_size):
        self.dataset = ImageFiles(files, transforms(image_size, train))
        self.sampler = torch.utils.data.DistributedSampler(
            self.dataset, num_replicas=world_size, rank=rank, shuffle=train, seed=seed)
        self.device, self.channels_last = torch.device(device), channels_last
        self.loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=batch_size, sampler=self.sampler, num_workers=workers,
            pin_memory=self.device.type == "cuda", persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None)

    @property
    def num_samples(self) -> int:
        return self.sampler.num_samples

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(self.device, non_blocking=True)


def torchvision_loader(files, batch_size, **kw):
    return TorchvisionBatches(files, batch_size, **kw)


def dali_loader(files, batch_size, **kw):
    from aft_fast.data.dali import DaliBatches

    return DaliBatches(files, batch_size, **kw)
