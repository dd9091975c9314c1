"""Augmentation presets of the folder loaders, the same in torchvision and DALI (dali.py builds
the DALI graph from these constants):

- imagenet: train = random-resized crop (scale 0.08-1, ratio 3/4-4/3) + horizontal flip;
  eval = resize the shorter side to size/0.875, centre crop size.
- small (CIFAR style): train = the image at size, zero-padded by 4 pixels, a random size×size
  crop + horizontal flip; eval = the image as it is (resized to size only if it is not).
- none: train = eval = the image as it is (shorter side resized to size, centre crop).

Default (`augment=None`): "small" for images of at most SMALL_IMAGE_MAX pixels (their own side,
whatever the training size), else "imagenet" (also when ImageNet-size images are trained small).
"""
from __future__ import annotations

from aft_fast.errors import OptionError
from aft_fast.policy import AUGMENTS, SMALL_IMAGE_MAX

CROP_RATIO = 0.875  # imagenet eval: resize the shorter side to size / 0.875, centre-crop size
PAD = 4  # small train: zero padding on every side before the random crop


def resolve(augment: str | None, native_side: int) -> str:
    """The preset to use: `augment` checked, or the default for images of this (shorter) side."""
    if augment is None:
        return "small" if native_side <= SMALL_IMAGE_MAX else "imagenet"
    if augment not in AUGMENTS:
        raise OptionError("augment", f"must be one of {', '.join(AUGMENTS)}; got {augment!r}")
    return augment


def torchvision_transform(preset: str, image_size: int, train: bool):
    from torchvision import transforms as T

    as_is = [T.Resize(image_size), T.CenterCrop(image_size)]  # no-ops on size×size images
    if preset == "imagenet":
        steps = [T.RandomResizedCrop(image_size), T.RandomHorizontalFlip()] if train else \
            [T.Resize(int(image_size / CROP_RATIO)), T.CenterCrop(image_size)]
    elif preset == "small" and train:
        return SmallTrain(image_size)
    else:
        steps = as_is
    return T.Compose(steps + [T.ToTensor()])


class SmallTrain:
    """small's training transform: the image at size, zero-padded by PAD, a random size×size crop,
    a left-right flip with probability 1/2 (torchvision's RandomCrop(size, padding=PAD) +
    RandomHorizontalFlip(), with the same random draws). `placed(img)` also says where it put
    the image (a method's per-image state follows it: ATTA)."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, img):
        return self.placed(img)[0]

    def placed(self, img):
        """(tensor, (top, left, flipped)): the crop's corner in the padded image."""
        import torch
        from torchvision import transforms as T
        from torchvision.transforms import functional as F

        img = F.center_crop(F.resize(img, self.size), self.size)  # no-ops on size×size images
        img = F.pad(img, PAD)
        top, left, h, w = T.RandomCrop.get_params(img, (self.size, self.size))
        img = F.crop(img, top, left, h, w)
        flipped = bool(torch.rand(1) < 0.5)
        return F.to_tensor(F.hflip(img) if flipped else img), (top, left, int(flipped))
