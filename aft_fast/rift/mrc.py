"""Module robust criticality (MRC, Zhu et al. 2023): how much the robust loss can rise when one
module's weight moves by at most ρ‖w‖_F, all else fixed.

    MRC(m) = max_{‖Δw‖_F ≤ ρ‖w‖_F} L(w + Δw; x_adv, y) − L(w; x_adv, y)

x_adv: PGD examples made once from the AT model (eval mode) on a fixed subset of the training
data, never the test split. The maximum is found by normalised gradient ascent on the mean
cross-entropy over the whole fixed set (full-batch, accumulated over chunks), a step of
2.5·ρ‖w‖/steps (the boundary in a few steps) and a projection onto the ball after every step,
so every iterate is feasible; the largest loss seen is kept. The reference code instead runs
SGD (lr 1) over mini-batches and projects once per epoch, so its iterates leave the ball.

Cost: the values entering the module are computed once (`suffix.Split`); each ascent step runs
only the network from the module on (forward + weight-gradient backward of that part).
"""
from __future__ import annotations

import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from aft_fast.attacks import AttackConfig, pgd
from aft_fast.policy import default_alpha
from aft_fast.rift.suffix import Split, trace

MODULE_TYPES = (nn.Conv2d, nn.Linear)


def weight_modules(net: nn.Module) -> list[str]:
    """The names (in `net`) of every Conv2d and Linear with a weight, in definition order."""
    return [name for name, m in net.named_modules()
            if isinstance(m, MODULE_TYPES) and getattr(m, "weight", None) is not None]


def project_(delta: torch.Tensor, radius: float) -> torch.Tensor:
    """Scale `delta` in place onto the Frobenius ball of `radius` (unchanged if inside)."""
    norm = float(delta.norm())
    if norm > radius:
        delta.mul_(radius / norm)
    return delta


@torch.no_grad()
def adversarial_set(model: nn.Module, loader, eps: float, steps: int, limit: int, seed: int = 0):
    """(x_adv, y) on the first `limit` examples of `loader`: PGD-`steps` at `eps`, eval mode."""
    cfg = AttackConfig(eps, default_alpha(eps, steps), steps)
    gen = torch.Generator().manual_seed(seed)
    xs, ys, n = [], [], 0
    model.eval()
    for x, y in loader:
        x, y = x[:limit - n], y[:limit - n]
        xs.append(pgd(model, x, y, cfg, generator=gen))
        ys.append(y)
        n += len(y)
        if n >= limit:
            break
    return torch.cat(xs), torch.cat(ys)


class _Runner:
    """Robust loss of the whole fixed set with module `name` perturbed: from cached activations
    when the traced graph allows it, else through the whole model."""

    def __init__(self, model, traced, name: str, x, y, chunk: int):
        self.y = [y[i:i + chunk] for i in range(0, len(y), chunk)]
        xs = [x[i:i + chunk] for i in range(0, len(x), chunk)]
        self.net = model
        self.cached = False
        if traced is not None:
            try:
                split = Split(traced, "model." + name)
            except LookupError:  # called functionally (e.g. inside attention): no module call
                split = None
            if split is not None:
                self.net, self.cached = split.suffix, True
                xs = [split.cache(xc) for xc in xs]
        self.inputs = [xc if self.cached else (xc,) for xc in xs]
        self.n = len(y)

    def loss_and_grad(self, weight: torch.Tensor, grad: bool = True):
        total, g = 0.0, torch.zeros_like(weight) if grad else None
        for inputs, y in zip(self.inputs, self.y):
            with torch.set_grad_enabled(grad):
                loss = F.cross_entropy(self.net(*inputs), y, reduction="sum")
            if grad:
                g += torch.autograd.grad(loss, weight)[0]
            total += loss.detach().item()
        return total / self.n, g


def module_criticality(model: nn.Module, name: str, x: torch.Tensor, y: torch.Tensor, *,
                       rho: float = 0.1, steps: int = 10, chunk: int = 256, traced=None) -> dict:
    """MRC of the module `name` of `model.model` on the fixed examples (x, y). `traced`: the
    model's fx graph (`suffix.trace(model)`) to run from the module on; None runs it all. The
    model's weights are restored before returning."""
    start = time.perf_counter()
    weight = model.model.get_submodule(name).weight
    runner = _Runner(model, traced, name, x, y, chunk)
    w0 = weight.detach().clone()
    radius = rho * float(w0.norm())
    step = default_alpha(radius, steps)  # PGD's rule, in weight space
    delta = torch.zeros_like(w0)
    try:
        original, worst = None, None
        for _ in range(steps):
            loss, g = runner.loss_and_grad(weight)
            original = loss if original is None else original
            worst = loss if worst is None else max(worst, loss)
            with torch.no_grad():
                delta.add_(g, alpha=step / max(float(g.norm()), 1e-12))
                project_(delta, radius)
                weight.copy_(w0 + delta)
        last, _ = runner.loss_and_grad(weight, grad=False)
        worst = max(worst, last)
    finally:
        with torch.no_grad():
            weight.copy_(w0)
    return {"module": name, "type": type(model.model.get_submodule(name)).__name__,
            "params": w0.numel(), "mrc": worst - original, "loss_original": original,
            "loss_worst": worst, "radius": radius, "delta_norm": float(delta.norm()),
            "activation_cache": runner.cached, "seconds": time.perf_counter() - start}


def criticality(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, rho: float = 0.1,
                steps: int = 10, chunk: int = 256, modules: list[str] | None = None,
                activation_cache: bool = True, progress=None) -> list[dict]:
    """MRC of every Conv2d/Linear weight of `model.model` (or `modules`), ranked from the least
    critical; `progress(row)` is called after each module."""
    model.eval()
    traced = trace(model) if activation_cache else None
    rows = []
    for name in modules or weight_modules(model.model):
        rows.append(module_criticality(model, name, x, y, rho=rho, steps=steps, chunk=chunk,
                                       traced=traced))
        if progress:
            progress(rows[-1])
    rows.sort(key=lambda r: r["mrc"])
    for rank, row in enumerate(rows):
        row["rank"] = rank
    return rows
