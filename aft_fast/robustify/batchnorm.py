"""BatchNorm statistics re-estimated after the fine-tune: the third handling of a pretrained
BatchNorm network's running statistics that robustify's probes compare (with frozen and
updating).

Frozen, the weights are fine-tuned against the pretrained (clean-image) statistics and keep
them; updating, the statistics follow the adversarial batches but lag the weights by the
momentum (0.1: ~10 steps; EfficientNet's 0.01: ~100, longer than a CPU-sized probe).
Re-estimated, the fine-tune runs frozen and the statistics are then recomputed once, with the
final weights, as a plain average over adversarial examples of training images (the inputs
the fine-tune trained on): the network evaluated neither lags nor keeps the clean statistics.
It is what `torch.optim.swa_utils.update_bn` does after weight averaging, on the training
attack's examples instead of clean images. The examples are made against the model as it was
trained (a copy with its frozen statistics), all before the first statistic moves.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn as nn

from aft_fast.attacks import AttackConfig, pgd
from aft_fast.io import save_torch
from aft_fast.models import unwrap
from aft_fast.models.weights import read_checkpoint
from aft_fast.train.checkpoint import load_checkpoint


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and m.track_running_stats]


@torch.no_grad()
def reestimate(model: nn.Module, loader, cfg: AttackConfig, *, batches: int) -> int:
    """Replace every BatchNorm layer's running mean and variance by their average over the
    adversarial examples (`cfg`, made against `model` as given) of the first `batches` batches
    of `loader`. The model is left in eval mode; returns the images read."""
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    device = next(model.parameters()).device
    attacker = copy.deepcopy(model).eval()  # the statistics the examples are made against
    model.eval()
    saved = [(m, m.momentum) for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: every batch weighs the same
        m.train()
    seen = 0
    try:
        for i, (x, y) in enumerate(loader):
            if i >= batches:
                break
            x, y = x.to(device), y.to(device)
            with torch.enable_grad():
                x_adv = pgd(attacker, x, y, cfg)
            model(x_adv)
            seen += len(y)
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        model.eval()
    return seen


def reestimated_checkpoint(src, dest, loader, cfg: AttackConfig, *, batches: int,
                           device="cpu") -> dict:
    """A copy of checkpoint `src` at `dest` whose evaluated weights carry re-estimated BatchNorm
    statistics (the weight average's, when the run kept one, replaces both). Returns what was
    done (for the report); `dest` is an ordinary checkpoint every reader loads."""
    model = load_checkpoint(src, device, trust_code=True)
    images = reestimate(model, loader, cfg, batches=batches)
    ckpt = read_checkpoint(str(src))
    ckpt["model"] = {k: v.detach().cpu() for k, v in unwrap(model).model.state_dict().items()}
    ckpt["ema"] = None  # the evaluated weights are "model" now
    record = {"from": str(src), "images": images, "batches": min(batches, len(loader)),
              "attack": f"PGD-{cfg.steps}", "eps": cfg.eps}
    ckpt["batchnorm_reestimated"] = record
    save_torch(ckpt, Path(dest))
    return record
