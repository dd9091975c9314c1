"""AFT (Jeddi et al. 2020, "A Simple Fine-tuning Is All You Need: Towards Robust Deep Learning
Via Adversarial Fine-tuning"; no public code, recipe from the paper): PGD-k fine-tuning of a
naturally pretrained model for few (10) epochs with Adam and the slow start, fast decay LR.

In `compare` it fine-tunes the Natural row's model for round(E / 8) epochs (the paper's claim is
1/8-1/10 of PGD AT's cost), and in a budget sweep also for the paper's 10 epochs (row "aft@10");
its pretraining is the Natural row, never folded into its cost.
Cost: k attack steps + 1 update per image per epoch, like PGD AT.
"""
from __future__ import annotations

from aft_fast.methods.pgd_at import PGDAT


class AFT(PGDAT):
    name = "aft"
    label = "AFT"
    reference = "Jeddi et al. 2020 (Adam, slow start fast decay, from the Natural model)"
    parent = "natural"
    needs_weights = True
    optimizer, lr, schedule, epochs = "adam", 1e-3, "slow-start-fast-decay", 10
    recipes = {family: dict(optimizer="adam", lr=1e-3, schedule="slow-start-fast-decay")
               for family in ("small", "cifar")}
    # 10 fine-tuning epochs of a pretrained model; the pretraining is not counted (the point of
    # AFT is that a natural model already exists)
    imagenet_epochs = 10.0
    paper_epochs = 10  # the paper's fine-tuning length: a sweep's "aft@10" row
    compare_warmup = False  # it starts from a trained model: nothing to warm up
    compare_ema = True  # compare: also the row aft+ema (does averaging help a short fine-tuning?)
