"""aft_fast: fast adversarial training and adversarial fine-tuning with fused C++/CUDA attack ops.

Images are in [0, 1] everywhere, normalisation lives inside the model, eps and alpha are in pixel
units. The element-wise attack math lives in :mod:`aft_fast.ops` (compiled) and nowhere else.
"""
__version__ = "0.1.0"

from aft_fast import ops  # noqa: F401,E402
