"""Each method's canonical recipe, and the budget rule that makes the rows comparable.

Budget rule (one number, `epochs` = E, applied to every row):
- from scratch, every method sees the training split E times: Natural, PGD AT and Fast AT run
  E epochs; Free AT runs E / m epochs replaying each batch m times (Shafahi et al.), rounded to
  the nearest integer (halves up, at least 1) when m does not divide E; the cost column counts
  the work actually done, so a rounding shows there;
- AFT fine-tunes the Natural model for A epochs, by default round(E / 8) (at least 1): the
  paper's claim is AFT at 1/8-1/10 of PGD AT's cost. Its natural pretraining is the Natural row,
  reported separately, never folded into AFT's cost;
- RiFT fine-tunes one module of the PGD AT model on clean data for A epochs (its MRC and α
  search run on small subsets).

Recipes, from each paper and its reference code (two families: the small CNN on 28×28 grayscale
follows the MNIST code of each reference, which uses Adam; other networks follow the CIFAR code):
- PGD AT (Madry et al. 2018; MadryLab/robustness): PGD-k, α = 2.5ε/k, random start, attack with
  BatchNorm in eval mode. Adam (MNIST) / SGD 0.1, momentum 0.9, wd 5e-4 (CIFAR), step decay. An ε
  warm-up over the first E/4 epochs (what practitioners add: PGD AT from scratch at a small
  budget otherwise stalls at a constant prediction, as our mnist5k ε = 0.3 run did).
- Free AT (Shafahi et al. 2019): m replays (4 for the small CNN, 8 on CIFAR as in the paper),
  step ε, perturbation kept across batches, BatchNorm in train mode (the perturbation comes from
  the training forward itself).
- Fast AT (Wong et al. 2020; locuslab/fast_adversarial): FGSM from a uniform random start,
  α = 1.25ε, one cyclic LR (peak at 2/5 of the run: Adam 5e-3 for MNIST, SGD 0.2 for CIFAR),
  examples made in train mode (its code calls model.train() before the attack), early stopping
  when the PGD accuracy of a held-out batch collapses (the co-guard).
- AFT (Jeddi et al. 2020): PGD-k fine-tuning of the Natural model, Adam 1e-3, the slow start,
  fast decay schedule, attack in eval mode.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from aft_fast.policy import METHOD_NAMES
from aft_fast.train.options import TrainOptions

# What Fashion-MNIST-sized small-CNN runs use (Adam: Madry's and Wong's MNIST code).
SMALL_FAMILY = {
    "natural": dict(optimizer="sgd", lr=0.03, schedule="multistep"),
    "pgd-at": dict(optimizer="adam", lr=1e-3, schedule="multistep"),
    "free-at": dict(optimizer="adam", lr=1e-3, schedule="multistep"),
    "fast-at": dict(optimizer="adam", lr=5e-3, schedule="cyclic"),
    "aft": dict(optimizer="adam", lr=1e-3, schedule="slow-start-fast-decay"),
}
CIFAR_FAMILY = {
    "natural": dict(optimizer="sgd", lr=0.1, schedule="multistep", weight_decay=5e-4),
    "pgd-at": dict(optimizer="sgd", lr=0.1, schedule="multistep", weight_decay=5e-4),
    "free-at": dict(optimizer="sgd", lr=0.1, schedule="multistep", weight_decay=5e-4),
    "fast-at": dict(optimizer="sgd", lr=0.2, schedule="cyclic", weight_decay=5e-4),
    "aft": dict(optimizer="adam", lr=1e-3, schedule="slow-start-fast-decay"),
}
BN_MODE = {"natural": "eval", "pgd-at": "eval", "free-at": "train", "fast-at": "train",
           "aft": "eval"}
SOURCES = {
    "natural": "standard training (the paper's pretraining: SGD, momentum 0.9, step decay)",
    "pgd-at": "Madry et al. 2018; MadryLab/robustness (attack in eval mode) + ε warm-up",
    "free-at": "Shafahi et al. 2019 (m replays, epochs / m, step ε)",
    "fast-at": "Wong et al. 2020; locuslab/fast_adversarial (FGSM-RS α=1.25ε, cyclic LR, "
               "early stop on PGD accuracy)",
    "aft": "Jeddi et al. 2020 (Adam, slow start fast decay, from the Natural model)",
    "rift": "Zhu et al. 2023 (MRC, clean fine-tuning of one module, interpolation)",
}
LABELS = {"natural": "Natural", "pgd-at": "PGD AT", "free-at": "Free AT", "fast-at": "Fast AT",
          "aft": "AFT", "rift": "RiFT"}
ALL_METHODS = (*METHOD_NAMES, "rift")  # the training methods, and RiFT on top of PGD AT
AFT_COST_FRACTION = 8  # the paper: AFT at 1/8-1/10 of PGD AT's cost


@dataclass(frozen=True)
class Recipe:
    key: str  # run folder, JSON key, method name (rift: not a training method)
    label: str
    parent: str | None  # the row whose model it starts from
    epochs: int
    train: dict = field(default_factory=dict)  # TrainOptions fields (empty for rift)
    steps: int = 0  # attack steps per weight update (cost)
    replays: int = 1  # Free AT's m (cost)
    source: str = ""


def _round_half_up(x: float) -> int:
    return max(1, math.floor(x + 0.5))


def budget(epochs: int, replays: int, aft_epochs: int | None) -> dict:
    """The epochs of every row under the budget rule (see the module docstring)."""
    return {"natural": epochs, "pgd-at": epochs, "fast-at": epochs,
            "free-at": _round_half_up(epochs / replays),
            "aft": aft_epochs or _round_half_up(epochs / AFT_COST_FRACTION),
            "rift": aft_epochs or _round_half_up(epochs / AFT_COST_FRACTION)}


def plan(*, arch: str, eps: float, epochs: int, train_steps: int, replays: int | None,
         aft_epochs: int | None, methods=ALL_METHODS, warmup_fraction: float = 0.25) -> list[Recipe]:
    """The recipes of `methods` in an order where every parent comes first."""
    small = arch == "small_cnn"
    family = SMALL_FAMILY if small else CIFAR_FAMILY
    m = replays or (4 if small else 8)
    ep = budget(epochs, m, aft_epochs)
    has_warmup = "eps_warmup_epochs" in TrainOptions.names()
    out = []
    for key in ALL_METHODS:
        if key not in methods:
            continue
        if key == "rift":
            out.append(Recipe("rift", LABELS[key], "pgd-at", ep[key], source=SOURCES[key]))
            continue
        train = dict(family[key], method=key, epochs=ep[key], eps=eps, bn_mode=BN_MODE[key])
        steps = 0
        if key in ("pgd-at", "aft"):
            steps = train["steps"] = train_steps  # α: the method's default 2.5ε/k
        if key == "pgd-at" and has_warmup and warmup_fraction > 0:
            train["eps_warmup_epochs"] = warmup_fraction * ep[key]
        if key == "free-at":
            train["replays"] = m
        if key == "fast-at":
            train["co_guard"] = True  # α: the method's default 1.25ε
        out.append(Recipe(key, LABELS[key] + (f" (m={m})" if key == "free-at" else ""),
                          "natural" if key == "aft" else None, ep[key], train, steps,
                          m if key == "free-at" else 1, SOURCES[key]))
    keys = {r.key for r in out}
    for r in out:
        if r.parent and r.parent not in keys:
            raise ValueError(f"{r.key} starts from the {r.parent} model: include {r.parent} in "
                             "the methods")
    return out
