"""θ(α) = α·θ_ft + (1 − α)·θ_AT over the whole state, and the automatic choice of α."""
from __future__ import annotations

import torch

from aft_fast.attacks import AttackConfig
from aft_fast.evaluate import accuracy
from aft_fast.policy import default_alpha


def interpolate_state(at: dict, ft: dict, alpha: float) -> dict:
    """The state at α: floating tensors mixed; integer buffers (BatchNorm's num_batches_tracked)
    rounded, so α = 0 and α = 1 give the two endpoints exactly."""
    if at.keys() != ft.keys():
        missing = sorted(set(at) ^ set(ft))[:5]
        raise ValueError(f"the two models' states differ in keys {missing}: not the same network")
    out = {}
    for k, a in at.items():
        b = ft[k]
        if a.shape != b.shape:
            raise ValueError(f"{k}: shape {tuple(a.shape)} vs {tuple(b.shape)}: not the same network")
        if alpha == 0:
            out[k] = a.clone()
        elif alpha == 1:
            out[k] = b.clone()
        elif a.is_floating_point():
            out[k] = alpha * b + (1 - alpha) * a
        else:
            out[k] = torch.round(alpha * b.double() + (1 - alpha) * a.double()).to(a.dtype)
    return out


def score(model, at: dict, ft: dict, alphas, loader, eps: float, steps: int, seed: int = 0,
          max_batches: int | None = None, progress=None) -> list[dict]:
    """Clean and PGD-`steps` accuracy on `loader` of the model at each α (the same attack seed for
    each, so the curve compares models, not random starts). The model's state is left at the
    last α."""
    cfg = AttackConfig(eps, default_alpha(eps, steps), steps)
    rows = []
    for alpha in alphas:
        model.model.load_state_dict(interpolate_state(at, ft, alpha))
        acc = accuracy(model, loader, cfg=cfg, max_batches=max_batches,
                       generator=torch.Generator().manual_seed(seed))
        rows.append({"alpha": alpha, "clean_acc": acc["clean_acc"],
                     "robust_acc": acc["robust_acc"], "n": acc["n"], "seconds": acc["seconds"]})
        if progress:
            progress(rows[-1])
    return rows


def choose_alpha(rows: list[dict], reference_robust: float, tolerance: float) -> dict:
    """The row with the highest clean accuracy among those whose robust accuracy is at least
    `reference_robust − tolerance`; ties go to the smaller α (closer to the AT model). None when
    no row qualifies."""
    floor = reference_robust - tolerance - 1e-12  # accuracies are ratios of counts
    ok = [r for r in rows if r["robust_acc"] >= floor]
    if not ok:
        return None
    return max(ok, key=lambda r: (r["clean_acc"], -r["alpha"]))
