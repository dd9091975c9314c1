"""The one weight update every method uses (`Trainer.update`) and the on-device sums of a batch
(`StepStats`). Methods (`aft_fast.methods`) call it from their `step`; it knows no method."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from aft_fast.attacks.pgd import amp_dtype, section
from aft_fast.runtime import synced_clock
from aft_fast.train.ema import WeightAverage
from aft_fast.train.nonfinite import NonFiniteMonitor, SkipGuard, bad_update, step_unless


@dataclass
class StepStats:
    """On-device sums of one batch: loss·n, correct predictions, n (updates whose loss was not
    finite count nothing)."""
    loss_sum: torch.Tensor
    correct: torch.Tensor
    n: torch.Tensor


class Update(NamedTuple):
    loss: torch.Tensor  # detached, mean over the batch
    logits: torch.Tensor  # detached
    input_grad: torch.Tensor | None  # d loss / d x (times the fp16 loss scale), when asked
    bad: torch.Tensor  # 0-dim bool: the loss (or, when skipping, a gradient) was not finite


class Trainer:
    """The one weight update every method uses: autocast forward, (scaled) backward, optimizer
    step; optionally the input gradient of the same backward (Free AT). Each update is checked
    for a non-finite loss on the device (`nonfinite`); `step_index` (set by the loop) is the
    global step a report names. `ema` (`--ema`), when given, is updated after every step."""

    def __init__(self, model: nn.Module, optimizer, amp: str | None, device: torch.device,
                 attack_model: nn.Module | None = None, on_nonfinite: str = "stop",
                 ema: WeightAverage | None = None):
        self.model, self.optimizer, self.ema = model, optimizer, ema
        # Attacks need no gradient sync: under DDP they run on the plain module, so no reducer
        # is armed and no buffers are broadcast on each of the k attack forwards.
        self.attack_model = attack_model if attack_model is not None else model
        self.amp_dtype = amp_dtype(amp)
        self.device = device
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.nonfinite = NonFiniteMonitor(device, on_nonfinite)
        self.step_index = 0
        self.time_attack = False  # set by the loop on the iterations it measures (syncs the device)
        self.attack_seconds = 0.0
        self.attack_calls = 0

    def attack(self, perturb, x, y):
        """`perturb(self, x, y)`, timed (device-synced) on the iterations the loop measures."""
        if not self.time_attack:
            return perturb(self, x, y)
        start = synced_clock(x.device)
        x_adv = perturb(self, x, y)
        self.attack_seconds += synced_clock(x.device) - start
        self.attack_calls += 1
        return x_adv

    def reset_attack_timer(self) -> None:
        self.attack_seconds, self.attack_calls = 0.0, 0

    def attack_ms_per_iter(self) -> float | None:
        """Mean measured attack time since the last reset (None: nothing measured)."""
        return 1e3 * self.attack_seconds / self.attack_calls if self.attack_calls else None

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def update(self, x: torch.Tensor, y: torch.Tensor, *, input_grad: bool = False,
               loss=None, rounds: int = 1, next_input=None) -> Update:
        """One optimizer step on (x, y). `loss(model, x, y) -> (mean loss, logits)` replaces
        cross-entropy on model(x) (a method's `loss`: TRADES' KL term, MART's weighting).
        `rounds` > 1 (YOPO): that many forward/backward passes whose parameter gradients are
        summed into the one step; `next_input(u)` turns each round's `Update` but the last into
        the next round's input. The Update returned: the rounds' mean loss, the last round's
        logits, and whether any round (or, when skipping, the summed gradient) was not finite."""
        self.model.train()
        skip = self.nonfinite.skip
        guard = SkipGuard(self.model) if skip else None
        self.optimizer.zero_grad(set_to_none=True)
        losses = []
        for r in range(rounds):
            if input_grad:
                x = x.detach().requires_grad_(True)
            with section("update forward+loss"), self.autocast():
                if loss is None:
                    logits = self.model(x)
                    value = F.cross_entropy(logits.float(), y)
                else:
                    value, logits = loss(self.model, x, y)
            with section("update backward"):
                self.scaler.scale(value).backward()
            losses.append(value.detach())
            if r + 1 < rounds:
                x = next_input(Update(losses[-1], logits.detach(),
                                      x.grad if input_grad else None, ~torch.isfinite(losses[-1])))
        mean = losses[0] if rounds == 1 else torch.stack(losses).mean()  # non-finite if any is
        with section("optimizer step"):
            bad = bad_update(mean, self._params(), check_grads=skip and not self.scaler.is_enabled())
            if skip:
                step_unless(self.optimizer, bad, self.scaler)
                guard.restore_if(bad)
            else:
                self.scaler.step(self.optimizer)
            self.scaler.update()
            self.nonfinite.record(bad, self.step_index)
            if self.ema is not None:
                self.ema.update()
        return Update(mean, logits.detach(), x.grad if input_grad else None, bad)

    def _params(self):
        return (p for group in self.optimizer.param_groups for p in group["params"])


def batch_stats(u: Update, y: torch.Tensor) -> StepStats:
    """The StepStats of one update (an update whose loss was not finite counts nothing)."""
    n = torch.where(u.bad, 0, len(y))
    return StepStats(torch.where(u.bad, 0.0, u.loss * len(y)),
                     torch.where(u.bad, 0, (u.logits.argmax(1) == y).sum()), n)
