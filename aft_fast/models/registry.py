"""Models by name: every torchvision classification model, plus the CIFAR/MNIST networks of the
adversarial-training literature. `build` returns a `Normalized` model that takes [0, 1] images."""
from __future__ import annotations

import difflib

import torch.nn as nn
import torchvision

from aft_fast.models.cifar import PreActResNet18, WideResNet
from aft_fast.models.normalize import CIFAR10, IMAGENET, MNIST, Normalized
from aft_fast.models.small import small_cnn
from aft_fast.models.weights import load_weights

# name -> (constructor(num_classes, in_channels), default (mean, std))
OURS = {
    "small_cnn": (lambda n, c: small_cnn(n, c), MNIST),
    "preact_resnet18": (lambda n, c: PreActResNet18(n, c), CIFAR10),
    # WRN-28-10 with dropout 0.3 as in the AFT paper's CIFAR setting; WRN-34-10 as in Madry et al.
    "wrn28_10": (lambda n, c: WideResNet(28, 10, n, dropout=0.3, in_channels=c), CIFAR10),
    "wrn34_10": (lambda n, c: WideResNet(34, 10, n, dropout=0.0, in_channels=c), CIFAR10),
}


def _torchvision_archs() -> list[str]:
    return sorted(torchvision.models.list_models(module=torchvision.models))


def list_archs() -> list[str]:
    """Every name `build` accepts: ours first, then torchvision's classification models."""
    return sorted(OURS) + _torchvision_archs()


def build(arch: str, num_classes: int, *, weights: str | None = None, in_channels: int = 3,
          replace_head: bool = False, mean=None, std=None) -> Normalized:
    """The network `arch` for `num_classes` classes inside `Normalized` (takes [0, 1] images).

    `weights`: a local file (aft_fast checkpoint or torchvision-style state_dict; never a
    download). `replace_head`: load everything but the classifier, which stays freshly
    initialised for `num_classes`. `mean`/`std` override the arch's default normalisation
    (ImageNet for torchvision archs, CIFAR-10 for the CIFAR nets, MNIST for small_cnn).
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be an integer >= 1, got {in_channels!r}")
    if arch in OURS:
        make, (d_mean, d_std) = OURS[arch]
        net = make(num_classes, in_channels)
    elif arch in _torchvision_archs():
        if in_channels != 3:
            raise ValueError(f"--arch {arch} takes 3-channel images; this data has {in_channels} "
                             "(use small_cnn for MNIST)")
        net = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
        d_mean, d_std = IMAGENET
    else:
        close = difflib.get_close_matches(arch, list_archs(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"--arch {arch!r} is unknown{hint} (aft_fast.models.list_archs() lists them)")
    mean = _per_channel(mean, d_mean, in_channels, "mean")
    std = _per_channel(std, d_std, in_channels, "std")
    if weights:
        load_weights(net, weights, replace_head=replace_head)
    return Normalized(net, mean, std)


def _per_channel(given, default: tuple, channels: int, name: str) -> tuple:
    """One value per input channel. A single value is repeated; a default made for another channel
    count (ImageNet's 3 values for a 1-channel input) is averaged; a given value must fit."""
    if given is not None:
        values = tuple(float(v) for v in (given if hasattr(given, "__len__") else (given,)))
        if len(values) not in (1, channels):
            raise ValueError(f"{name} must have 1 or {channels} values (one per channel), "
                             f"got {len(values)}")
    else:
        values = tuple(default)
        if len(values) not in (1, channels):
            values = (sum(values) / len(values),)
    return values * channels if len(values) == 1 else values


def unwrap(model: nn.Module) -> nn.Module:
    """The Normalized model inside DDP / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None)
        if inner is None:
            inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner
