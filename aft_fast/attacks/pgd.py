"""The PGD loop: the product this engine is timed on.

One iteration = forward, input-gradient backward, one fused `ops.pgd_step_`. What makes it fast:
- gradients w.r.t. the input only (`torch.autograd.grad(loss, x_in)`): no parameter gradient is
  computed or stored during attack steps;
- an fp32 master `x_adv` and, under autocast, a bf16/fp16 input copy written by the fused step
  itself (`out=`), so mixed precision costs no separate cast pass;
- the model's and the input's memory format are kept (channels_last stays channels_last);
- no host synchronisation inside the loop (no `.item()`, no branching on tensor values);
- optionally (`AttackConfig(compile=True)`) forward + loss + input backward as one
  `torch.compile` graph; it pays off where kernel launches dominate (GPUs, small models).

`instrumented(hook)` lets a profiler time the parts of this loop (and of `Trainer.update`, which
marks its parts the same way) without a copy of it: each part runs inside `section(name)`, which
is a shared no-op context unless a hook is installed (one global read per part when off).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Callable, ContextManager

import torch
import torch.nn as nn
import torch.nn.functional as F

from aft_fast import ops
from aft_fast.errors import check, check_at_least, check_choice
from aft_fast.policy import AMP_CHOICES, BN_MODES, amp_name

AMP_DTYPES = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}  # keys: policy.amp_name


def amp_dtype(amp: str | None) -> torch.dtype | None:
    """The autocast dtype of an AMP setting ("none"/"fp32"/None: fp32, i.e. None)."""
    name = amp_name(amp)
    check(name in AMP_DTYPES, "amp", f"must be one of {', '.join(AMP_CHOICES)}; got {amp!r}")
    return AMP_DTYPES[name]
# fp16 gradients of a small loss underflow; a constant scale keeps them representable. The
# sign of a scaled gradient is the sign of the gradient, so nothing is ever unscaled.
FP16_LOSS_SCALE = 1024.0


_section_hook: Callable[[str], ContextManager] | None = None
_NO_SECTION = contextlib.nullcontext()


def section(name: str) -> ContextManager:
    """The context a named part of the attack or of the weight update runs in: the installed
    hook's (a profiler's timer), or a shared no-op."""
    hook = _section_hook
    return _NO_SECTION if hook is None else hook(name)


@contextlib.contextmanager
def instrumented(hook: Callable[[str], ContextManager]):
    """Run the block with `hook(name)` around every named part (see `section`)."""
    global _section_hook
    previous, _section_hook = _section_hook, hook
    try:
        yield
    finally:
        _section_hook = previous


@contextlib.contextmanager
def interruptible(check: Callable[[], None]):
    """Run the block with `check()` called before every named part (an installed hook kept):
    `check` may raise, so a long attack stops between its steps (a signal in an evaluation)."""
    previous = _section_hook

    def hook(name: str) -> ContextManager:
        check()
        return _NO_SECTION if previous is None else previous(name)

    with instrumented(hook):
        yield


@dataclass(frozen=True)
class AttackConfig:
    """An l∞ PGD attack. eps/alpha in pixel units of [0, 1] images.

    `steps=0` with `random_start` gives the random start alone; `eps=0` gives the input back.
    `bn_mode` sets BatchNorm/dropout during the attack ("eval" by default, as most reference
    implementations do; "train" uses batch statistics and updates running stats); the model's
    own training flag is restored afterwards.
    """

    eps: float
    alpha: float
    steps: int
    restarts: int = 1
    random_start: bool = True
    amp: str | None = None  # None (fp32) | "bf16" | "fp16"
    bn_mode: str = "eval"  # BatchNorm during the attack: eval (most references) or train
    compile: bool = False  # torch.compile the forward + input-gradient step (pays off on GPUs)
    # the random start's radius (None: eps; TRADES and MART 0.001; N-FGSM 2·eps, outside the ball
    # its step projects onto)
    start_eps: float | None = None

    def __post_init__(self):
        check_at_least("eps", self.eps, 0)
        check_at_least("alpha", self.alpha, 0)
        check_at_least("steps", self.steps, 0)
        check_at_least("restarts", self.restarts, 1)
        check_at_least("start_eps", self.start_eps, 0)
        amp_dtype(self.amp)
        check_choice("bn_mode", self.bn_mode, BN_MODES)

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return amp_dtype(self.amp)


@contextlib.contextmanager
def attack_mode(model: nn.Module, bn_mode: str):
    """BatchNorm/dropout in the attack's mode; the model's own flag is restored afterwards."""
    was_training = model.training
    model.train(bn_mode == "train")
    try:
        yield
    finally:
        model.train(was_training)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def input_grad(model: nn.Module, x_in: torch.Tensor, y: torch.Tensor, amp_dtype=None,
               loss_fn=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(gradient of the summed loss w.r.t. `x_in` only, logits). `x_in` is used as a leaf."""
    x_in = x_in.detach().requires_grad_(True)
    # enable_grad: the attack also works when the caller evaluates under torch.no_grad().
    with torch.enable_grad():
        return _loss_grad(model, x_in, y, amp_dtype, loss_fn)


