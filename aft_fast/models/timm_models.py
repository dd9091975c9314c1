"""timm models by name (an optional dependency: `pip install 'aft_fast[timm]'`). Built with
`pretrained=False` always: weights come only from a local file (`--weights`), never the Hub.
`timm/NAME` picks timm where torchvision has the same name (resnet50); a plain NAME that only
timm has works too. A pretrained tag (`resnet18.a1_in1k`) picks that tag's normalisation."""
from __future__ import annotations

import importlib.util

import torch.nn as nn

from aft_fast.errors import OptionError

PREFIX = "timm/"
INSTALL = "pip install 'aft_fast[timm]' (or pip install timm)"


def installed() -> bool:
    return importlib.util.find_spec("timm") is not None


def _timm():
    if not installed():
        raise OptionError("arch", f"timm models need the timm package: {INSTALL}")
    import timm

    return timm


def names() -> list[str]:
    """Every architecture timm can build (none when timm is not installed)."""
    return sorted(_timm().list_models()) if installed() else []


def has(name: str) -> bool:
    return installed() and _timm().is_model(name)


def make(name: str, num_classes: int, in_channels: int) -> nn.Module:
    timm = _timm()
    if not timm.is_model(name):
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise OptionError("arch", f"timm has no model {name!r}{hint} (`aft-fast models timm` "
                          "lists them)")
    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels)
