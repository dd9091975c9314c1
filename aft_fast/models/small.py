"""A small CNN for 28×28 single-channel images (the bundled mnist5k data)."""
import torch.nn as nn


def small_cnn(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """Two conv blocks + two linear layers (LeNet-like; the MNIST model of the AT literature)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 200), nn.ReLU(inplace=True),
        nn.Linear(200, num_classes),
    )
