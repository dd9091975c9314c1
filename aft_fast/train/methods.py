"""Training methods: the few lines in which PGD AT, Free AT, Fast AT, AFT and natural training
differ. Each has its defaults (optimizer, LR, schedule, epochs) and `step`, which runs one batch
(perturbation + weight update(s)) and returns on-device sums (loss, correct) so the loop reads
them only when it logs: no host sync per batch.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from aft_fast import ops
from aft_fast.attacks import AttackConfig, fgsm_rs, pgd
from aft_fast.attacks.pgd import amp_dtype, section
from aft_fast.errors import OptionError
from aft_fast.policy import default_alpha
from aft_fast.runtime import synced_clock
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
    global step a report names."""

    def __init__(self, model: nn.Module, optimizer, amp: str | None, device: torch.device,
                 attack_model: nn.Module | None = None, on_nonfinite: str = "stop"):
        self.model, self.optimizer = model, optimizer
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

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def update(self, x: torch.Tensor, y: torch.Tensor, *, input_grad: bool = False) -> Update:
        """One optimizer step on (x, y)."""
        self.model.train()
        if input_grad:
            x = x.detach().requires_grad_(True)
        skip = self.nonfinite.skip
        guard = SkipGuard(self.model) if skip else None
        with section("update forward+loss"), self.autocast():
            logits = self.model(x)
            loss = F.cross_entropy(logits.float(), y)
        with section("update backward"):
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
        with section("optimizer step"):
            bad = bad_update(loss, self._params(), check_grads=skip and not self.scaler.is_enabled())
            if skip:
                step_unless(self.optimizer, bad, self.scaler)
                guard.restore_if(bad)
            else:
                self.scaler.step(self.optimizer)
            self.scaler.update()
            self.nonfinite.record(bad, self.step_index)
        return Update(loss.detach(), logits.detach(), x.grad if input_grad else None, bad)

    def _params(self):
        return (p for group in self.optimizer.param_groups for p in group["params"])


def _stats(u: Update, y: torch.Tensor) -> StepStats:
    n = torch.where(u.bad, 0, len(y))
    return StepStats(torch.where(u.bad, 0.0, u.loss * len(y)),
                     torch.where(u.bad, 0, (u.logits.argmax(1) == y).sum()), n)


