"""Natural training: clean images, cross-entropy. The AFT paper's pretraining (SGD, momentum 0.9,
weight decay 5e-4, step decay) and every comparison's unprotected baseline."""
from __future__ import annotations

from aft_fast.methods.base import Method


class Natural(Method):
    name = "natural"
    label = "Natural"
    reference = "standard training (the AFT paper's pretraining: SGD, momentum 0.9, step decay)"
    adversarial = False
    separate_attack = False
    recipes = {"small": dict(optimizer="sgd", lr=0.03, schedule="multistep"),
               "cifar": dict(optimizer="sgd", lr=0.1, schedule="multistep", weight_decay=5e-4)}
