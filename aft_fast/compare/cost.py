"""Training cost in forward/backward passes per training image, counted from the recipe and the
epochs a run actually completed, so CPU and GPU rows compare (device seconds do not).

One pass = one forward and one backward through the network for one image. An attack step is
one pass (its backward is taken w.r.t. the input only, slightly cheaper than a weight update);
a weight update is one pass. Forward-only passes, the per-epoch validation (at most 1,000
images an epoch) and the final evaluation are not counted.

    natural          1 per epoch            (one weight update)
    pgd-at, aft      k + 1 per epoch        (k PGD steps, one update)
    fast-at          2 per epoch            (one FGSM step from a random start, one update)
    free-at          m per epoch            (m replays; each backward gives both gradients)
    rift             1 per epoch            (clean fine-tuning of one module)
                     + its searches         MRC: PGD on its examples, then per module the
                                            weight-ascent steps on them (counted as full
                                            passes); α search: PGD on the validation images for
                                            every α. Read from the run's mrc.json and
                                            interpolation.json, divided by the training images.
"""
from __future__ import annotations

import json
from pathlib import Path


def passes_per_epoch(method: str, *, steps: int = 0, replays: int = 1) -> int:
    """Forward/backward passes per training image in one epoch of `method`."""
    table = {"natural": 1, "rift": 1, "fast-at": 2, "free-at": replays,
             "pgd-at": steps + 1, "aft": steps + 1}
    if method not in table:
        raise ValueError(f"no cost rule for method {method!r}")
    return table[method]


def passes_per_image(method: str, epochs_run: float, *, steps: int = 0, replays: int = 1) -> float:
    return epochs_run * passes_per_epoch(method, steps=steps, replays=replays)


def rift_search_passes(run_dir) -> int:
    """RiFT's passes outside its fine-tuning (MRC and the α search), from the run's records."""
    run_dir = Path(run_dir)
    mrc = json.loads((run_dir / "mrc.json").read_text())
    interp = json.loads((run_dir / "interpolation.json").read_text())
    m = mrc["settings"]
    mrc_passes = m["examples"] * (m["attack_steps"] + mrc["cost"]["modules"] * m["ascent_steps"])
    return mrc_passes + sum(row["n"] * interp["attack_steps"] for row in interp["rows"])
