"""Models that take [0, 1] images (normalisation inside): torchvision archs by name, CIFAR
PreAct ResNet-18 / WideResNets, a small MNIST CNN; local weight files only."""
from aft_fast.models.normalize import Normalized  # noqa: F401
from aft_fast.models.registry import build, list_archs, unwrap  # noqa: F401
from aft_fast.models.small import small_cnn  # noqa: F401
from aft_fast.models.cifar import PreActResNet18, WideResNet  # noqa: F401
from aft_fast.models.weights import load_weights, read_state_dict  # noqa: F401
