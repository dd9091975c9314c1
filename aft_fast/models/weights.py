"""Reading weights from local files: our checkpoints, plain torchvision state_dicts, and the
common wrappers around them. No download, ever."""
from __future__ import annotations

import os

import torch
import torch.nn as nn

CHECKPOINT_FORMAT = "aft_fast.checkpoint/1"
HEAD_PREFIXES = ("fc.", "classifier.", "head.", "heads.")


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The model weights in `path`: an aft_fast checkpoint ("model"), a plain state_dict, or a
    `{"state_dict": ...}` / `{"model": ...}` wrapper; a DDP `module.` prefix is stripped."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--weights {path}: no such file (a local torchvision state_dict "
                                "or an aft_fast checkpoint is expected; nothing is downloaded)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # weights_only refuses pickled objects (an argparse Namespace in old training scripts'
        # checkpoints): arbitrary code could run on load, so say how to convert instead.
        raise ValueError(f"--weights {path}: not a readable torch file for "
                         f"torch.load(weights_only=True) ({str(exc).splitlines()[0]}); if the file "
                         "is yours, re-save just its state_dict with torch.save(state_dict, path)"
                         ) from exc
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        obj = obj["model"]
    elif isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"--weights {path}: expected a state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _head_prefix(model: nn.Module) -> tuple[str, ...]:
    """Key prefix(es) of the classifier: the last nn.Linear (torchvision's fc, classifier.6,
    heads.head, ...); a model without one (SqueezeNet's conv head) falls back to the usual names."""
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return (linears[-1] + ".",) if linears else HEAD_PREFIXES


def load_weights(model: nn.Module, path: str, *, replace_head: bool = False) -> None:
    """Load `path` into the plain network `model`, with errors that say how to fix a mismatch.

    `replace_head=True` loads everything but the classifier, which keeps the fresh
    initialisation `model` was built with (for its own number of classes)."""
    state = read_state_dict(path)
    own = model.state_dict()
    head = _head_prefix(model)
    if replace_head:
        state = {k: v for k, v in state.items() if not k.startswith(head)}
    missing = [k for k in own if k not in state and not (replace_head and k.startswith(head))]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise ValueError(f"--weights {path} does not fit this architecture: missing keys "
                         f"{missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected keys "
                         f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''}; check --arch")
    for k, v in state.items():
        if v.shape != own[k].shape:
            if k.startswith(head):
                raise ValueError(f"--weights {path}: the classifier {k} has shape {tuple(v.shape)}, "
                                 f"this model needs {tuple(own[k].shape)} (a different number of "
                                 "classes); pass --replace-head to re-initialise the classifier "
                                 f"for {own[k].shape[0]} classes")
            raise ValueError(f"--weights {path}: {k} has shape {tuple(v.shape)}, expected "
                             f"{tuple(own[k].shape)}; check --arch")
    model.load_state_dict(state, strict=not replace_head)
