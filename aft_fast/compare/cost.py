"""Training cost in forward/backward passes per training image, counted from the recipe and the
epochs a run actually completed, so CPU and GPU rows compare (device seconds do not).

One pass = one forward and one backward through the network for one image. An attack step is
one pass (its backward is taken w.r.t. the input only, slightly cheaper than a weight update);
a weight update is one pass. Forward-only passes, the per-epoch validation (at most 1,000
images an epoch) and the final evaluation are not counted.

Each method states its own rule (`Method.passes_per_epoch`, in its module; `aft-fast methods`
lists them): natural 1; PGD AT, AFT k + 1; Fast AT 2; Free AT m; TRADES k + 2 (its update runs
the clean and the adversarial batch); YOPO m + (m − 1)·n/10 (a first-layer step: a tenth); RiFT 1 plus its searches (`extra_passes`: MRC and the α
search, read from the run's records and divided by the training images).
"""
from __future__ import annotations

from aft_fast.compare.recipes import Recipe, make_row_method


def row_passes(r: Recipe, run_dir, epochs_run: float, train_size: int) -> float:
    """Forward/backward passes per training image of one trained row."""
    return epochs_run * r.passes_per_epoch + make_row_method(r).extra_passes(run_dir) / train_size