class Method:
    name = "base"
    optimizer, lr, schedule, epochs = "sgd", 0.1, "multistep", 10
    needs_weights = False
    replays = 1  # weight updates per batch (Free AT)
    separate_attack = True  # perturb() is a separate pass worth timing (not natural, not Free AT)
    # BatchNorm while the training attack runs, as in the method's reference code:
    # MadryLab/robustness makes PGD examples in eval mode; fast_adversarial and Free AT in train.
    bn_mode = "eval"

    def __init__(self, eps: float = 0.0, alpha: float | None = None, steps: int = 10,
                 amp: str | None = None, bn_mode: str | None = None, replays: int | None = None,
                 compile: bool = False, eps_warmup_epochs: float = 0.0):
        self.eps, self.steps, self.amp = eps, steps, amp
        self.bn_mode = bn_mode or type(self).bn_mode
        self.compile = compile  # the attack's forward + input backward as one compiled graph
        self.alpha = self.default_alpha(eps, steps) if alpha is None else alpha
        # ε warm-up: ε and α grow linearly from 0 over the first eps_warmup_epochs (set_progress)
        self.eps_warmup_epochs, self.eps_target, self.alpha_target = eps_warmup_epochs, eps, self.alpha
        if replays is not None:
            if replays < 1:
                raise OptionError("replays", f"must be >= 1, got {replays}")
            self.replays = replays

    default_alpha = staticmethod(default_alpha)  # Madry et al.'s 2.5·eps/steps

    def set_progress(self, t: float) -> None:
        """Training progress `t` in epochs, before every weight update: applies the ε warm-up
        (what practitioners add where PGD AT from scratch stalls at a small budget)."""
        if self.eps_warmup_epochs > 0:
            f = min(1.0, max(t, 0.0) / self.eps_warmup_epochs)
            self.eps, self.alpha = self.eps_target * f, self.alpha_target * f

    def attack_config(self) -> AttackConfig:
        return AttackConfig(self.eps, self.alpha, self.steps, amp=self.amp, bn_mode=self.bn_mode,
                            compile=self.compile)

    def perturb(self, trainer: Trainer, x, y) -> torch.Tensor:
        return x

    def state_dict(self) -> dict:
        """What a method carries from batch to batch (saved in checkpoints for exact resume)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def step(self, trainer: Trainer, x, y, set_lr) -> StepStats:
        if trainer.time_attack and self.separate_attack:
            start = synced_clock(x.device)
            x_adv = self.perturb(trainer, x, y)
            trainer.attack_seconds += synced_clock(x.device) - start
            trainer.attack_calls += 1
        else:
            x_adv = self.perturb(trainer, x, y)
        return _stats(trainer.update(x_adv, y), y)


class Natural(Method):
    """Standard training on clean images: the paper's pretraining (SGD, momentum 0.9, wd 5e-4,
    multistep)."""
    name = "natural"
    separate_attack = False


class PGDAT(Method):
    """Madry et al.: train on PGD-k examples, from scratch."""
    name = "pgd-at"

    def perturb(self, trainer, x, y):
        return pgd(trainer.attack_model, x, y, self.attack_config())


class AFT(PGDAT):
    """Jeddi et al. 2020: PGD fine-tuning of a pretrained model with Adam and the slow start,
    fast decay schedule, for few (10) epochs."""
    name = "aft"
    optimizer, lr, schedule, epochs = "adam", 1e-3, "slow-start-fast-decay", 10
    needs_weights = True


class FastAT(Method):
    """Wong et al. 2020: FGSM from a random start with α = 1.25 ε, cyclic LR."""
    name = "fast-at"
    schedule, lr = "cyclic", 0.2
    bn_mode = "train"  # fast_adversarial calls model.train() before making its examples

    @staticmethod
    def default_alpha(eps, steps):
        return 1.25 * eps

    def perturb(self, trainer, x, y):
        return fgsm_rs(trainer.attack_model, x, y, self.eps, self.alpha, amp=self.amp,
                       bn_mode=self.bn_mode, compile=self.compile)


class FreeAT(Method):
    """Shafahi et al. 2019: each batch is replayed m times; one backward gives the parameter
    gradient (weight update) and the input gradient (perturbation update, step ε) at once. The
    perturbation persists across batches; epochs are divided by m so total work matches."""
    name = "free-at"
    replays = 8
    separate_attack = False  # the perturbation comes from the training backward itself
    bn_mode = "train"  # ... so it is made in the training forward's (train) mode

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.delta: torch.Tensor | None = None

    @staticmethod
    def default_alpha(eps, steps):
        return eps

    def state_dict(self):
        return {"delta": None if self.delta is None else self.delta.detach().cpu()}

    def load_state_dict(self, state):
        self.delta = state.get("delta")  # moved to the batch's device by the next step

    def step(self, trainer, x, y, set_lr):
        if self.delta is None or self.delta.shape[1:] != x.shape[1:] or len(self.delta) < len(x):
            self.delta = torch.zeros_like(x, dtype=torch.float32)
        elif self.delta.device != x.device:
            self.delta = self.delta.to(x.device)
        # As in Shafahi et al.'s code: a smaller last batch uses the first rows of delta (a view,
        # so its updates persist) instead of resetting the perturbation.
        delta, x_nat = self.delta[:len(x)], x.float()
        x_in = torch.empty_like(delta)
        ops.delta_step_(delta, torch.zeros_like(x_in), x_nat, self.eps, 0.0, x_adv=x_in)
        total = StepStats(0, 0, 0)
        for r in range(self.replays):
            set_lr(r / self.replays)
            # One backward: the weight update and the perturbation's gradient at once.
            u = trainer.update(x_in, y, input_grad=True)
            with torch.no_grad():
                ops.delta_step_(delta, u.input_grad, x_nat, self.eps, self.alpha, x_adv=x_in)
            s = _stats(u, y)
            total = StepStats(total.loss_sum + s.loss_sum, total.correct + s.correct, total.n + s.n)
        return StepStats(total.loss_sum / self.replays, total.correct / self.replays,
                         total.n / self.replays)


METHODS = {m.name: m for m in (Natural, PGDAT, FreeAT, FastAT, AFT)}


def make_method(name: str, **kwargs) -> Method:
    if name not in METHODS:
        raise OptionError("method", f"must be one of {', '.join(METHODS)}; got {name!r}")
    return METHODS[name](**kwargs)
