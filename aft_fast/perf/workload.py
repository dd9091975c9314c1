"""What `bench` and `profile` run on: one model, one synthetic batch, one attack setting, built
the same way for every variant so their figures compare."""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch

from aft_fast.attacks import AttackConfig
from aft_fast.data.synthetic import synthetic
from aft_fast.errors import check_at_least, check_choice, check_pixels
from aft_fast.models import build
from aft_fast.policy import AMP_CHOICES, amp_name
from aft_fast.runtime import pick_device


@dataclass
class Workload:
    """The settings of a speed measurement (eps/alpha in pixel units). `aft-fast bench` and
    `profile` make one flag per field (`aft_fast.commands.bench`)."""

    arch: str = "resnet18"
    image_size: int = 32
    batch: int = 64
    num_classes: int = 10
    steps: int = 3
    eps: float = 8 / 255
    alpha: float = 2 / 255
    amp: str | None = "none"  # "none" (fp32) | "bf16" | "fp16": the engine's attack and updates
    channels_last: bool = False
    device: str = "auto"
    in_channels: int = 3
    seed: int = 0
    compile: bool = False  # torch.compile the engine's forward + input backward (and the floor's)

    def __post_init__(self):
        for name in ("image_size", "batch", "num_classes", "in_channels", "steps"):
            check_at_least(name, getattr(self, name), 1)  # steps: an attack needs one to time
        check_pixels("eps", self.eps)
        check_pixels("alpha", self.alpha)
        self.amp = amp_name(self.amp)  # None (fp32) from here on
        check_choice("amp", self.amp or "none", AMP_CHOICES)

    def attack_config(self) -> AttackConfig:
        return AttackConfig(self.eps, self.alpha, self.steps, amp=self.amp, bn_mode="eval",
                            compile=self.compile)

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


@dataclass
class Built:
    """The model (engine layout), an NCHW fp32 copy for the plain reference, and one batch."""

    device: torch.device
    model: torch.nn.Module
    plain_model: torch.nn.Module
    x: torch.Tensor  # engine layout
    x_plain: torch.Tensor  # NCHW
    y: torch.Tensor


def build_workload(w: Workload) -> Built:
    """Model `w.arch` with random weights (speed does not depend on them) and a synthetic batch."""
    device = pick_device(w.device)
    torch.manual_seed(w.seed)
    model = build(w.arch, w.num_classes, in_channels=w.in_channels).to(device).eval()
    plain_model = copy.deepcopy(model)  # before the layout change: NCHW, like research code
    x, y = synthetic(w.batch, (w.in_channels, w.image_size, w.image_size), w.num_classes, seed=w.seed)
    x_plain, y = x.to(device), y.to(device)
    if w.channels_last:
        model = model.to(memory_format=torch.channels_last)
    x = x_plain.contiguous(memory_format=w.memory_format)
    return Built(device, model, plain_model, x, x_plain, y)
