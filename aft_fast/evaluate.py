"""Clean and robust accuracy of a model over a loader. Evaluation attacks run in fp32 with the
model in eval mode (AttackConfig's defaults), PGD with restarts keeping each example's worst case,
or standard AutoAttack (`aft_fast.attacks.autoattack`)."""
from __future__ import annotations

import time

import torch
import torch.nn as nn

from aft_fast.attacks import AttackConfig, pgd

ATTACKS = ("pgd", "autoattack", "none")


def parse_eps(value) -> float:
    """A float, or a fraction written as in papers: "8/255"."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError) as exc:
        raise ValueError(f"expected a number or a fraction like 8/255, got {value!r}") from exc


def accuracy(model: nn.Module, loader, *, attack: str = "pgd", cfg: AttackConfig | None = None,
             max_batches: int | None = None, generator: torch.Generator | None = None,
             autoattack_kwargs: dict | None = None, reduce=None) -> dict:
    """{"clean_acc", "robust_acc" (None for attack "none"), "n", "seconds"}.

    `reduce(tensor) -> tensor`, if given, sums counts across processes (DDP)."""
    if attack not in ATTACKS:
        raise ValueError(f"--attack must be one of {', '.join(ATTACKS)}; got {attack!r}")
    if attack == "pgd" and cfg is None:
        raise ValueError("a PGD evaluation needs an AttackConfig")
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    device = next(model.parameters()).device
    counts = torch.zeros(3, dtype=torch.float64, device=device)  # n, clean correct, robust correct
    try:
        for i, (x, y) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            with torch.no_grad():
                clean = model(x).argmax(1) == y
            counts[0] += len(y)
            counts[1] += clean.sum()
            if attack == "pgd":
                x_adv = pgd(model, x, y, cfg, generator=generator)
            elif attack == "autoattack":
                from aft_fast.attacks.autoattack import autoattack
                x_adv = autoattack(model, x, y, **(autoattack_kwargs or {}))
            if attack != "none":
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