def _loss_grad(model, x_leaf, y, amp_dtype, loss_fn) -> tuple[torch.Tensor, torch.Tensor]:
    with section("attack forward"), _autocast(x_leaf.device, amp_dtype):
        logits = model(x_leaf)
    # The loss and the backward run outside autocast, as torch recommends.
    with section("attack loss"):
        loss = (loss_fn or F.cross_entropy)(logits.float(), y, reduction="sum")
        if amp_dtype == torch.float16:
            loss = loss * FP16_LOSS_SCALE
    with section("input backward"):
        (grad,) = torch.autograd.grad(loss, x_leaf)
    return grad, logits.detach()


_compiled_loss_grad = None


def compiled_input_grad(model: nn.Module, x_in: torch.Tensor, y: torch.Tensor, amp_dtype=None,
                        loss_fn=None) -> tuple[torch.Tensor, torch.Tensor]:
    """`input_grad` with forward + loss + input-gradient backward as one `torch.compile` graph
    (compiled once per model and shape; the first call pays the compilation). Dynamo traces
    `torch.autograd.grad` only with `trace_autograd_ops`; BatchNorm in train mode works too."""
    global _compiled_loss_grad
    if _compiled_loss_grad is None:
        _compiled_loss_grad = torch.compile(_loss_grad, fullgraph=True)
    x_in = x_in.detach().requires_grad_(True)
    with torch.enable_grad(), torch._dynamo.config.patch(trace_autograd_ops=True):
        return _compiled_loss_grad(model, x_in, y, amp_dtype, loss_fn)


def _like(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`grad` in `x`'s memory layout (the fused op needs one layout). Autograd returns the layout
    the first layer chose, which differs only when model and input formats differ (then a copy)."""
    if grad.stride() == x.stride() or ops._dense_strides(grad) == ops._dense_strides(x):
        return grad
    return torch.empty_like(x, dtype=grad.dtype).copy_(grad)


def _run_once(model, x, y, cfg: AttackConfig, seed: int | None, loss_fn,
              start: torch.Tensor | None = None) -> torch.Tensor:
    amp = cfg.amp_dtype
    with section("copies/casts"):
        x_nat = x.detach().float() if x.dtype != torch.float32 else x.detach()
        x_adv = x_nat.clone(memory_format=torch.preserve_format)
        if start is not None:
            x_adv.copy_(start)
        # Under autocast the forward reads a low-precision copy the fused op keeps up to date.
        x_in = torch.empty_like(x_adv, dtype=amp) if amp is not None else x_adv
    with section("random start"):
        if cfg.random_start and cfg.eps > 0:
            start = cfg.eps if cfg.start_eps is None else cfg.start_eps
            ops.random_init_(x_adv, x_nat, start, seed=seed,
                             out=x_in if x_in is not x_adv else None)
        elif x_in is not x_adv:
            x_in.copy_(x_adv)
    for _ in range(cfg.steps):
        grad, _ = (compiled_input_grad if cfg.compile else input_grad)(model, x_in, y, amp, loss_fn)
        with section("fused step"), torch.no_grad():
            ops.pgd_step_(x_adv, _like(grad, x_adv), x_nat, cfg.eps, cfg.alpha,
                          out=x_in if x_in is not x_adv else None)
    return x_adv


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: AttackConfig, *,
        generator: torch.Generator | None = None, loss_fn=None,
        start: torch.Tensor | None = None) -> torch.Tensor:
    """PGD-k adversarial examples for images `x` in [0, 1] (fp32, x's layout, detached).

    With `restarts > 1`, each example keeps its worst case: misclassified beats correct, then
    higher loss. Parameters receive no gradient. `generator` (CPU) seeds the random starts.
    `loss_fn(logits, y, reduction="sum")` replaces cross-entropy as the ascent objective.
    `start`: the point the steps start from instead of x (ATTA's stored example; no random
    start, one run).
    """
    if x.dim() == 0 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same batch size, got {tuple(x.shape)} and {tuple(y.shape)}")
    if start is not None:
        check(start.shape == x.shape, "start", f"must have x's shape {tuple(x.shape)}, got "
              f"{tuple(start.shape)}")
        cfg = replace(cfg, random_start=False)
    if cfg.steps == 0 and not cfg.random_start and start is None or cfg.eps == 0:
        return x.detach().float().clone(memory_format=torch.preserve_format)
    # Without a random start every restart would repeat the same deterministic run.
    runs = cfg.restarts if cfg.random_start else 1
    seeds = [ops.draw_seed(generator) if cfg.random_start else None for _ in range(runs)]
    with attack_mode(model, cfg.bn_mode):
        best = None
        for seed in seeds:
            x_adv = _run_once(model, x, y, cfg, seed, loss_fn, start)
            if runs == 1:
                return x_adv
            with torch.no_grad(), _autocast(x.device, cfg.amp_dtype):
                logits = model(x_adv).float()
            # Ranked by cross-entropy even under a custom loss_fn: one yardstick for all runs.
            loss = F.cross_entropy(logits, y, reduction="none")
            wrong = logits.argmax(1) != y
            if best is None:
                best, best_wrong, best_loss = x_adv, wrong, loss
                continue
            # Replace where the new run is strictly worse for the model.
            take = (wrong & ~best_wrong) | ((wrong == best_wrong) & (loss > best_loss))
            torch.where(take.view(-1, *[1] * (x.dim() - 1)), x_adv, best, out=best)
            best_wrong, best_loss = best_wrong | wrong, torch.where(take, loss, best_loss)
        return best
