"""One checkpoint file holds everything needed to use the model or to resume its run exactly:

    {"format": "aft_fast.checkpoint/1", "arch", "num_classes", "in_channels", "input_size",
     "mean", "std", "model" (state_dict of the plain network), "method", "config", "epoch",
     "optimizer", "scaler", "schedule", "rng", "metrics", "best", "method_state", "progress",
     "ema"}

"epoch" is the last finished epoch (-1 before the first). "best" (which epoch/metric best.pt
holds), "method_state" (what a method carries between batches, e.g. Free AT's persistent
perturbation) and "progress" (the next batch to run: "epoch", "batch", that epoch's partial
"sums", the finished epochs' metrics "history", the "nonfinite" record and the co-"guard"'s state;
see `aft_fast.train.state`) make `--resume` exact for every method, also mid-epoch. "ema" (None
without `--ema`) is the weight average (`train.ema`: its "model", "decay" and "updates"); it is
what `checkpoint_weights` gives every reader (load_checkpoint, eval, export, --weights, RiFT,
compare) unless the raw weights are asked for. A copy robustify writes with re-estimated BatchNorm
statistics also has "batchnorm_reestimated" (how; `robustify.batchnorm`).

Written atomically (temporary file + rename): a killed run leaves the previous checkpoint intact.
"""
from __future__ import annotations

import hashlib
import random

import numpy as np
import torch
import torch.nn as nn

from aft_fast.io import save_torch
from aft_fast.models import rebuild, unwrap
from aft_fast.models.weights import (CHECKPOINT_FORMAT, check_finite, checkpoint_weights,
                                     read_checkpoint)


def rng_state() -> dict:
    """Every RNG a run draws from, in types `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` captured (CUDA only when a GPU is visible)."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def model_meta(model: nn.Module, arch: str, num_classes: int, input_size: int) -> dict:
    """The keys that rebuild the model: architecture, classes, normalisation, input size."""
    net = unwrap(model)
    return {"format": CHECKPOINT_FORMAT, "arch": arch, "num_classes": num_classes,
            "in_channels": int(net.mean.shape[1]), "input_size": input_size,
            "mean": net.mean.flatten().tolist(), "std": net.std.flatten().tolist()}


def save_checkpoint(path, *, model, arch, num_classes, input_size, method, config, epoch,
                    optimizer=None, scaler=None, schedule=None, metrics=None, best=None,
                    method_state=None, progress=None, ema=None):
    """Write one checkpoint file atomically (see the module docstring for its keys)."""
    ckpt = model_meta(model, arch, num_classes, input_size)
    ckpt.update(model={k: v.detach().cpu() for k, v in unwrap(model).model.state_dict().items()},
                method=method, config=config, epoch=epoch,
                optimizer=optimizer.state_dict() if optimizer is not None else None,
                scaler=scaler.state_dict() if scaler is not None else None,
                schedule=schedule.state_dict() if schedule is not None else None,
                rng=rng_state(), metrics=metrics or {}, best=best, method_state=method_state or {},
                progress=progress, ema=ema)
    return save_torch(ckpt, path)


# The keys of the docstring that say where training was, not what the model computes ("model",
# the weights, is hashed tensor by tensor).
TRAINING_STATE = ("model", "method", "config", "epoch", "optimizer", "scaler", "schedule", "rng",
                  "metrics", "best", "method_state", "progress", "ema")


def weights_digest(ckpt: dict) -> str:
    """SHA-256 of what the model computes: the weights it is evaluated with (`checkpoint_weights`)
    and the keys that rebuild it (architecture, classes, normalisation, input size), not the
    training state the file also holds."""
    h = hashlib.sha256(repr(sorted((k, v) for k, v in ckpt.items()
                                   if k not in TRAINING_STATE)).encode())
    weights = checkpoint_weights(ckpt)
    for name in sorted(weights):
        t = weights[name].contiguous()
        h.update(f"{name} {t.dtype} {tuple(t.shape)}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def trained_adversarially(ckpt: dict) -> bool | None:
    """Whether the run that wrote `ckpt` trained on perturbed inputs (its method's `adversarial`,
    recorded in config.resolved); None for a checkpoint written before runs recorded it."""
    return ((ckpt.get("config") or {}).get("resolved") or {}).get("adversarial")


def data_settings(ckpt: dict, keys=("class_map", "augment", "train_images")) -> dict:
    """How the run read its data (class map, augmentation, training subset), from its recorded
    config, so later steps (RiFT, evaluation) read the same data the same way."""
    config = ckpt.get("config") or {}
    return {k: config[k] for k in keys if config.get(k) is not None}


def load_checkpoint(path, device="cpu", *, trust_code: bool = False,
                    raw: bool = False) -> nn.Module:
    """The model in `path`, in eval mode, taking [0, 1] images: with the run's weight average
    when it kept one (`--ema`), its trained weights with `raw=True`. A model built by an import
    path the file names is imported only with `trust_code=True` (`models.rebuild`)."""
    ckpt = read_checkpoint(path)
    weights = checkpoint_weights(ckpt, raw)
    check_finite(weights, path, "checkpoint")
    model = rebuild(ckpt, trust_code=trust_code)
    model.model.load_state_dict(weights)
    return model.to(device).eval()


def export_torchvision(path, out, *, raw: bool = False) -> str:
    """Write the plain network's state_dict (loadable by torchvision's `model.load_state_dict`):
    the weight average when the run kept one, the trained weights with `raw=True`."""
    save_torch(checkpoint_weights(read_checkpoint(path), raw), out)
    return str(out)
