"""The co-guard: Fast AT's guard against catastrophic overfitting (Wong et al. 2020).

FGSM training can suddenly lose all PGD robustness while its training accuracy keeps rising.
After each epoch the guard measures PGD accuracy on one held validation batch; when it falls
below half of the best seen so far, it restores the weights of that best epoch and the run stops.
"""
from __future__ import annotations

import torch

from aft_fast.attacks import AttackConfig
from aft_fast.evaluate import accuracy

COLLAPSE_FRACTION = 0.5  # a drop below this share of the best PGD accuracy is a collapse


class COGuard:
    def __init__(self, batch: tuple[torch.Tensor, torch.Tensor], attack: AttackConfig):
        self.batch, self.attack = batch, attack
        self.best_acc: float | None = None
        self.best_weights: dict | None = None

    def check(self, net: torch.nn.Module, row: dict) -> bool:
        """Measure `net` (the plain network's module holding the weights is `net.model`), note
        the result in `row`; True when it collapsed (the best weights are then restored)."""
        acc = accuracy(net, [self.batch], cfg=self.attack)["robust_acc"]
        row["guard_pgd_acc"] = acc
        if self.best_acc is not None and acc < COLLAPSE_FRACTION * self.best_acc:
            net.model.load_state_dict(self.best_weights)
            row["guard"] = f"rolled back: PGD acc {acc:.3f} < half of {self.best_acc:.3f}"
            return True
        if self.best_acc is None or acc >= self.best_acc:
            self.best_acc = acc
            self.best_weights = {k: v.detach().clone() for k, v in net.model.state_dict().items()}
        return False

    def state_dict(self) -> dict:
        weights = None if self.best_weights is None else {
            k: v.cpu() for k, v in self.best_weights.items()}
        return {"best_acc": self.best_acc, "best_weights": weights}

    def load_state_dict(self, state: dict, device) -> None:
        self.best_acc = state.get("best_acc")
        weights = state.get("best_weights")
        self.best_weights = None if weights is None else {k: v.to(device) for k, v in weights.items()}
