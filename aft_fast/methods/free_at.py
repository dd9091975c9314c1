"""Free AT (Shafahi et al. 2019, "Adversarial Training for Free!"; code: mahyarnajibi/FreeAdversarialTraining):
each batch is replayed m times; one backward gives the parameter gradient (the weight update) and
the input gradient (the perturbation update, step ε) at once. The perturbation persists across
batches; epochs are divided by m so the total work matches.

BatchNorm in train mode (the perturbation comes from the training forward itself). Recipe: m = 4
for the small CNN, 8 on CIFAR (the paper); E / m epochs in `compare`. Cost: m passes per image per
epoch (each backward gives both gradients).
"""
from __future__ import annotations

import torch

from aft_fast import ops
from aft_fast.methods.base import Budget, Method, MethodOption, round_half_up
from aft_fast.train.update import StepStats, batch_stats

FAMILY_REPLAYS = {"small": 4, "cifar": 8}


class FreeAT(Method):
    name = "free-at"
    label = "Free AT"
    reference = "Shafahi et al. 2019 (m replays, epochs / m, step ε)"
    separate_attack = False  # the perturbation comes from the training backward itself
    bn_mode = "train"  # ... so it is made in the training forward's (train) mode
    fixed_attack_steps, alpha_per_eps = 0, 1.0
    options = (MethodOption("replays", int, 8, "Free AT: replays per batch (m).", low=1),)
    recipes = {"small": dict(optimizer="adam", lr=1e-3, schedule="multistep"),
               "cifar": dict(optimizer="sgd", lr=0.1, schedule="multistep", weight_decay=5e-4)}
    imagenet_epochs = 92.0  # a budget of 92 epochs of replays, i.e. 92/m passes (the paper)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.delta: torch.Tensor | None = None

    def passes_per_epoch(self) -> float:
        return self.replays

    @classmethod
    def budget_epochs(cls, b: Budget) -> int:
        return round_half_up(b.epochs / cls.family_replays(b))

    @staticmethod
    def family_replays(b: Budget) -> int:
        return b.replays or FAMILY_REPLAYS[b.family]

    @classmethod
    def compare_train(cls, b: Budget) -> dict:
        return dict(super().compare_train(b), replays=cls.family_replays(b))

    @classmethod
    def compare_label(cls, b: Budget) -> str:
        return f"{cls.label} (m={cls.family_replays(b)})"

    def state_dict(self):
        return {"delta": None if self.delta is None else self.delta.detach().cpu()}

    def load_state_dict(self, state):
        self.delta = state.get("delta")  # moved to the batch's device by the next step

    def step(self, trainer, x, y, set_lr):
        if self.delta is None or self.delta.shape[1:] != x.shape[1:] or len(self.delta) < len(x):
            self.delta = torch.zeros_like(x, dtype=torch.float32)
        elif self.delta.device != x.device:
            self.delta = self.delta.to(x.device)
        # As in Shafahi et al.'s code: a smaller last batch uses the first rows of delta (a view,
        # so its updates persist) instead of resetting the perturbation.
        delta, x_nat = self.delta[:len(x)], x.float()
        x_in = torch.empty_like(delta)
        ops.delta_step_(delta, torch.zeros_like(x_in), x_nat, self.eps, 0.0, x_adv=x_in)
        total = StepStats(0, 0, 0)
        for r in range(self.replays):
            set_lr(r / self.replays)
            # One backward: the weight update and the perturbation's gradient at once.
            u = trainer.update(x_in, y, input_grad=True)
            with torch.no_grad():
                ops.delta_step_(delta, u.input_grad, x_nat, self.eps, self.alpha, x_adv=x_in)
            s = batch_stats(u, y)
            total = StepStats(total.loss_sum + s.loss_sum, total.correct + s.correct, total.n + s.n)
        return StepStats(total.loss_sum / self.replays, total.correct / self.replays,
                         total.n / self.replays)
