"""The adversarially trained model RiFT starts from: its checkpoint, its ε, its data."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from aft_fast.data import make_loaders
from aft_fast.errors import OptionError
from aft_fast.rift.options import RiftOptions
from aft_fast.train.checkpoint import data_settings, read_checkpoint, trained_adversarially



def open_checkpoint(path: str, option: str = "checkpoint") -> dict:
    """The checkpoint dict; a missing or foreign file is an OptionError naming `option`."""
    try:
        return read_checkpoint(path)
    except (FileNotFoundError, ValueError) as exc:
        raise OptionError(option, str(exc).split(": ", 1)[-1]) from exc


def at_checkpoint(opts: RiftOptions) -> tuple[dict, float]:
    """(checkpoint, ε): ε is `opts.eps` or the one the model was trained at. A model that was
    not adversarially trained is accepted with a warning (RiFT assumes robustness to keep)."""
    ckpt = open_checkpoint(opts.checkpoint)
    method = ckpt.get("method")
    if trained_adversarially(ckpt) is False:  # None: written before runs recorded it
        warnings.warn(f"{opts.checkpoint} was trained with method {method}, not adversarially: "
                      "RiFT keeps robustness that such a model does not have; going on anyway",
                      UserWarning, stacklevel=2)
    eps = opts.eps if opts.eps is not None else (ckpt.get("config") or {}).get("eps")
    if eps is None:
        raise OptionError("eps", f"{opts.checkpoint} does not record the ε it was trained at; "
                                 "give it (e.g. 8/255)")
    return ckpt, float(eps)


def loaders_for(opts: RiftOptions, ckpt: dict, device: torch.device, **kwargs):
    """The data's loaders, checked against the checkpoint's model (channels and classes)."""
    loaders = make_loaders(opts.data, batch_size=opts.batch_size, loader=opts.loader,
                           image_size=opts.image_size or ckpt.get("input_size"), device=device,
                           workers=opts.workers, seed=opts.seed,
                           eval_batch_size=opts.eval_batch_size, **data_settings(ckpt), **kwargs)
    spec = loaders.spec
    if spec.channels != ckpt["in_channels"] or spec.num_classes != ckpt["num_classes"]:
        raise OptionError("data", f"{opts.data} has {spec.channels}-channel images of "
                                  f"{spec.num_classes} classes; the checkpoint's model takes "
                                  f"{ckpt['in_channels']} channels and {ckpt['num_classes']} "
                                  "classes")
    return loaders


def refuse_to_replace(paths: list[Path], overwrite: bool) -> None:
    """A step never replaces its earlier outputs unless asked to."""
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise OptionError("out", f"{', '.join(existing)} already exist(s); pass overwrite to "
                                 "replace them, or another out")
