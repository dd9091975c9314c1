"""Data: every source yields `(images, labels)` batches on the model's device, images float32 in
[0, 1] (normalisation lives in the model). `make_loaders` picks the source and the loader."""
from aft_fast.data.loaders import DataSpec, Loaders, make_loaders  # noqa: F401
from aft_fast.data.mnist5k import mnist5k  # noqa: F401
