"""MART (Wang et al. 2020, "Improving Adversarial Robustness Requires Revisiting Misclassified
Examples"; code: YisenWang/MART, mart.py): the boosted cross-entropy on adversarial examples plus
a KL term weighted by how badly the clean example is classified, β = 6.

As in its code: PGD-k on the cross-entropy with BatchNorm in eval mode from a small random start
(0.001·N(0, 1) there; uniform in ±0.001 here, as for TRADES); the update, in train mode, takes

    BCE(p', y) = CE(p', y) − log(1.0001 − p'_ŷ),  ŷ = the most likely wrong class under p'
    loss = BCE + β / B · Σ KL(p ‖ p') · (1 − p_y)

with p = softmax(f(x)), p' = softmax(f(x')). Recipe: SGD 0.01 momentum 0.9 (small CNN, as
TRADES' MNIST code, on which its code is built), SGD 0.01, wd 3.5e-3 on CIFAR (its ResNet-18
script); step decay. Cost: k attack steps + 2 update passes (clean and adversarial), as TRADES.
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from aft_fast.attacks import pgd
from aft_fast.methods.pgd_at import PGDAT
from aft_fast.methods.trades import BETA

START_RADIUS = 0.001


def mart_loss(logits_clean, logits_adv, y, beta: float) -> torch.Tensor:
    p_adv = F.softmax(logits_adv.float(), dim=1)
    p_clean = F.softmax(logits_clean.float(), dim=1)
    top2 = torch.argsort(p_adv, dim=1)[:, -2:]
    wrong = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])  # most likely wrong class
    boosted = F.cross_entropy(logits_adv.float(), y) + F.nll_loss(
        torch.log(1.0001 - p_adv + 1e-12), wrong)
    kl = (p_clean * (torch.log(p_clean + 1e-12) - torch.log(p_adv + 1e-12))).sum(1)
    true_clean = p_clean.gather(1, y[:, None]).squeeze(1)
    return boosted + beta * (kl * (1.0000001 - true_clean)).sum() / len(y)


class MART(PGDAT):
    name = "mart"
    label = "MART"
    reference = "Wang et al. 2020; YisenWang/MART (boosted CE + misclassification-aware KL, β = 6)"
    options = (BETA,)
    recipes = {"small": dict(optimizer="sgd", lr=0.01, schedule="multistep", weight_decay=0.0),
               "cifar": dict(optimizer="sgd", lr=0.01, schedule="multistep",
                             weight_decay=3.5e-3)}
    compare_warmup = False

    def perturb(self, trainer, x, y):
        cfg = replace(self.attack_config(), start_eps=min(START_RADIUS, self.eps))
        return pgd(trainer.attack_model, x, y, cfg)

    def loss(self, model, x_adv, y, x):
        logits_clean, logits_adv = model(x), model(x_adv)
        return mart_loss(logits_clean, logits_adv, y, self.beta), logits_adv

    def passes_per_epoch(self) -> float:
        return self.attack_steps + 2
