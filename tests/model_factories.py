"""Factories the import-path tests name as `model_factories:NAME` (pytest puts tests/ on the
path). Not a test module: nothing here runs on import."""
import torch.nn as nn


def tiny_cnn(num_classes=10, in_channels=3):
    """A small network of the user's own, with the factory signature aft_fast passes."""
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(8 * 16, num_classes))


class TinyNet(nn.Module):
    """A class as the factory; it takes `in_chans` as timm does."""

    def __init__(self, num_classes=10, in_chans=3):
        super().__init__()
        self.body = tiny_cnn(num_classes, in_chans)

    def forward(self, x):
        return self.body(x)


def fixed_ten():
    """Takes no num_classes: always 10 outputs."""
    return tiny_cnn(10, 3)


def not_a_module(num_classes=10):
    return {"num_classes": num_classes}


NOT_CALLABLE = 3


def tiny_bn_cnn(num_classes=10, in_channels=1):
    """A tiny BatchNorm network (robustify's BatchNorm probes)."""
    return nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(4 * 16, num_classes))
