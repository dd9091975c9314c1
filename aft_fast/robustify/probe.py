"""The probes: short fine-tunes of the given model, one per candidate (peak LR × BatchNorm
handling for a BatchNorm network), each an ordinary `train` run in OUT/probes/NAME.

Each probe trains `probe_batches` batches of a fixed subset of the training split at a
*constant* LR (the candidate peak: what wrecks a pretrained model is the peak, which the real
run's slow start reaches later, so this is the pessimistic test), then the loop's own per-epoch
evaluation scores it on `probe_images` held-out images (val, carved from the training data;
never the test split) with its PGD. Every probe uses the same seed: the same batches and
random starts, so they differ only in the candidate.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import replace
from pathlib import Path

from aft_fast.robustify.choose import Probe
from aft_fast.train.options import TrainOptions
from aft_fast.train.pretrained_bn import PretrainedBatchNormWarning
from aft_fast.train.run import train


def candidates(lrs: list[float], batchnorm: bool) -> list[tuple[float, bool | None]]:
    """(peak LR, frozen BatchNorm statistics or None without BatchNorm), highest LR first."""
    return [(lr, frozen) for lr in lrs for frozen in ((True, False) if batchnorm else (None,))]


def probe_images(base: TrainOptions, batches: int) -> int:
    """A probe's training images: `batches` batches, within the run's own subset if it has one."""
    return min(batches * base.batch_size, base.train_images or batches * base.batch_size)


def probe_options(base: TrainOptions, out: Path, lr: float, frozen: bool | None, *,
                  batches: int, images: int) -> TrainOptions:
    return replace(base, out=str(out), lr=lr, freeze_bn_stats=bool(frozen), epochs=1,
                   schedule="constant", schedule_params=None,
                   train_images=probe_images(base, batches), eval_images=images,
                   eval_full=False, eval_max_batches=None, save_every=None, quiet=True,
                   resume=False, overwrite=True)


def run_probe(opts: TrainOptions, lr: float, frozen: bool | None, *, batches: int,
              scored: int) -> Probe:
    """One probe's run and its held-out scores (`scored`: the held-out images its evaluation
    reads, the same as the measurement of the model as given)."""
    with warnings.catch_warnings():  # the probe measures exactly what that warning is about
        warnings.simplefilter("ignore", PretrainedBatchNormWarning)
        row = train(opts)["last"]
    return Probe(lr=lr, frozen_bn=frozen, clean=row["val_clean_acc"],
                 robust=row["val_robust_acc"] or 0.0, n=scored, batches=batches,
                 seconds=row["epoch_seconds"] + row["eval_seconds"])


def run_probes(base: TrainOptions, out: Path, *, lrs: list[float], batchnorm: bool, batches: int,
               images: int, scored: int, train_size: int, say=print,
               probe=run_probe) -> list[Probe]:
    """Every candidate's probe, in order; `probe` runs one (tests replace it)."""
    todo = candidates(lrs, batchnorm)
    ran = math.ceil(min(probe_images(base, batches), train_size) / base.batch_size)
    done = []
    for i, (lr, frozen) in enumerate(todo, 1):
        name = Probe(lr, frozen, 0, 0, 0).name
        opts = probe_options(base, out / name, lr, frozen, batches=batches, images=images)
        result = probe(opts, lr, frozen, batches=ran, scored=scored)
        say(f"  probe {i}/{len(todo)} {result.describe()}: held-out clean "
            f"{100 * result.clean:.1f}%, robust {100 * result.robust:.1f}% "
            f"({result.seconds:.0f}s)")
        done.append(result)
    return done
