"""Training methods: the few lines in which PGD AT, Free AT, Fast AT, AFT and natural training
differ. Each has its defaults (optimizer, LR, schedule, epochs) and `step`, which runs one batch
(perturbation + weight update(s)) and returns on-device sums (loss, correct) so the loop reads
them only when it logs: no host sync per batch.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from aft_fast import ops
from aft_fast.attacks import AttackConfig, fgsm_rs, pgd
from aft_fast.attacks.pgd import AMP_DTYPES
from aft_fast.runtime import synced_clock


@dataclass
class StepStats:
    loss_sum: torch.Tensor
    correct: torch.Tensor
    n: int


class Trainer:
    """The weight update shared by every method: autocast forward, (scaled) backward, step."""

    def __init__(self, model: nn.Module, optimizer, amp: str | None, device: torch.device,
                 attack_model: nn.Module | None = None):
        if amp not in AMP_DTYPES:
            raise ValueError(f"--amp must be one of none, bf16, fp16; got {amp!r}")
        self.model, self.optimizer = model, optimizer
        # Attacks need no gradient sync: under DDP they run on the plain module, so no reducer
        # is armed and no buffers are broadcast on each of the k attack forwards.
        self.attack_model = attack_model if attack_model is not None else model
        self.amp_dtype = AMP_DTYPES[amp]
        self.device = device
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.time_attack = False  # set by the loop on the iterations it measures (syncs the device)
        self.attack_seconds = 0.0
        self.attack_calls = 0

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def update(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on (x, y); returns (loss, logits) detached."""
        self.model.train()
        with self.autocast():
            logits = self.model(x)
            loss = F.cross_entropy(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), logits.detach()


def _stats(loss, logits, y) -> StepStats:
    return StepStats(loss * len(y), (logits.argmax(1) == y).sum(), len(y))


class Method:
    name = "base"
    optimizer, lr, schedule, epochs = "sgd", 0.1, "multistep", 10
    needs_weights = False
    replays = 1  # weight updates per batch (Free AT)
    separate_attack = True  # perturb() is a separate pass worth timing (not natural, not Free AT)

    def __init__(self, eps: float = 0.0, alpha: float | None = None, steps: int = 10,
                 amp: str | None = None, bn_mode: str = "eval", replays: int | None = None,
                 compile: bool = False):
        self.eps, self.steps, self.amp, self.bn_mode = eps, steps, amp, bn_mode
        self.compile = compile  # the attack's forward + input backward as one compiled graph
        self.alpha = self.default_alpha(eps, steps) if alpha is None else alpha
        if replays is not None:
            if replays < 1:
                raise ValueError(f"--replays must be >= 1, got {replays}")
            self.replays = replays

    @staticmethod
    def default_alpha(eps: float, steps: int) -> float:
        return 2.5 * eps / max(steps, 1)  # Madry et al.'s rule: reach the boundary with slack

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
        loss, logits = trainer.update(x_adv, y)
        return _stats(loss, logits, y)


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
        delta = self.delta[:len(x)]
        x_in = torch.empty_like(delta)
        ops.delta_step_(delta, torch.zeros_like(x_in), x.float(), self.eps, 0.0, x_adv=x_in)
        model, opt = trainer.model, trainer.optimizer
        model.train()
        loss_sum = correct = 0
        for r in range(self.replays):
            set_lr(r / self.replays)
            x_in.requires_grad_(True)
            with trainer.autocast():
                logits = model(x_in)
                loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            trainer.scaler.scale(loss).backward()
            grad = x_in.grad
            trainer.scaler.step(opt)
            trainer.scaler.update()
            x_in = x_in.detach()
            with torch.no_grad():
                ops.delta_step_(delta, grad, x.float(), self.eps, self.alpha, x_adv=x_in)
            loss_sum = loss_sum + loss.detach() * len(y)
            correct = correct + (logits.detach().argmax(1) == y).sum()
        return StepStats(loss_sum / self.replays, correct / self.replays, len(y))


METHODS = {m.name: m for m in (Natural, PGDAT, FreeAT, FastAT, AFT)}


def make_method(name: str, **kwargs) -> Method:
    if name not in METHODS:
        raise ValueError(f"--method must be one of {', '.join(METHODS)}; got {name!r}")
    return METHODS[name](**kwargs)
