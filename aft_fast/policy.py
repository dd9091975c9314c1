"""Policy constants and choice lists, each typed once: the library, the CLI and the benchmarks
import them from here. A leaf module (imports nothing from aft_fast)."""
from __future__ import annotations

VERSION = "0.1.0"

AMP_CHOICES = ("none", "bf16", "fp16")  # "none" = fp32
BN_MODES = ("eval", "train")  # BatchNorm/dropout mode while the attack runs
LOADERS = ("pytorch", "dali")
# Augmentation presets of the folder loaders (aft_fast.data.augment); the default follows the
# image side: "small" up to SMALL_IMAGE_MAX pixels, "imagenet" above.
AUGMENTS = ("imagenet", "small", "none")
SMALL_IMAGE_MAX = 64
EVAL_ATTACKS = ("pgd", "autoattack", "none")
OPTIMIZERS = ("sgd", "adam")

# Standard AutoAttack's reference settings (Croce & Hein 2020): APGD-CE and APGD-T 100 iterations,
# FAB-T 100 iterations, 9 target classes, Square 5,000 queries.
AUTOATTACK_REFERENCE = {"steps": 100, "queries": 5000, "targets": 9}


def amp_name(amp: str | None) -> str | None:
    """The AMP setting as the library takes it: None for fp32 ("none", "fp32" or None)."""
    return None if amp in (None, "none", "fp32") else amp


def default_alpha(eps: float, steps: int) -> float:
    """PGD's step size when none is given: Madry et al.'s rule, 2.5·ε/steps, reaches the ball's
    boundary with slack from any random start."""
    return 2.5 * eps / max(steps, 1)
