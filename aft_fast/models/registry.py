"""Models by name. `--arch` is one of:

- ours: the CIFAR/MNIST networks of the adversarial-training literature (`OURS`);
- a packaged pretrained example (`examples.PACKAGED`, e.g. efficientnet_lite0);
- a torchvision classification model (resnet50, ...);
- a timm model (`timm/NAME`, or a plain NAME torchvision does not have; optional dependency);
- an import path `package.module:factory` to any nn.Module.

`build` returns a `Normalized` model that takes [0, 1] images; `rebuild` does it again from a
checkpoint's metadata and imports code a file names only when the caller trusts it."""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

import torch.nn as nn
import torchvision

from aft_fast.errors import OptionError
from aft_fast.models import examples, import_path, timm_models
from aft_fast.models.cifar import PreActResNet18, WideResNet
from aft_fast.models.normalize import CIFAR10, IMAGENET, MNIST, Normalized, per_channel
from aft_fast.models.small import small_cnn
from aft_fast.models.weights import PACKAGED_WEIGHTS, load_weights

# name -> (constructor(num_classes, in_channels), default (mean, std))
OURS = {
    "small_cnn": (lambda n, c: small_cnn(n, c), MNIST),
    "preact_resnet18": (lambda n, c: PreActResNet18(n, c), CIFAR10),
    # WRN-28-10 with dropout 0.3 as in the AFT paper's CIFAR setting; WRN-34-10 as in Madry et al.
    "wrn28_10": (lambda n, c: WideResNet(28, 10, n, dropout=0.3, in_channels=c), CIFAR10),
    "wrn34_10": (lambda n, c: WideResNet(34, 10, n, dropout=0.0, in_channels=c), CIFAR10),
}
SOURCES = ("ours", "examples", "torchvision", "timm", "import")


@dataclass(frozen=True)
class Arch:
    """What an `--arch` value names: where it comes from and how to build it."""
    name: str
    source: str  # one of SOURCES
    make: Callable[[int, int], nn.Module]  # (num_classes, in_channels) -> plain network
    norm: tuple | None  # default (mean, std); None: the network's own (timm cfg) or ImageNet's


def _torchvision_archs() -> list[str]:
    return sorted(torchvision.models.list_models(module=torchvision.models))


def _torchvision(name: str) -> Callable[[int, int], nn.Module]:
    def make(n: int, c: int) -> nn.Module:
        if c != 3:
            raise OptionError("arch", f"{name} takes 3-channel images; this data has {c} (use "
                              "small_cnn for MNIST)")
        return torchvision.models.get_model(name, weights=None, num_classes=n)
    return make


