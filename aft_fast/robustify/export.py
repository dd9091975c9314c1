"""The robust model as files other tools load, in OUT/model/:

    model.safetensors   the plain network's state_dict (torchvision-style keys; expects
                        normalised inputs), with arch, classes, mean/std, ε in its metadata
    model.pt            the same state_dict for torch.load(weights_only=True)
    model.onnx          the whole model (normalisation inside: [0, 1] images in, logits out),
                        where torch.onnx can trace the architecture; checked by running it with
                        onnxruntime against the checkpoint (max |difference| recorded)
    MODEL_CARD.md       written from report.json by `card.model_card`
"""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import torch

from aft_fast.io import atomic_write
from aft_fast.models.weights import read_checkpoint
from aft_fast.train.checkpoint import export_torchvision, load_checkpoint

ONNX_OPSET = 17
ONNX_ATOL = 1e-4  # onnxruntime vs PyTorch, fp32 logits


def metadata(ckpt: dict, eps: float) -> dict[str, str]:
    """What a reader needs to rebuild and feed the network (safetensors metadata is str → str)."""
    return {"format": "aft_fast.robust_state_dict/1", "arch": str(ckpt["arch"]),
            "num_classes": str(ckpt["num_classes"]), "in_channels": str(ckpt["in_channels"]),
            "input_size": str(ckpt["input_size"]), "mean": json.dumps(ckpt["mean"]),
            "std": json.dumps(ckpt["std"]), "eps": repr(float(eps)), "norm": "Linf",
            "inputs": "images in [0, 1], normalised (x - mean) / std before the network"}


def write_state_dicts(ckpt_path, out: Path, eps: float) -> dict:
    """model.safetensors and model.pt from the checkpoint's plain network."""
    from safetensors.torch import save

    ckpt = read_checkpoint(ckpt_path)
    # safetensors refuses tensors that share memory (tied weights): each gets its own copy
    state = {k: v.detach().clone().contiguous() for k, v in ckpt["model"].items()}
    meta = metadata(ckpt, eps)
    atomic_write(out / "model.safetensors", lambda f: f.write(save(state, metadata=meta)))
    export_torchvision(ckpt_path, out / "model.pt")
    return {"safetensors": "model.safetensors", "pt": "model.pt", "metadata": meta}


def write_onnx(ckpt_path, out: Path, *, trust_code: bool = True) -> dict:
    """model.onnx (dynamic batch) and its check; {"onnx": None, "why": ...} where it fails."""
    model = load_checkpoint(ckpt_path, trust_code=trust_code)
    ckpt = read_checkpoint(ckpt_path)
    side = ckpt["input_size"] or 32
    x = torch.rand(4, ckpt["in_channels"], side, side, generator=torch.Generator().manual_seed(0))
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():  # the TorchScript exporter: no onnxscript needed
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=ONNX_OPSET,
                              input_names=["images"], output_names=["logits"],
                              dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
    except Exception as exc:  # an architecture torch.onnx cannot trace: say why, keep the rest
        return {"onnx": None, "why": f"torch.onnx.export failed: {str(exc).splitlines()[0]}"}
    atomic_write(out / "model.onnx", lambda f: f.write(buf.getvalue()))
    return {"onnx": "model.onnx", "opset": ONNX_OPSET, **check_onnx(out / "model.onnx", model, x)}


def check_onnx(path, model, x) -> dict:
    """Run the ONNX file with onnxruntime on `x` against `model`'s logits."""
    try:
        import onnxruntime as ort
    except ImportError:
        return {"checked": False, "why": "onnxruntime is not installed (pip install onnxruntime)"}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
    with torch.no_grad():
        want = model(x)
    diff = float((got - want).abs().max())
    return {"checked": True, "max_abs_diff": diff, "atol": ONNX_ATOL, "agrees": diff <= ONNX_ATOL}


def export(ckpt_path, out: Path, eps: float) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    return {**write_state_dicts(ckpt_path, out, eps), **write_onnx(ckpt_path, out)}
