"""A small CNN for 28×28 single-channel images (the bundled mnist5k data)."""
import torch.nn as nn


def small_cnn(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """The MNIST network of the adversarial-training literature (Madry et al. 2018; Wong et al.
    2020): two 5×5 conv + max-pool blocks (32, 64 channels) and two linear layers (1024, classes).

    LeNet-like and cheap on a CPU; its capacity is what Madry et al. found PGD training at
    eps = 0.3 needs. A `nn.Sequential`, so `[0]` is the first conv and `[-1]` the classifier.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 1024), nn.ReLU(inplace=True),
        nn.Linear(1024, num_classes),
    )
