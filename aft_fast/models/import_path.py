"""Any `nn.Module` the user has, named by an import path `package.module:factory` (the
entry-point syntax): the factory (a function or a class, `Class.method` works too) is called with
`num_classes` (and `in_channels` / `in_chans`) when its signature takes them."""
from __future__ import annotations

import importlib
import inspect
import os
import sys

import torch.nn as nn

from aft_fast.errors import OptionError


def is_import_path(arch: str) -> bool:
    return ":" in arch


def split(arch: str, option: str = "arch") -> tuple[str, str]:
    module, _, attr = arch.partition(":")
    if not module or not attr or ":" in attr or not all(
            part.isidentifier() for part in module.split(".") + attr.split(".")):
        what = "factory" if option == "arch" else "Class"
        raise OptionError(option, f"{arch!r} is not an import path like package.module:{what} "
                          f"(dotted module, one colon, the {what.lower()}'s name)")
    return module, attr


def import_module(module: str, arch: str, option: str = "arch"):
    """Import `module`, from the current folder too (as `python -m` does; the `aft-fast` script
    alone would not see a models.py next to the user). The folder goes last on sys.path, so it
    never shadows an installed package, and only for this import."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            raise OptionError(option, f"{arch!r}: no module named {exc.name!r} on the Python path "
                              f"or in {cwd}; install the package that holds it, run from the "
                              "folder that holds it, or add that folder to PYTHONPATH") from None
        raise _failed(arch, module, exc, option) from exc  # the module exists, an import not
    except Exception as exc:  # a syntax error, an error raised at import time
        raise _failed(arch, module, exc, option) from exc
    finally:
        if added:
            sys.path.remove(cwd)


def _failed(arch: str, module: str, exc: Exception, option: str) -> OptionError:
    return OptionError(option, f"{arch!r}: importing {module} failed: {type(exc).__name__}: {exc}")


def resolve(path: str, option: str = "arch"):
    """The object an import path names (imports its module: the caller must have asked for
    it): a model factory (`arch`), a method class (`method`)."""
    module, attr = split(path, option)
    obj = import_module(module, path, option)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise OptionError(option, f"{path!r}: {module} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def resolve_factory(arch: str):
    """The callable `arch` names."""
    obj = resolve(arch)
    if not callable(obj):
        attr = split(arch)[1]
        raise OptionError("arch", f"{arch!r}: {attr} is a {type(obj).__name__}, not a function or "
                          "class that returns a torch.nn.Module")
    return obj


def _keywords(factory) -> set[str] | None:
    """The keyword names `factory` takes; None when it takes **kwargs (or has no signature)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def make(arch: str, num_classes: int, in_channels: int) -> nn.Module:
    """Call the factory `arch` names; passes what its signature takes of num_classes and the
    channel count, and checks that a module comes back with as many outputs as classes."""
    factory = resolve_factory(arch)
    names = _keywords(factory)
    kwargs = {}
    if names is None or "num_classes" in names:
        kwargs["num_classes"] = num_classes
    for key in ("in_channels", "in_chans"):
        if names is not None and key in names:
            kwargs[key] = in_channels
    net = factory(**kwargs)
    if not isinstance(net, nn.Module):
        raise OptionError("arch", f"{arch!r} returned a {type(net).__name__}, not a "
                          "torch.nn.Module; the factory must build and return the network")
    if "num_classes" not in kwargs:
        linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
        if linears and linears[-1].out_features != num_classes:
            raise OptionError("arch", f"{arch!r} takes no num_classes and built a classifier "
                              f"with {linears[-1].out_features} outputs; the data has "
                              f"{num_classes} classes: give the factory a num_classes parameter")
    return net
