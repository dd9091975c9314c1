"""Models that take [0, 1] images (normalisation inside): ours, packaged pretrained examples,
torchvision and timm by name, any nn.Module by import path; local weight files only."""
from aft_fast.models.normalize import Normalized  # noqa: F401
from aft_fast.models.registry import (  # noqa: F401
    SOURCES, available, build, list_archs, rebuild, resolve, unwrap, weights_path)
from aft_fast.models.small import small_cnn  # noqa: F401
from aft_fast.models.cifar import PreActResNet18, WideResNet  # noqa: F401
from aft_fast.models.weights import load_weights, read_state_dict  # noqa: F401
