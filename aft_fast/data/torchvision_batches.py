"""Image files through torchvision: PIL decode + the augmentation preset (augment.py) in
DataLoader workers. The order, shards and resume are `Batches`' (the DataLoader reads the index
list it is handed); the last partial batch is kept."""
from __future__ import annotations

import torch

from aft_fast.data.augment import PAD, SmallTrain, torchvision_transform
from aft_fast.data.batches import Batches
from aft_fast.data.decode import UnreadableImage, one_line, open_rgb
from aft_fast.data.types import FileList
from aft_fast.errors import OptionError


class ImageFiles(torch.utils.data.Dataset):
    def __init__(self, files: FileList, transform):
        self.files, self.transform = files, transform
        self.placed = False  # also return where the augmentation put the image

    def __len__(self):
        return len(self.files.files)

    def __getitem__(self, i):
        image, label = open_rgb(self.files.files[i]), self.files.labels[i]
        if not self.placed:
            return self.transform(image), label
        x, placed = self.transform.placed(image)
        return x, label, torch.tensor(placed)


class _Planned(torch.utils.data.Sampler):
    """Yields the index list set just before each pass (the DataLoader keeps the sampler object)."""

    def __init__(self):
        self.order: list[int] = []

    def __iter__(self):
        return iter(self.order)

    def __len__(self):
        return len(self.order)


class TorchvisionBatches(Batches):
    def __init__(self, files: FileList, batch_size: int, *, train: bool, augment: str,
                 image_size: int, device, workers: int, seed: int, channels_last: bool,
                 rank: int, world_size: int):
        super().__init__(len(files.files), batch_size, shuffle=train, seed=seed, device=device,
                         channels_last=channels_last, rank=rank, world_size=world_size)
        self.files, self.augment = files, augment
        self.dataset = ImageFiles(files, torchvision_transform(augment, image_size, train))
        self._sampler = _Planned()
        self.loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=batch_size, sampler=self._sampler, num_workers=workers,
            pin_memory=self.device.type == "cuda", persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None)

    def ask_origin(self) -> None:
        transform = self.dataset.transform
        if isinstance(transform, SmallTrain):  # padded crops and flips: said per image
            self.dataset.placed, self.pad = True, PAD
        elif self.shuffle and self.augment == "imagenet":
            raise OptionError("augment", "a random-resized crop rescales each image, so a "
                              "perturbation kept per training image cannot follow it: pass "
                              "--augment small (padded crop + flip) or none")
        super().ask_origin()

    def _batches(self, order: torch.Tensor):
        self._sampler.order = order.tolist()
        return _naming_bad_files(iter(self.loader))


def _naming_bad_files(batches):
    """The loader's batches; a file that fails to decode ends them with one line naming it."""
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except UnreadableImage as exc:
            raise one_line(exc) from None
        yield batch
