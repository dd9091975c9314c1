"""RiFT (Zhu et al. 2023): find the module of an adversarially trained model that matters least
for robustness (module robust criticality), fine-tune it alone on clean data, and interpolate
back toward the AT weights, choosing α on validation data. Test data is never used.

`rift(RiftOptions(checkpoint=..., data=..., out=...))` runs the three steps; `run_mrc`,
`run_finetune` and `run_interpolate` run one each (see pipeline.py for the files they write).
"""
from aft_fast.rift.interpolate import choose_alpha, interpolate_state  # noqa: F401
from aft_fast.rift.mrc import criticality, module_criticality, weight_modules  # noqa: F401
from aft_fast.rift.options import RiftOptions  # noqa: F401
from aft_fast.rift.pipeline import rift, run_finetune, run_interpolate, run_mrc  # noqa: F401
