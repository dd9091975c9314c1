"""PGD AT (Madry et al. 2018, "Towards Deep Learning Models Resistant to Adversarial Attacks";
code: MadryLab/robustness, madrylab/mnist_challenge): train on PGD-k examples, from scratch.

Recipe: PGD-k from a random start, α = 2.5ε/k, examples made with BatchNorm in eval mode
(robustness' attacker). Adam 1e-3 for the small CNN (the MNIST challenge code), SGD 0.1 with
momentum 0.9 and weight decay 5e-4 otherwise, step decay. In `compare` an ε warm-up over the first
quarter of its epochs (what practitioners add: PGD AT from scratch at a small budget otherwise
stalls at a constant prediction). Cost: k attack steps + 1 update per image per epoch.
`compare` also trains it with a weight average (`pgd-at+ema`, `base.ema_row`).
"""
from __future__ import annotations

from aft_fast.attacks import pgd
from aft_fast.methods.base import Budget, Method


class PGDAT(Method):
    name = "pgd-at"
    label = "PGD AT"
    reference = "Madry et al. 2018; MadryLab/robustness (attack in eval mode) + ε warm-up"
    recipes = {"small": dict(optimizer="adam", lr=1e-3, schedule="multistep"),
               "cifar": dict(optimizer="sgd", lr=0.1, schedule="multistep", weight_decay=5e-4)}
    imagenet_epochs = 90.0  # the standard ImageNet schedule (bench's projection)
    fixed_attack_steps = None  # PGD-k: `steps`
    compare_warmup = True  # compare: ε warm-up over the budget's warm-up fraction of its epochs
    compare_ema = True  # compare: also the row pgd-at+ema (the RobustBench recipes' averaging)

    def perturb(self, trainer, x, y):
        return pgd(trainer.attack_model, x, y, self.attack_config())

    @classmethod
    def compare_train(cls, b: Budget) -> dict:
        train = dict(super().compare_train(b), steps=b.train_steps)  # α: 2.5ε/k
        if cls.compare_warmup and b.warmup_fraction > 0:
            train["eps_warmup_epochs"] = b.warmup_fraction * train["epochs"]
        return train
