"""Training part of a network: one submodule's parameters (`train_only`), and BatchNorm layers
held in eval mode (`freeze_bn_stats`). RiFT fine-tunes one module this way; the rest of the model
stays the function it was."""
from __future__ import annotations

import difflib
import types

import torch.nn as nn

from aft_fast.errors import OptionError


def find_submodule(net: nn.Module, name: str, option: str = "train_only",
                   candidates: list[str] | None = None) -> nn.Module:
    """The submodule `name` of the plain network `net` (names as in its state_dict keys, e.g.
    ``layer4.1.conv2``; ``7`` in an nn.Sequential); an OptionError naming `option` otherwise,
    listing the first `candidates` (default: any submodule)."""
    modules = dict(net.named_modules())
    if not name or name not in modules:
        named = [n for n in modules if n]
        close = difflib.get_close_matches(str(name), named, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        listed, what = (candidates, "candidates") if candidates else (named, "names look like")
        raise OptionError(option, f"the network has no submodule {name!r}; {hint}{what} "
                                  f"{', '.join(listed[:4])}{', ...' if len(listed) > 4 else ''}")
    module = modules[name]
    if not any(True for _ in module.parameters()):
        raise OptionError(option, f"submodule {name!r} ({type(module).__name__}) has no "
                                  "parameters to train")
    return module


def trainable_parameters(model: nn.Module, train_only: str | None) -> list[nn.Parameter]:
    """The parameters the optimizer gets: all of them, or, with `train_only`, those of that
    submodule of `model.model` (the plain network inside Normalized); every other parameter gets
    requires_grad=False, so backward computes no gradient for it (and DDP syncs none)."""
    if train_only is None:
        return list(model.parameters())
    keep = {id(p) for p in find_submodule(model.model, train_only).parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return [p for p in model.parameters() if id(p) in keep]


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


def freeze_batchnorm_stats(model: nn.Module) -> int:
    """Keep every BatchNorm layer in eval mode whatever `model.train()` asks: it normalises with
    its running statistics (the test-time function) and never updates them. Returns how many."""
    count = 0
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train = types.MethodType(_stay_in_eval, m)
            m.train(False)
            count += 1
    return count
