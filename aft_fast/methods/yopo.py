"""YOPO-m-n (Zhang et al. 2019, "You Only Propagate Once: Accelerating Adversarial Training via
Maximal Principle", NeurIPS; https://arxiv.org/abs/1905.00877; code:
https://github.com/a1600012888/YOPO-You-Only-Propagate-Once, experiments/CIFAR10/pre-res18.yopo-5-3
and experiments/MNIST/YOPO-5-10): the adversary is coupled only to the first layer f0.

Per batch, from a random start in the ε-ball, m rounds: one full forward/backward of the loss at
the current perturbation gives the parameter gradients (summed over the rounds) and the costate
p = −∂L/∂z at the first layer's output z = f0(x + δ); then n steps move δ through the first layer
alone, each a signed step of α down the Hamiltonian p·f0(x + δ) (up the loss's first-order
change), projected onto the ε-ball and [0, 1] by the fused op. One weight update after the m
rounds, through `Trainer.update(rounds=m)` (autocast, GradScaler, non-finite guard).

As in its code: the gradients of the m rounds are summed (not averaged) and the LR is divided
by m (CIFAR: SGD 0.2/m, momentum 0.9, wd 5e-4; MNIST: SGD 0.01/m); m = 5; BatchNorm in train
mode throughout (its net.train()); a fresh uniform start each batch. α: 2/255 at ε = 8/255 on
CIFAR, kept as α = ε/4 for every family: on Fashion-MNIST (ε = 0.1) that is 0.025, so the n = 3
steps of a round reach 3/4 ε and the 15 steps of a batch cross the ball, as on CIFAR (the MNIST
code's 0.01 at ε = 0.3 goes with its n = 10). Not as its code: the code also adds to the first
layer's weight gradient that of −p·f0 at each round's final δ; here every parameter takes only
the full backward's gradient, so the last round runs no inner steps (they would change nothing).

"The first layer" is `first_layer`, a submodule's dotted name in the plain network (default: the
first Conv2d or Linear in `named_modules()` order); f0 is the network up to and including it
(the inner steps run the forward until that layer returns). It must run once per forward.

Budget: E / m epochs (as Free AT: each full forward/backward sees the split once), which keeps
the authors' ratio to PGD AT (36 epochs of YOPO-5-3 against 105 of PGD-10: about 1/6 of the
passes). Cost: m full passes + (m − 1)·n first-layer steps per image per epoch, a first-layer
step counted as FIRST_LAYER_STEP of a pass: an upper bound (its multiply-adds: 3% of a pass for
small_cnn, 0.2% for preact_resnet18, 2% for ResNet-50), so the cost column never flatters YOPO.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from aft_fast import ops
from aft_fast.errors import OptionError
from aft_fast.methods.base import Budget, Method, MethodOption, round_half_up
from aft_fast.models.normalize import Normalized
from aft_fast.train.partial import find_submodule
from aft_fast.train.update import batch_stats

FIRST_LAYER_STEP = 0.1  # of a full forward/backward pass (see the cost rule above)
DEFAULT_M, DEFAULT_N = 5, 3  # YOPO-5-3, the paper's CIFAR setting
LR_TIMES_M = {"small": 0.01, "cifar": 0.2}  # the code's LR is this / m (summed gradients)


class YOPO(Method):
    name = "yopo"
    label = "YOPO"
    reference = ("Zhang et al. 2019; a1600012888/YOPO-You-Only-Propagate-Once "
                 "(m = 5 rounds, n = 3 first-layer steps of 2/255, LR / m)")
    separate_attack = False  # the perturbation is made inside the update's rounds
    bn_mode = "train"
    fixed_attack_steps, alpha_per_eps = 0, 0.25
    lr = LR_TIMES_M["cifar"] / DEFAULT_M  # --lr applies to the m rounds' summed gradient
    options = (
        MethodOption("yopo_m", int, DEFAULT_M, "YOPO: rounds per batch (m): full forward/backward "
                     "passes whose parameter gradients are summed into one weight update.", low=1),
        MethodOption("yopo_n", int, DEFAULT_N, "YOPO: first-layer steps on the perturbation "
                     "after each round (n).", low=1),
        MethodOption("first_layer", str, None, "YOPO: the first layer, a submodule's dotted name "
                     "in the network (e.g. conv1; default: its first Conv2d or Linear)."))
    recipes = {family: dict(optimizer="sgd", lr=lr_m / DEFAULT_M, schedule="multistep",
                            weight_decay=5e-4) for family, lr_m in LR_TIMES_M.items()}
    imagenet_epochs = 90.0 / DEFAULT_M  # the budget rule applied to PGD AT's 90 (an assumption)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._resolved: tuple[nn.Module, nn.Module] | None = None  # (model, its first layer)

    # ------------------------------------------------------------------ cost and comparison
    @property
    def attack_steps(self) -> int:
        return (self.yopo_m - 1) * self.yopo_n  # first-layer steps per batch

    def passes_per_epoch(self) -> float:
        return self.yopo_m + self.attack_steps * FIRST_LAYER_STEP

    def default_epochs(self) -> int:
        return max(1, -(-self.epochs // self.yopo_m))

    @classmethod
    def budget_epochs(cls, b: Budget) -> int:
        return round_half_up(b.epochs / DEFAULT_M)

    @classmethod
    def compare_label(cls, b: Budget) -> str:
        return f"{cls.label}-{DEFAULT_M}-{DEFAULT_N}"

    # ------------------------------------------------------------------ one batch
    def first_layer_of(self, model: nn.Module) -> nn.Module:
        """The first layer of `model` (resolved once per model)."""
        if self._resolved is None or self._resolved[0] is not model:
            self._resolved = (model, resolve_first_layer(model, self.first_layer))
        return self._resolved[1]

    def step(self, trainer, x, y, set_lr):
        layer = self.first_layer_of(trainer.attack_model)
        x_nat = x.float()
        x_adv = ops.random_init_(torch.empty_like(x_nat), x_nat, self.eps)
        costate = Costate(layer)

        def next_input(_round):
            p = costate.take()
            for _ in range(self.yopo_n):
                self.inner_step(trainer, layer, x_adv, x_nat, p)
            costate.clear()  # what the inner steps' own first-layer calls left
            return x_adv

        with costate:
            u = trainer.update(x_adv, y, rounds=self.yopo_m, next_input=next_input)
        return batch_stats(u, y)

    def inner_step(self, trainer, layer, x_adv, x_nat, p) -> None:
        """δ ← δ − α·sign(∇δ p·f0(x + δ)), projected: runs the network only up to `layer`."""
        x_in = x_adv.detach().requires_grad_(True)
        with trainer.autocast():
            z = first_layer_output(trainer.attack_model, layer, x_in)
        grad, = torch.autograd.grad(-(z.float() * p).sum(), x_in)
        ops.pgd_step_(x_adv, grad, x_nat, self.eps, self.alpha)


class Costate:
    """While entered, the first layer's output z in each full forward, and after its backward
    the costate p = −∂L/∂z (times the fp16 loss scale: signs are what the steps use)."""

    def __init__(self, layer: nn.Module):
        self.layer, self.grads, self.calls = layer, [], 0

    def __enter__(self):
        self.handle = self.layer.register_forward_hook(self._seen)
        return self

    def __exit__(self, *exc):
        self.handle.remove()

    def _seen(self, module, inputs, z):
        self.calls += 1
        if z.requires_grad:
            z.register_hook(self.grads.append)

    def clear(self) -> None:
        self.calls, self.grads = 0, []

    def take(self) -> torch.Tensor:
        """p of the forward/backward just run (and clear for the next)."""
        calls, grads = self.calls, self.grads
        self.clear()
        if calls != 1 or len(grads) != 1:
            raise OptionError("first_layer", f"the first layer ran {calls} time(s) in one forward "
                              f"and got {len(grads)} gradient(s): name a layer that runs once and "
                              "has trainable parameters")
        return -grads[0].detach().float()


class _Reached(Exception):
    """Raised by the hook that stops a forward at the first layer."""

    def __init__(self, z):
        self.z = z


def first_layer_output(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """f0(x): `model`'s forward up to `layer`'s output (what runs before it: the normalisation)."""
    def stop(module, inputs, z):
        raise _Reached(z)

    handle = layer.register_forward_hook(stop)
    try:
        model(x)
    except _Reached as reached:
        return reached.z
    finally:
        handle.remove()
    raise OptionError("first_layer", f"{type(layer).__name__} did not run in the model's forward")


def resolve_first_layer(model: nn.Module, name: str | None) -> nn.Module:
    """The submodule `name` of the plain network (inside Normalized), or its first Conv2d or
    Linear; an OptionError naming first_layer lists the candidates."""
    net = model.model if isinstance(model, Normalized) else model
    candidates = [n for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if name is None:
        if not candidates:
            raise OptionError("first_layer", f"{type(net).__name__} has no Conv2d or Linear "
                              "layer: name its first layer")
        name = candidates[0]
    return find_submodule(net, name, option="first_layer", candidates=candidates)
