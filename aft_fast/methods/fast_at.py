"""Fast AT (Wong et al. 2020, "Fast is better than free: Revisiting adversarial training"; code:
locuslab/fast_adversarial): FGSM from a uniform random start with α = 1.25ε, one cyclic LR.

Examples are made in train mode (its code calls model.train() before the attack). Its own option
`co_guard`: the early stop of its code against catastrophic overfitting (PGD-5 on each epoch's
first training batch; a drop of more than 0.2 stops the run on the previous epoch's weights).
Recipe: Adam 5e-3 (its MNIST code) / SGD 0.2, momentum 0.9, wd 5e-4 (CIFAR), cyclic LR peaking at
2/5 of the run. Cost: 1 FGSM step + 1 update per image per epoch.
"""
from __future__ import annotations

from aft_fast.attacks import fgsm_rs
from aft_fast.methods.base import Budget, Method, MethodOption


class FastAT(Method):
    name = "fast-at"
    label = "Fast AT"
    reference = ("Wong et al. 2020; locuslab/fast_adversarial (FGSM-RS α=1.25ε, cyclic LR, "
                 "early stop on PGD accuracy)")
    schedule, lr = "cyclic", 0.2
    bn_mode = "train"  # fast_adversarial calls model.train() before making its examples
    fixed_attack_steps, alpha_per_eps = 1, 1.25
    options = (MethodOption("co_guard", bool, False,
                            "Fast AT: after each epoch PGD-5 on its first training batch; a drop "
                            "of more than 0.2 below the last epoch's stops the run on that "
                            "epoch's weights (fast_adversarial)."),)
    recipes = {"small": dict(optimizer="adam", lr=5e-3, schedule="cyclic"),
               "cifar": dict(optimizer="sgd", lr=0.2, schedule="cyclic", weight_decay=5e-4)}
    imagenet_epochs = 15.0  # Wong et al.'s ImageNet runs

    def perturb(self, trainer, x, y):
        return fgsm_rs(trainer.attack_model, x, y, self.eps, self.alpha, amp=self.amp,
                       bn_mode=self.bn_mode, compile=self.compile)

    def guard(self, seed: int):
        if not self.co_guard:
            return None
        from aft_fast.train.co_guard import COGuard, guard_attack

        return COGuard(guard_attack(self.eps_target), seed=seed)

    @classmethod
    def compare_train(cls, b: Budget) -> dict:
        return dict(super().compare_train(b), co_guard=True)  # α: the default 1.25ε
