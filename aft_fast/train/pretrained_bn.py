"""A warning for a settings mistake measured twice: adversarial fine-tuning of a *pretrained*
BatchNorm network at a peak LR of 1e-3 or more (AFT's default). The rule, kept simple:

    warn when a fine-tuning method (one with a parent, e.g. aft) starts from --weights on a
    network with BatchNorm layers at a peak LR >= RISKY_LR.

Why: that LR wrecked EfficientNet-Lite0 in its first epoch (README, the worked example's
attempts), and which BatchNorm handling works differs between networks (frozen statistics
rescued EfficientNet-Lite0 and collapsed a CIFAR ResNet to chance, issue 26). `aft-fast
robustify` measures both on held-out training data before it fine-tunes; it silences this
warning for the settings its probes chose.
"""
from __future__ import annotations

import warnings

import torch.nn as nn

RISKY_LR = 1e-3  # AFT's default peak LR; it wrecked pretrained EfficientNet-Lite0's weights


class PretrainedBatchNormWarning(UserWarning):
    """Fine-tuning a pretrained BatchNorm network with settings measured to fail."""


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def warn_pretrained_batchnorm(opts, model: nn.Module) -> str | None:
    """Warn (and return the message) when `opts` fine-tunes pretrained `model` by the rule above."""
    method = opts.method_class()
    lr = opts.lr or method.lr
    if not (opts.weights and method.parent and method.adversarial and lr >= RISKY_LR
            and has_batchnorm(model)):
        return None
    message = (f"--method {opts.method} on a pretrained BatchNorm network at peak LR {lr:g}: "
               f"a peak LR >= {RISKY_LR:g} wrecked pretrained EfficientNet-Lite0 in its first "
               "epoch, and frozen vs updating BatchNorm statistics works on one network and "
               "collapses another; `aft-fast robustify` measures both on held-out training "
               "data (or pass a lower --lr, e.g. 3e-4)")
    warnings.warn(message, PretrainedBatchNormWarning, stacklevel=2)
    return message
