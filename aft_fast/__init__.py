"""aft_fast: fast adversarial training and adversarial fine-tuning with fused C++/CUDA attack ops.

Images are in [0, 1] everywhere, normalisation lives inside the model, eps and alpha are in pixel
units. The element-wise attack math lives in :mod:`aft_fast.ops` (compiled) and nowhere else.
"""
from aft_fast.policy import VERSION as __version__  # noqa: E402

from aft_fast import ops  # noqa: F401,E402


def __getattr__(name):
    # Lazy, so `import aft_fast` (and the ops) stays light: the training stack loads on first use.
    if name == "load_checkpoint":
        from aft_fast.train.checkpoint import load_checkpoint

        return load_checkpoint
    raise AttributeError(f"module 'aft_fast' has no attribute {name!r}")