def resolve(arch: str) -> Arch:
    """The architecture `arch` names (imports nothing for an import path until it is built)."""
    if not isinstance(arch, str) or not arch.strip():
        raise OptionError("arch", f"must name an architecture, got {arch!r} (`aft-fast models` "
                          "lists them)")
    if import_path.is_import_path(arch):
        import_path.split(arch)  # a malformed path fails here, before any import
        return Arch(arch, "import", lambda n, c: import_path.make(arch, n, c), None)
    if arch.startswith(timm_models.PREFIX):
        name = arch[len(timm_models.PREFIX):]
        return Arch(arch, "timm", lambda n, c: timm_models.make(name, n, c), None)
    if arch in OURS:
        make, norm = OURS[arch]
        return Arch(arch, "ours", make, norm)
    if arch in examples.PACKAGED:
        return Arch(arch, "examples", lambda n, c: examples.make(arch, n, c),
                    examples.PACKAGED[arch].norm)
    if arch in _torchvision_archs():
        return Arch(arch, "torchvision", _torchvision(arch), IMAGENET)
    if timm_models.has(arch):
        return Arch(arch, "timm", lambda n, c: timm_models.make(arch, n, c), None)
    close = difflib.get_close_matches(arch, list_archs(), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    timm_hint = "" if timm_models.installed() else f", timm/NAME after {timm_models.INSTALL}"
    raise OptionError("arch", f"{arch!r} is unknown{hint} (`aft-fast models` lists the names; "
                      f"also package.module:factory for your own nn.Module{timm_hint})")


def list_archs() -> list[str]:
    """Every plain name `build` accepts: ours, the packaged examples, torchvision's
    classification models, then timm's (when installed; `timm/NAME` for the shared names)."""
    names = sorted(OURS) + sorted(examples.PACKAGED) + _torchvision_archs()
    seen = set(names)
    return names + [n for n in timm_models.names() if n not in seen]


def available() -> dict[str, list[str] | None]:
    """Names by source for `aft-fast models`; timm is None when it is not installed."""
    return {"ours": sorted(OURS), "examples": sorted(examples.PACKAGED),
            "torchvision": _torchvision_archs(),
            "timm": timm_models.names() if timm_models.installed() else None}


def _network_norm(net: nn.Module) -> tuple | None:
    """The normalisation a network declares (timm's pretrained_cfg), if any."""
    cfg = getattr(net, "pretrained_cfg", None)
    if isinstance(cfg, dict) and cfg.get("mean") and cfg.get("std"):
        return tuple(cfg["mean"]), tuple(cfg["std"])
    return None


def build(arch: str, num_classes: int, *, weights: str | None = None, in_channels: int = 3,
          replace_head: bool = False, mean=None, std=None) -> Normalized:
    """The network `arch` for `num_classes` classes inside `Normalized` (takes [0, 1] images).

    `weights`: a local file (aft_fast checkpoint, state_dict with the usual wrappers and
    prefixes, .safetensors; never a download), or "pretrained" for the file a packaged example
    ships. `replace_head`: load everything but the classifier, which stays freshly initialised
    for `num_classes`. `mean`/`std` (one value, or one per channel) override the default
    normalisation: the arch's (ImageNet for torchvision, CIFAR-10 for the CIFAR nets, MNIST for
    small_cnn, 0.5/0.5 for efficientnet_lite0), a timm model's pretrained config, else ImageNet's.
    An import path's module is imported here: the caller asked for it by name.
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be an integer >= 1, got {in_channels!r}")
    spec = resolve(arch)
    # Before the network is built (seconds for big ones): a bad value fails at once.
    for name, value in (("mean", mean), ("std", std)):
        per_channel(name, value, (0.0,), in_channels)
    weights = weights_path(arch, weights)
    net = spec.make(num_classes, in_channels)
    d_mean, d_std = spec.norm or _network_norm(net) or IMAGENET
    mean = per_channel("mean", mean, d_mean, in_channels)
    std = per_channel("std", std, d_std, in_channels)
    if weights:
        load_weights(net, weights, replace_head=replace_head, arch=arch)
    return Normalized(net, mean, std)


def weights_path(arch: str, weights: str | None) -> str | None:
    """The local file `weights` names for `arch`: the file a packaged example ships for
    "pretrained", else the path as given (None stays None)."""
    return examples.weights_path(arch) if weights == PACKAGED_WEIGHTS else weights


def rebuild(meta: dict, *, trust_code: bool = False) -> Normalized:
    """The model a checkpoint's metadata describes (arch, num_classes, in_channels, mean, std),
    without its weights. An import-path arch names code that importing runs: it is imported only
    with `trust_code=True`, as for other libraries' remote code."""
    arch = meta["arch"]
    if resolve(arch).source == "import" and not trust_code:
        raise OptionError("trust_code", f"this checkpoint's model is built by importing {arch!r}, "
                          "code the file names (importing it runs it); if you trust the file and "
                          "that code, pass trust_code=True (--trust-code on the command line)")
    return build(arch, meta["num_classes"], in_channels=meta["in_channels"], mean=meta["mean"],
                 std=meta["std"])


def unwrap(model: nn.Module) -> nn.Module:
    """The Normalized model inside DDP / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None)
        if inner is None:
            inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner
