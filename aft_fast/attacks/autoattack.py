"""Standard AutoAttack (Croce & Hein 2020) assembled from torchattacks' parts with the reference
settings: APGD-CE (100 iterations), APGD-T (DLR loss, 9 target classes, 100 iterations), FAB-T
(9 target classes, 100 iterations) and Square (5,000 queries), run one after another on the
examples still classified correctly; an example counts as robust only if it survives all four.

`torchattacks.AutoAttack(version="standard")` runs its parts at 10 iterations, a weaker attack
than the reference one, so it is not used. Inputs are [0, 1] images, the model runs in fp32 in
eval mode. Iterations and queries can be lowered for quick checks (say so when reporting).
"""
from __future__ import annotations

import torch
import torch.nn as nn


def _torchattacks():
    try:
        import torchattacks
    except ImportError as exc:
        raise ImportError("--attack autoattack needs torchattacks: pip install 'aft_fast[eval]'") from exc
    return torchattacks


def parts(model: nn.Module, eps: float, *, n_classes: int, steps: int = 100, queries: int = 5000,
          seed: int = 0) -> list:
    ta = _torchattacks()
    targets = min(9, n_classes - 1)
    return [
        ta.APGD(model, norm="Linf", eps=eps, steps=steps, loss="ce", n_restarts=1, seed=seed),
        ta.APGDT(model, norm="Linf", eps=eps, steps=steps, n_classes=n_classes, n_restarts=1,
                 seed=seed),
        ta.FAB(model, norm="Linf", eps=eps, steps=steps, n_classes=n_classes, n_restarts=1,
               multi_targeted=True, seed=seed),
        ta.Square(model, norm="Linf", eps=eps, n_queries=queries, n_restarts=1, seed=seed),
    ] if targets > 0 else []


def autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
               n_classes: int | None = None, steps: int = 100, queries: int = 5000,
               seed: int = 0) -> torch.Tensor:
    """Adversarial examples: for each input the first successful part's output, else the input."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            n_classes = n_classes or model(x[:1]).shape[1]
            robust = model(x).argmax(1) == y
        x_adv = x.detach().clone()
        for attack in parts(model, eps, n_classes=n_classes, steps=steps, queries=queries, seed=seed):
            idx = robust.nonzero().flatten()
            if len(idx) == 0:
                break
            adv = attack(x[idx], y[idx]).detach()
            with torch.no_grad():
                fooled = model(adv).argmax(1) != y[idx]
            x_adv[idx[fooled]] = adv[fooled]
            robust[idx[fooled]] = False
    finally:
        model.train(was_training)
    return x_adv
