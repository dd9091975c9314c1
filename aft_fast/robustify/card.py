"""MODEL_CARD.md, written from report.json: the threat model, the data, the figures with their
image counts, how to load the files, the command and the commit."""
from __future__ import annotations

import json

from aft_fast.robustify.report import aa_label, pct, pgd_label


def _rounded(values: str) -> list[float]:
    """A mean/std list without float32 noise (0.449, not 0.4490000009536743)."""
    return [round(v, 6) for v in json.loads(values)]


def model_card(report: dict) -> str:
    after, model, data = report["test"]["after"], report["model"], report["data"]
    ex, p = report["exports"], after["protocol"]
    meta = ex["metadata"]
    onnx = (f"- `model.onnx`: the whole model, [0, 1] images in (normalisation inside), logits "
            f"out; onnxruntime agreed with PyTorch to {ex['max_abs_diff']:.1e} (max |difference|)."
            if ex.get("onnx") and ex.get("checked") else
            f"- no ONNX file: {ex.get('why', 'not written')}")
    return "\n".join([
        f"# Model card: {model['arch']}, adversarially fine-tuned (l∞, eps {report['threat']['eps_text']})",
        "",
        "## Threat model", "",
        f"l∞ perturbations of at most eps = {report['threat']['eps_text']} "
        f"({report['threat']['eps']:.6g}) on images in [0, 1]; white-box attacker.", "",
        "## Data", "",
        f"- training: `{data['data']}`, {data['train_images']:,} training images "
        f"({data['val_images']:,} held out from them for every choice; the test split is used only "
        "for the figures below)",
        f"- test: {after['clean_n']:,} images", "",
        "## Robustness (test split)", "",
        "| measure | images | accuracy |", "|---|---:|---:|",
        f"| clean | {after['clean_n']:,} | {pct(after['clean_acc'])} |",
        f"| {pgd_label(p)} | {after['n']:,} | {pct(after['pgd_acc'])} |",
        f"| {aa_label(p)} | {after['autoattack_n']:,} | "
        f"{pct(after['autoattack_acc'])} |", "",
        f"Gradient-masking checks: {'all pass' if after['masking']['all'] else 'NOT all pass'} "
        "(report.md lists each).", "",
        "## Files", "",
        f"- `model.safetensors`, `model.pt`: the plain `{model['arch']}` network's state_dict "
        f"({model['num_classes']} classes); it expects normalised inputs "
        f"(x - mean) / std with mean {_rounded(meta['mean'])}, std {_rounded(meta['std'])} "
        f"(also in the safetensors metadata).",
        onnx, "",
        "```python",
        "from safetensors.torch import load_file",
        "net.load_state_dict(load_file('model.safetensors'))  # net: the same architecture",
        "```", "",
        "## Provenance", "",
        f"- command: `{report['command']}`",
        f"- commit: {report['environment']['commit']}, torch {report['environment']['torch']}, "
        f"{report['environment']['device']}",
        f"- method: {report['training']['method']}, {report['choices']['epochs']} epochs, peak LR "
        f"{report['choices']['lr']:g}, BatchNorm {report['choices']['batchnorm']}", ""])
