"""Standard AutoAttack (Croce & Hein 2020) assembled from torchattacks' parts with the reference
settings (`aft_fast.policy.AUTOATTACK_REFERENCE`): APGD-CE (100 iterations), APGD-T (DLR loss, 9 target classes, 100 iterations), FAB-T
(9 target classes, 100 iterations) and Square (5,000 queries), run one after another on the
examples still classified correctly; an example counts as robust only if it survives all four.

`torchattacks.AutoAttack(version="standard")` runs its parts at 10 iterations, a weaker attack
than the reference one, so it is not used. torchattacks' targeted parts default to
`n_classes - 1` targets (999 on ImageNet); the reference uses the 9 highest-scoring other
classes, set here. Inputs are [0, 1] images; the model runs in fp32 in eval mode. Iterations and
queries can be lowered for quick checks (reports must then say so: they are not AutoAttack).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from aft_fast.errors import check, check_at_least, check_pixels
from aft_fast.policy import AUTOATTACK_REFERENCE

PART_NAMES = ("apgd-ce", "apgd-t", "fab-t", "square")
STEPS, QUERIES, TARGETS = (AUTOATTACK_REFERENCE[k] for k in ("steps", "queries", "targets"))


def _torchattacks():
    try:
        import torchattacks
    except ImportError as exc:
        raise ImportError("AutoAttack needs the torchattacks package: "
                          "pip install 'aft_fast[eval]'") from exc
    return torchattacks


def parts(model: nn.Module, eps: float, *, n_classes: int, steps: int = STEPS,
          queries: int = QUERIES, targets: int = TARGETS, seed: int = 0) -> list:
    """The four attacks of standard AutoAttack (l∞), in the reference order."""
    check(n_classes >= 4, "attack", "AutoAttack's DLR loss compares the 4 top logits: it needs "
          f">= 4 classes, got {n_classes}; evaluate with pgd")
    check_at_least("aa_steps", steps, 1)
    check_at_least("aa_queries", queries, 1)
    check_at_least("aa_targets", targets, 1)
    ta = _torchattacks()
    targeted = [
        ta.APGDT(model, norm="Linf", eps=eps, steps=steps, n_classes=n_classes, n_restarts=1,
                 seed=seed),
        ta.FAB(model, norm="Linf", eps=eps, steps=steps, n_classes=n_classes, n_restarts=1,
               multi_targeted=True, seed=seed),
    ]
    for attack in targeted:
        attack.n_target_classes = min(targets, n_classes - 1)
    return [ta.APGD(model, norm="Linf", eps=eps, steps=steps, loss="ce", n_restarts=1, seed=seed),
            *targeted,
            ta.Square(model, norm="Linf", eps=eps, n_queries=queries, n_restarts=1, seed=seed)]


def autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
               n_classes: int | None = None, steps: int = STEPS, queries: int = QUERIES,
               targets: int = TARGETS, seed: int = 0, counts: dict | None = None) -> torch.Tensor:
    """Adversarial examples (fp32, detached): for each input the first successful part's output,
    else the input itself. `counts`, if given, receives how many examples each part fooled."""
    check_pixels("eps", eps)
    was_training = model.training
    model.eval()
    x = x.detach().float()
    # torchattacks reseeds torch's global RNG (manual_seed) inside each part; keep the caller's
    # stream (a training run's data order and random starts) untouched.
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            with torch.no_grad():
                logits = model(x)
                robust = logits.argmax(1) == y
            n_classes = n_classes or logits.shape[1]
            x_adv = x.clone()
            for name, attack in zip(PART_NAMES, parts(model, eps, n_classes=n_classes, steps=steps,
                                                      queries=queries, targets=targets, seed=seed)):
                idx = robust.nonzero().flatten()
                if len(idx) == 0:
                    break
                adv = attack(x[idx], y[idx]).detach()
                with torch.no_grad():
                    fooled = model(adv).argmax(1) != y[idx]
                    # Count only valid examples (FAB searches outside the ball before it projects).
                    dist = (adv - x[idx]).abs().flatten(1).amax(1)
                    fooled &= (dist <= eps + 1e-6) & (adv.flatten(1).amin(1) >= 0) & \
                        (adv.flatten(1).amax(1) <= 1)
                x_adv[idx[fooled]] = adv[fooled]
                robust[idx[fooled]] = False
                if counts is not None:
                    counts[name] = counts.get(name, 0) + int(fooled.sum())
    finally:
        model.train(was_training)
    return x_adv
