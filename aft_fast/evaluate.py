"""Clean and robust accuracy of a model over a loader. Evaluation attacks run in fp32 with the
model in eval mode (AttackConfig's defaults): PGD with restarts keeping each example's worst
case, or standard AutoAttack (`aft_fast.attacks.autoattack`). An example counts as robust only
if it is classified correctly both clean and attacked."""
from __future__ import annotations

import contextlib
import time

import torch
import torch.nn as nn

from aft_fast.attacks import AttackConfig, pgd
from aft_fast.attacks.pgd import interruptible
from aft_fast.errors import check, check_at_least, check_choice, check_pixels, parse_pixels
from aft_fast.fast_path import for_evaluation
from aft_fast.policy import (AUTOATTACK_REFERENCE, EVAL_ATTACKS, default_alpha,
                             is_autoattack_reference)


class Interrupted(Exception):
    """`accuracy` stopped before batch `batch` because its `stop` asked it to."""

    def __init__(self, batch: int):
        self.batch = batch
        super().__init__(f"evaluation interrupted before batch {batch}")


def halt(stop, i: int) -> None:
    if stop is not None and stop(i):
        raise Interrupted(i)


def accuracy(model: nn.Module, loader, *, attack: str = "pgd", cfg: AttackConfig | None = None,
             max_batches: int | None = None, generator: torch.Generator | None = None,
             autoattack_kwargs: dict | None = None, reduce=None, stop=None) -> dict:
    """{"clean_acc", "robust_acc" (None for attack "none"), "n", "seconds"} over `loader`.

    `cfg`: the PGD attack (also the eps of AutoAttack when `autoattack_kwargs` has none).
    `reduce(tensor) -> tensor`, if given, sums counts across processes (DDP).
    `stop(i) -> bool`, if given, is asked before batch i and between the attack's steps: true
    raises `Interrupted` (a signal must not wait for the rest of the evaluation)."""
    check_choice("attack", attack, EVAL_ATTACKS)
    check(attack != "pgd" or cfg is not None, "attack", "a PGD evaluation needs an AttackConfig")
    aa_kwargs = dict(autoattack_kwargs or {})
    if attack == "autoattack":
        aa_kwargs.setdefault("eps", cfg.eps if cfg is not None else None)
        check(aa_kwargs["eps"] is not None, "eps",
              "an AutoAttack evaluation needs eps (autoattack_kwargs or cfg)")
        from aft_fast.attacks.autoattack import autoattack
    check_at_least("max_batches", max_batches, 1)
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    device = next(model.parameters()).device
    counts = torch.zeros(3, dtype=torch.float64, device=device)  # n, clean correct, robust correct
    try:
        for i, (x, y) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            halt(stop, i)
            with torch.no_grad():
                clean = model(x).argmax(1) == y
            counts[0] += len(y)
            counts[1] += clean.sum()
            if attack == "none":
                continue
            with interruptible(lambda: halt(stop, i)) if stop else contextlib.nullcontext():
                if attack == "pgd":
                    x_adv = pgd(model, x, y, cfg, generator=generator)
                else:
                    x_adv = autoattack(model, x, y, **aa_kwargs)
            with torch.no_grad():
                counts[2] += ((model(x_adv).argmax(1) == y) & clean).sum()
    finally:
        model.train(was_training)
    if reduce is not None:
        counts = reduce(counts)
    n, clean, robust = counts.tolist()
    return {"n": int(n), "clean_acc": clean / max(n, 1),
            "robust_acc": None if attack == "none" else robust / max(n, 1),
            "seconds": time.perf_counter() - start}


def attack_settings(attack: str = "pgd", *, eps, alpha=None, steps: int = 20, restarts: int = 1,
                    amp: str | None = None, autoattack_steps: int = AUTOATTACK_REFERENCE["steps"],
                    autoattack_queries: int = AUTOATTACK_REFERENCE["queries"],
                    max_batches: int | None = None) -> tuple[AttackConfig, dict]:
    """The checked evaluation attack: its AttackConfig and the settings a report records. Call it
    before loading anything to refuse bad options first (OptionError names the `aft-fast eval`
    option)."""
    eps = parse_pixels(eps)
    alpha = default_alpha(eps, steps) if alpha is None else parse_pixels(alpha, "alpha")
    check_choice("attack", attack, EVAL_ATTACKS)
    check_pixels("eps", eps)
    check_pixels("alpha", alpha)
    check_at_least("steps", steps, 0)
    check_at_least("restarts", restarts, 1)
    check_at_least("aa_steps", autoattack_steps, 1)
    check_at_least("aa_queries", autoattack_queries, 1)
    check_at_least("max_batches", max_batches, 1)
    cfg = AttackConfig(eps, alpha, steps, restarts=restarts, amp=amp)
    if attack == "pgd":
        return cfg, {"eps": eps, "alpha": alpha, "steps": steps, "restarts": restarts,
                     "random_start": True, "amp": amp or "fp32", "bn_mode": "eval"}
    if attack == "autoattack":
        return cfg, {"eps": eps, "version": "standard", "norm": "Linf",
                     "apgd_steps": autoattack_steps, "targets": AUTOATTACK_REFERENCE["targets"],
                     "square_queries": autoattack_queries,
                     "reference_settings": is_autoattack_reference(steps=autoattack_steps,
                                                                   queries=autoattack_queries)}
    return cfg, {}


def evaluate(model: nn.Module, loader, *, attack: str = "pgd", eps: float, alpha: float | None = None,
             steps: int = 20, restarts: int = 1, amp: str | None = None,
             max_batches: int | None = None, device=None, seed: int = 0,
             autoattack_steps: int = AUTOATTACK_REFERENCE["steps"],
             autoattack_queries: int = AUTOATTACK_REFERENCE["queries"], reduce=None) -> dict:
    """Clean and robust accuracy of `model` (takes [0, 1] images) over `loader`.

    PGD: `steps` steps of `alpha` (default 2.5 * eps / steps), `restarts` random starts keeping
    each example's worst case, fp32 unless `amp` is given, model in eval mode, starts seeded
    by `seed`; a convolutional `model` is turned to channels_last in place (the images stay
    NCHW, so the random starts and the results are those of an NCHW model). AutoAttack: the reference settings unless `autoattack_steps`/`_queries` lower
    them. "none": clean accuracy only. Returns clean_acc, robust_acc, n, attack, settings,
    seconds and the environment stamp. `reduce` sums the counts across processes (DDP).
    """
    from aft_fast.runtime import environment

    cfg, settings = attack_settings(attack, eps=eps, alpha=alpha, steps=steps, restarts=restarts,
                                    amp=amp, autoattack_steps=autoattack_steps,
                                    autoattack_queries=autoattack_queries, max_batches=max_batches)
    if device is not None:
        model = model.to(device)
    model = for_evaluation(model)  # fp32 kept; channels_last for convolutional networks
    device = next(model.parameters()).device
    result = accuracy(model, loader, attack=attack, cfg=cfg, max_batches=max_batches,
                      generator=torch.Generator().manual_seed(seed),
                      autoattack_kwargs={"eps": cfg.eps, "steps": autoattack_steps,
                                         "queries": autoattack_queries, "seed": seed},
                      reduce=reduce)
    return {"attack": attack, "clean_acc": result["clean_acc"], "robust_acc": result["robust_acc"],
            "n": result["n"], "settings": settings, "seconds": result["seconds"],
            "environment": environment(device)}
