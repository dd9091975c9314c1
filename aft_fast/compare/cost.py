"""Training cost in forward/backward passes per training image, counted from the recipe and the
epochs a run actually completed, so CPU and GPU rows compare (device seconds do not).

One pass = one forward and one backward through the network for one image. An attack step is
one pass (its backward is taken w.r.t. the input only, slightly cheaper than a weight update);
a weight update is one pass. Per-epoch validation and the final evaluation are not counted.

    natural          1 per epoch            (one weight update)
    pgd-at, aft      k + 1 per epoch        (k PGD steps, one update)
    fast-at          2 per epoch            (one FGSM step from a random start, one update)
    free-at          m per epoch            (m replays; each backward gives both gradients)
    rift             1 per epoch            (clean fine-tuning of one module; MRC and the
                                             α search run on small subsets: in seconds only)
"""
from __future__ import annotations


def passes_per_epoch(method: str, *, steps: int = 0, replays: int = 1) -> int:
    """Forward/backward passes per training image in one epoch of `method`."""
    table = {"natural": 1, "rift": 1, "fast-at": 2, "free-at": replays,
             "pgd-at": steps + 1, "aft": steps + 1}
    if method not in table:
        raise ValueError(f"no cost rule for method {method!r}")
    return table[method]


def passes_per_image(method: str, epochs_run: float, *, steps: int = 0, replays: int = 1) -> float:
    return epochs_run * passes_per_epoch(method, steps=steps, replays=replays)
