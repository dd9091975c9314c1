"""The CPU-sized network of this RiFT result, built by import path
(`--arch benchmarks.results.rift.net:lenet_bn`, run from the repository root): LeNet-like, with
BatchNorm so that the fine-tune's BatchNorm choice matters, about 1/5 of small_cnn's compute
(the 2-core machine was shared by many jobs when this ran)."""
import torch.nn as nn


def lenet_bn(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """conv 5×5 (16) → BN → ReLU → pool → conv 5×5 (32) → BN → ReLU → pool → fc 128 → fc."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 5, padding=2), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, num_classes))
