"""The per-epoch evaluation and its budget.

By default each epoch measures, of `val` and of the fixed `train_eval` subset each, at most
`policy.EVAL_IMAGES` images and `policy.EVAL_TRAIN_SHARE` of the training split (at least
`policy.EVAL_MIN_IMAGES`), with PGD-`policy.EVAL_STEPS` for adversarial methods and clean
accuracy only for natural runs (whose PGD accuracy is ~0 and costs many times their training):
about a tenth of a training epoch or less (an image of PGD-10 evaluation costs about what an
image of PGD-10 training does). `--eval-images N` sets the cap. `--eval-steps N` asks for PGD-N for any method, `--eval-steps 0` for
clean accuracy only, `--eval-full` for the whole splits with PGD-`policy.EVAL_FULL_STEPS`. `--test-each-epoch` also
measures the test split the same way (the held-out curves of the AFT paper's Figure 1), from
saved and restored random states, so that the training is the same with or without it.
The run's log states the budget; the final model is evaluated in full by `aft-fast eval`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from aft_fast.attacks import AttackConfig
from aft_fast.evaluate import accuracy
from aft_fast.train.checkpoint import rng_state, set_rng_state
from aft_fast.policy import (EVAL_FULL_STEPS, EVAL_IMAGES, EVAL_MIN_IMAGES, EVAL_STEPS,
                             EVAL_TRAIN_SHARE, default_alpha)


@dataclass(frozen=True)
class EvalBudget:
    attack: AttackConfig | None  # None: clean accuracy only
    images: int | None  # at most this many images per split (all ranks together); None: all
    max_batches: int | None = None  # a cap in batches (--eval-max-batches), on top of `images`
    world_size: int = 1  # the ranks share the images
    test: bool = False  # also the test split (reported only: best.pt is chosen on val)

    def batches(self, loader) -> int | None:
        """The batches of `loader` (this rank's shard) that the budget allows."""
        caps = [self.max_batches]
        if self.images is not None:
            per_rank = math.ceil(self.images / self.world_size)
            caps.append(math.ceil(per_rank / getattr(loader, "batch_size", 1)))
        caps = [c for c in caps if c is not None]
        return min(caps) if caps else None

    def describe(self) -> str:
        size = "whole splits" if self.images is None else f"at most {self.images} images each"
        size += "" if self.max_batches is None else f", at most {self.max_batches} batches"
        if self.attack is None:
            how = "clean accuracy only"
        else:
            a = self.attack
            how = f"clean + PGD-{a.steps} (eps {a.eps:.4g}, alpha {a.alpha:.4g})"
        hint = "" if self.images is None else " (--eval-full: the whole splits)"
        splits = "val, train_eval and test (reported only)" if self.test else "val and train_eval"
        return f"per-epoch evaluation of {splits}: {size}; {how}{hint}"


def eval_budget(*, adversarial: bool, eps: float, steps: int | None, full: bool, images: int | None,
                train_size: int | None = None, max_batches: int | None = None,
                world_size: int = 1, test: bool = False) -> EvalBudget:
    """The budget the options ask for (see the module docstring)."""
    if steps is None:
        steps = EVAL_FULL_STEPS if full else (EVAL_STEPS if adversarial else 0)
    attack = AttackConfig(eps, default_alpha(eps, steps), steps) if steps > 0 and eps > 0 else None
    if images is None:
        share = int(EVAL_TRAIN_SHARE * train_size) if train_size else EVAL_IMAGES
        images = min(EVAL_IMAGES, max(EVAL_MIN_IMAGES, share))
    return EvalBudget(attack, None if full else images, max_batches, world_size, test)


def evaluate_epoch(model, loaders, budget: EvalBudget, reduce=None, stop=None, *,
                   train_eval: bool = True) -> dict:
    """Clean and robust accuracy on val (and train_eval) within `budget`: a metrics row's part.
    `stop(i)`: asked before each batch; true interrupts it (`aft_fast.evaluate.Interrupted`)."""
    kind = "none" if budget.attack is None else "pgd"

    def measure(loader):
        return accuracy(model, loader, attack=kind, cfg=budget.attack,
                        max_batches=budget.batches(loader), reduce=reduce, stop=stop)

    val = measure(loaders.val)
    row = {"val_clean_acc": val["clean_acc"], "val_robust_acc": val["robust_acc"],
           "eval_seconds": val["seconds"]}
    if train_eval:
        train = measure(loaders.train_eval)
        row = {"train_clean_acc": train["clean_acc"], "train_robust_acc": train["robust_acc"],
               **row, "eval_seconds": val["seconds"] + train["seconds"]}
    if budget.test:  # PGD's random starts draw from the RNGs: put them back, training goes on alike
        before = rng_state()
        try:
            test = measure(loaders.test)
        finally:
            set_rng_state(before)
        row.update(test_clean_acc=test["clean_acc"], test_robust_acc=test["robust_acc"],
                   eval_seconds=row["eval_seconds"] + test["seconds"])
    return row
