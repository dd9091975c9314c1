"""Reading weights from local files: our checkpoints, plain state_dicts, the common wrappers and
prefixes around them, .safetensors. No download, ever; `torch.load(weights_only=True)` only."""
from __future__ import annotations

import os

import torch
import torch.nn as nn

from aft_fast.errors import OptionError

CHECKPOINT_FORMAT = "aft_fast.checkpoint/1"
FORMAT_PREFIX = CHECKPOINT_FORMAT.rsplit("/", 1)[0] + "/"  # any version of the format
PACKAGED_WEIGHTS = "pretrained"  # --weights pretrained: the file a packaged example ships
HEAD_PREFIXES = ("fc.", "classifier.", "head.", "heads.")
# Dicts that hold a state_dict (training scripts, timm, Lightning-style checkpoints).
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")
# What DDP (module.) and torch.compile (_orig_mod.) put in front of every key, in any nesting.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
SHOW = 5  # mismatching keys named in an error


def read_checkpoint(path, option: str = "checkpoint") -> dict:
    """The checkpoint dict in `path` (on CPU); an OptionError naming `option` for a missing,
    torn, foreign or newer-format file."""
    if not os.path.isfile(path):
        raise OptionError(option, f"{path}: no such file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torn or not a torch file: say which file, not a pickle trace
        raise OptionError(option, f"{path} cannot be read as a checkpoint ({exc})") from None
    kind = ckpt.get("format", "") if isinstance(ckpt, dict) else ""
    if isinstance(kind, str) and kind.startswith(FORMAT_PREFIX) and kind != CHECKPOINT_FORMAT:
        raise OptionError(option, f"{path} has format {kind!r}, this aft_fast reads "
                          f"{CHECKPOINT_FORMAT!r}: upgrade aft_fast to load it")
    if kind != CHECKPOINT_FORMAT:
        raise OptionError(option, f"{path}: not an aft_fast checkpoint (for a plain state_dict "
                          "use --weights with --arch)")
    return ckpt


def checkpoint_weights(ckpt: dict, raw: bool = False) -> dict:
    """The weights of an aft_fast checkpoint that are evaluated and used: the weight average
    ("ema", `train --ema`) when the run kept one, else (or with `raw=True`) the trained weights
    ("model"). Every reader of a checkpoint's weights goes through here."""
    average = None if raw else ckpt.get("ema")
    return average["model"] if average else ckpt["model"]


def _load(path: str):
    if path.endswith(".safetensors"):
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise OptionError("weights", f"{path}: reading .safetensors needs the safetensors "
                              "package (pip install safetensors)") from None
        return load_file(path, device="cpu")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # weights_only refuses pickled objects (an argparse Namespace in old training scripts'
        # checkpoints): arbitrary code could run on load, so say how to convert instead.
        raise OptionError("weights", f"{path}: not a readable torch file for "
                          f"torch.load(weights_only=True) ({str(exc).splitlines()[0]}); if the "
                          "file is yours, re-save just its state_dict with "
                          "torch.save(state_dict, path)") from exc


def strip_wrapper_prefixes(key: str) -> str:
    while key.startswith(WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The model weights in `path`: an aft_fast checkpoint's (`checkpoint_weights`: its weight
    average if it has one), a plain state_dict, or one inside `{"state_dict" | "model" |
    "model_state_dict" | "net": ...}`; DDP's `module.` and torch.compile's `_orig_mod.` prefixes
    are stripped."""
    if not os.path.isfile(path):
        raise OptionError("weights", f"{path}: no such file (a local state_dict or aft_fast "
                          "checkpoint is expected; nothing is downloaded)")
    obj = _load(path)
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        obj = checkpoint_weights(obj)
    while isinstance(obj, dict) and not _is_state(obj):
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict) or not obj or not _is_state(obj):
        what = f"a dict of {', '.join(map(str, list(obj)[:SHOW]))}" if isinstance(obj, dict) \
            else f"a {type(obj).__name__}"
        raise OptionError("weights", f"{path}: expected a state_dict of tensors (maybe under "
                          f"{', '.join(WRAPPER_KEYS)}), found {what}")
    return {strip_wrapper_prefixes(k): v for k, v in obj.items()}


def nonfinite_tensors(state: dict) -> list[str]:
    """The names of the floating-point tensors of `state` holding a NaN or an infinity."""
    return [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
            and not bool(torch.isfinite(v).all())]


def check_finite(state: dict, path, option: str) -> None:
    """Refuse weights with NaN/inf: every prediction of such a model is garbage (a NaN logit
    row argmaxes to class 0), so no accuracy of it means anything."""
    bad = nonfinite_tensors(state)
    if bad:
        raise OptionError(option, f"{path}: {len(bad)} weight tensor(s) hold NaN or inf values "
                          f"(first: {_first(bad)}); these weights cannot be used: take an earlier "
                          "checkpoint of the run")


def _is_state(obj: dict) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _common_prefix(state: dict, own: dict) -> dict:
    """Weights saved from a wrapper around the network (aft_fast's own Normalized: `model.` keys
    plus mean/std buffers; a Lightning module's `model.`/`net.`): when no key fits as it is but
    all share one first component, drop it (and the wrapper's own buffers)."""
    if set(state) & set(own):
        return state
    firsts = {k.split(".", 1)[0] for k in state if "." in k}
    if len(firsts) != 1:
        return state
    prefix = firsts.pop() + "."
    inner = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return inner if set(inner) & set(own) else state


def _head_prefix(model: nn.Module) -> tuple[str, ...]:
    """Key prefix(es) of the classifier: what timm's get_classifier() returns, else the last
    nn.Linear (torchvision's fc, classifier.6, heads.head, ...); a model without one (SqueezeNet's
    conv head) falls back to the usual names."""
    get = getattr(model, "get_classifier", None)
    head = get() if callable(get) else None
    names = {id(m): name for name, m in model.named_modules()}
    if isinstance(head, nn.Module) and names.get(id(head)):
        return (names[id(head)] + ".",)
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return (linears[-1] + ".",) if linears else HEAD_PREFIXES


def _first(keys: list[str]) -> str:
    more = f" and {len(keys) - SHOW} more" if len(keys) > SHOW else ""
    return ", ".join(keys[:SHOW]) + more


def load_weights(model: nn.Module, path: str, *, replace_head: bool = False,
                 arch: str | None = None) -> None:
    """Load `path` into the plain network `model`, or say by name which keys do not fit, before
    anything trains. `replace_head=True` loads everything but the classifier, which keeps the
    fresh initialisation `model` was built with (for its own number of classes)."""
    own = model.state_dict()
    state = _common_prefix(read_state_dict(path), own)
    check_finite(state, path, "weights")
    head = _head_prefix(model)
    if replace_head:
        state = {k: v for k, v in state.items() if not k.startswith(head)}
    missing = [k for k in own if k not in state and not (replace_head and k.startswith(head))]
    unexpected = [k for k in state if k not in own]
    arch_name = f"arch {arch}" if arch else "this architecture"
    if missing or unexpected:
        parts = [f"{len(missing)} of the model's keys are not in the file (first: "
                 f"{_first(missing)})" if missing else "",
                 f"{len(unexpected)} keys of the file are not in the model (first: "
                 f"{_first(unexpected)})" if unexpected else ""]
        raise OptionError("weights", f"{path} holds weights of another architecture than "
                          f"{arch_name}: {'; '.join(p for p in parts if p)}; pass the --arch the "
                          "weights were saved from")
    wrong = [k for k, v in state.items() if v.shape != own[k].shape]
    heads = [k for k in wrong if k.startswith(head)]
    if heads and len(heads) == len(wrong):
        k = heads[0]
        raise OptionError("weights", f"{path}: the classifier {k} has shape "
                          f"{tuple(state[k].shape)}, this model needs {tuple(own[k].shape)} (a "
                          "different number of classes); pass --replace-head to re-initialise "
                          f"the classifier for {own[k].shape[0]} classes")
    if wrong:
        shapes = ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                           for k in wrong[:SHOW])
        raise OptionError("weights", f"{path} holds weights of another variant of {arch_name}: "
                          f"{len(wrong)} tensors have other shapes (file vs model, first: "
                          f"{shapes})")
    model.load_state_dict(state, strict=not replace_head)
