"""FGSM with a random start: the attack of Fast AT (Wong et al. 2020, "Fast is better than free")."""
from __future__ import annotations

import torch
import torch.nn as nn

from aft_fast.attacks.pgd import AttackConfig, pgd


def fgsm_rs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, *,
            amp: str | None = None, bn_mode: str = "eval", compile: bool = False,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """One signed-gradient step of size `alpha` from a uniform point of the eps-ball, projected
    back into the ball and [0, 1]. Fast AT takes alpha = 1.25 * eps; the caller chooses."""
    # PGD with one step and a random start is exactly this; one code path, one set of tests.
    return pgd(model, x, y, AttackConfig(eps, alpha, steps=1, amp=amp, bn_mode=bn_mode,
                                          compile=compile),
               generator=generator)
