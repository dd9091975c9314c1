"""The baseline: PGD written the way typical research code writes it.

fp32, NCHW, `loss.backward()` (which also computes and stores every parameter's gradient), and an
unfused sign / add / clamp chain: one kernel and one temporary per operator. This is the ONE file
of the package where the sign/clamp chain is allowed, because it is what the engine is measured
against. It ships inside the package so `aft-fast bench` works from an installed wheel; bench
times it side by side with `aft_fast.attacks.pgd`, and `tests/test_perf.py` checks both give the
same examples in fp32.

Given the same random start (`x_start`, e.g. from `ops.random_init_`) and a model whose forward
does not depend on the batch (eval-mode BatchNorm), the result equals the engine's in fp32.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def plain_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float,
              steps: int, x_start: torch.Tensor | None = None) -> torch.Tensor:
    """l∞ PGD-`steps` from `x_start` (default: a uniform random point in the ε-ball)."""
    model.eval()
    if x_start is None:
        x_adv = x + torch.empty_like(x).uniform_(-eps, eps)
        x_adv = torch.clamp(x_adv, 0, 1)
    else:
        x_adv = x_start.clone()
    for _ in range(steps):
        x_adv = x_adv.detach()
        x_adv.requires_grad = True
        model.zero_grad()
        loss = F.cross_entropy(model(x_adv), y, reduction="sum")
        loss.backward()  # parameter gradients too: what research code pays for
        x_adv = x_adv.detach() + alpha * x_adv.grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps)
        x_adv = torch.clamp(x_adv, 0, 1)
    return x_adv.detach()
