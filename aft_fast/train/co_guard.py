"""The co-guard: Fast AT's early stop against catastrophic overfitting, as in Wong et al.'s
fast_adversarial (train_fgsm.py, --early-stop).

FGSM training can suddenly lose all PGD robustness while its training accuracy keeps rising.
After each epoch the guard attacks that epoch's first training batch with PGD-5 (α = ε/4, one
random start); when its accuracy falls more than 0.2 below the previous epoch's, the guard
restores the previous epoch's weights and the run stops. Two deliberate differences from the
reference: the check runs in eval mode (measuring must not move BatchNorm's running statistics),
and its random start comes from the guard's own generator (training's random stream stays as
it would be without the guard). Under DDP every rank checks its own batch and the counts are
summed, so all ranks stop together.
"""
from __future__ import annotations

import torch

from aft_fast.attacks import AttackConfig
from aft_fast.evaluate import accuracy

COLLAPSE_DROP = 0.2  # the reference's threshold: PGD accuracy lower than the last epoch's by this
STEPS = 5  # the reference's PGD-5 ...
ALPHA_FRACTION = 0.25  # ... with α = 2/255 at ε = 8/255


DESCRIPTION = (f"after each epoch PGD-{STEPS} (alpha = {ALPHA_FRACTION} eps, own generator, eval "
               f"mode) on its first training batch; a drop of more than {COLLAPSE_DROP} below "
               "the previous epoch's stops the run on that epoch's weights")


def guard_attack(eps: float) -> AttackConfig:
    return AttackConfig(eps, ALPHA_FRACTION * eps, STEPS)


class COGuard:
    def __init__(self, attack: AttackConfig, seed: int = 0):
        self.attack, self.seed = attack, seed
        self.batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self.last_acc: float | None = None
        self.last_weights: dict | None = None

    def observe(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Keep the epoch's first training batch (after a mid-epoch resume: the first one seen)."""
        if self.batch is None:
            self.batch = (x.detach().clone(), y.detach().clone())

    def check(self, net: torch.nn.Module, row: dict, epoch: int, reduce=None) -> bool:
        """Measure `net` (the plain network's module holding the weights is `net.model`), note
        the result in `row`; True when it collapsed (the last epoch's weights are then back)."""
        if self.batch is None:
            return False  # an epoch without a step (nothing trained): nothing to check
        g = torch.Generator().manual_seed(self.seed * 100003 + epoch)  # pgd's starts: CPU
        acc = accuracy(net, [self.batch], cfg=self.attack, generator=g, reduce=reduce)["robust_acc"]
        self.batch = None
        row["guard_pgd_acc"] = acc
        if self.last_acc is not None and acc < self.last_acc - COLLAPSE_DROP:
            net.model.load_state_dict(self.last_weights)
            row["guard"] = (f"rolled back to the previous epoch: PGD-{STEPS} acc {acc:.3f} < "
                            f"{self.last_acc:.3f} - {COLLAPSE_DROP}")
            return True
        self.last_acc = acc
        self.last_weights = {k: v.detach().clone() for k, v in net.model.state_dict().items()}
        return False

    def state_dict(self) -> dict:
        weights = None if self.last_weights is None else {
            k: v.cpu() for k, v in self.last_weights.items()}
        return {"last_acc": self.last_acc, "last_weights": weights}

    def load_state_dict(self, state: dict, device) -> None:
        self.last_acc = state.get("last_acc")
        weights = state.get("last_weights")
        self.last_weights = None if weights is None else {
            k: v.to(device) for k, v in weights.items()}
