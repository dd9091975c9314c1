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

OURS = {
    "small_cnn": (lambda n, c: small_cnn(n, c), MNIST),
    "preact_resnet18": (lambda n, c: PreActResNet18(n, c), CIFAR10),
    "wrn28_10": (lambda n, c: WideResNet(28, 10, n, dropout=0.3, in_channels=c), CIFAR10),
    "wrn34_10": (lambda n, c: WideResNet(34, 10, n, dropout=0.0, in_channels=c), CIFAR10),
}


def list_archs() -> list[str]:
    return sorted(OURS) + sorted(torchvision.models.list_models(module=torchvision.models))


def build(arch: str, num_classes: int, *, weights: str | None = None, in_channels: int = 3,
          replace_head: bool = False, mean=None, std=None) -> Normalized:
    """The network `arch` for `num_classes` classes, with weights from a local file if given."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if arch in OURS:
        make, (d_mean, d_std) = OURS[arch]
        net = make(num_classes, in_channels)
    elif arch in torchvision.models.list_models(module=torchvision.models):
        if in_channels != 3:
            raise ValueError(f"--arch {arch} takes 3-channel images; this data has {in_channels} "
                             "(use small_cnn for MNIST)")
        net = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
        d_mean, d_std = IMAGENET
    else:
        close = difflib.get_close_matches(arch, list_archs(), n=3)
        raise ValueError(f"--arch {arch!r} is unknown" + (f"; did you mean {', '.join(close)}?" if close
                                                           else "; see `aft-fast info --archs`"))
    if mean is None:
        mean, std = (d_mean * in_channels if len(d_mean) == 1 else d_mean), \
                    (d_std * in_channels if len(d_std) == 1 else d_std)
        if len(mean) != in_channels:
            mean, std = (sum(mean) / len(mean),) * in_channels, (sum(std) / len(std),) * in_channels
    if weights:
        load_weights(net, weights, replace_head=replace_head)
    return Normalized(net, mean, std)


def unwrap(model: nn.Module) -> nn.Module:
    """The Normalized model inside DDP / torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model
