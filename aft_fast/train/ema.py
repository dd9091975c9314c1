"""`WeightAverage`: an exponential moving average of the weights (`train --ema DECAY`), for any
method, updated after every optimizer step.

The rule is the one of the RobustBench recipes that made weight averaging standard in
adversarial training: Gowal et al. 2020, "Uncovering the Limits of Adversarial Training against
Norm-Bounded Adversarial Examples" (arXiv:2010.03593), and Rebuffi et al. 2021, "Data
Augmentation Can Improve Robustness" (NeurIPS 2021, arXiv:2103.01946); code:
https://github.com/google-deepmind/deepmind-research/tree/master/adversarial_robustness
(`jax/utils.py` `ema_update`, `jax/experiment.py`: `swa_decay` .995) and its PyTorch port
https://github.com/imrahulr/adversarial_robustness_pytorch (`gowal21uncovering/utils/watrain.py`).
The update t (0 for the first one, as the JAX code's global step) uses

    decay_t = min(τ, (1 + t) / (10 + t)),    avg ← decay_t · avg + (1 − decay_t) · weights

so the early average is not dominated by the random initial weights (decay 0.1 at the first
step, τ after about 9/(1 − τ) steps: 1,790 updates for τ = 0.995, 8,990 for 0.999).

BatchNorm statistics: the average takes the raw model's buffers (running mean/variance, batch
counts), copied after each update, as both reference codes do (the JAX code evaluates the
averaged parameters with the training state; the port copies the buffers into the average).
Averaging running statistics of different weights would not describe the averaged weights
either, and copying keeps the average a model that `load_checkpoint` rebuilds like any other.

A batch whose update was skipped (`--on-nonfinite skip`) still moves the average toward the
(unchanged) weights and counts as an update: no host sync is needed to know it was skipped.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

WARMUP = 10  # decay_t = min(τ, (1 + t) / (WARMUP + t)), as in both reference codes


def warmup_decay(tau: float, t: int) -> float:
    """The decay of update `t` (0-based) under the references' warm-up."""
    return min(tau, (1.0 + t) / (WARMUP + t))


class WeightAverage:
    """The average of `source`'s weights (a copy of the model, in eval mode, no gradients), kept
    in step with it by `update()` after every optimizer step."""

    def __init__(self, source: nn.Module, decay: float):
        self.source, self.decay, self.updates = source, decay, 0
        self.model = copy.deepcopy(source).eval()
        self.model.requires_grad_(False)
        self._params = (list(self.model.parameters()), list(source.parameters()))
        self._buffers = list(zip(self.model.buffers(), source.buffers()))

    @torch.no_grad()
    def update(self) -> None:
        avg, raw = self._params
        torch._foreach_lerp_(avg, raw, 1.0 - warmup_decay(self.decay, self.updates))
        for mine, theirs in self._buffers:
            mine.copy_(theirs)
        self.updates += 1

    def state_dict(self) -> dict:
        """The checkpoint's "ema": the average's plain network (like "model"), τ and t."""
        net = self.model.model  # inside the Normalized wrapper, as "model" is saved
        return {"model": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                "decay": self.decay, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])
