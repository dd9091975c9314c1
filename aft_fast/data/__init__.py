"""Data: every source yields `(images, labels)` batches on the model's device, images float32 in
[0, 1] (normalisation lives in the model). `make_loaders` picks the source and the loader; every
loader follows the one contract of `Batches` (batches.py)."""
from aft_fast.data.batches import Batches  # noqa: F401
from aft_fast.data.loaders import make_loaders  # noqa: F401
from aft_fast.data.mnist5k import mnist5k  # noqa: F401
from aft_fast.data.types import DataSpec, FileList, Loaders  # noqa: F401
