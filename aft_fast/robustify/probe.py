"""The probes: short fine-tunes of the given model, one per candidate (peak LR × BatchNorm
handling for a BatchNorm network), each an ordinary `train` run in OUT/probes/NAME. The
re-estimated handling trains nothing of its own: it is the frozen probe of the same LR with its
statistics re-estimated on the probe's own training batches (`batchnorm.py`), scored as the
others are.

Each probe trains `probe_batches` batches of a fixed subset of the training split at a
*constant* LR (the candidate peak: what wrecks a pretrained model is the peak, which the real
run's slow start reaches later, so this is the pessimistic test), then the loop's own per-epoch
evaluation scores it on `probe_images` held-out images (val, carved from the training data;
never the test split) with its PGD. Every probe uses the same seed: the same batches and
random starts, so they differ only in the candidate.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from aft_fast.robustify import batchnorm as bn_stats
from aft_fast.robustify.choose import Probe
from aft_fast.robustify.measure import held_out
from aft_fast.runtime import pick_device
from aft_fast.train.checkpoint import load_checkpoint
from aft_fast.train.options import TrainOptions
from aft_fast.train.pretrained_bn import PretrainedBatchNormWarning
from aft_fast.train.run import open_data, train


def candidates(lrs: list[float], batchnorm: bool) -> list[tuple[float, str | None]]:
    """(peak LR, BatchNorm handling or None without BatchNorm) of each training probe, highest
    LR first; each frozen one is also scored re-estimated."""
    return [(lr, bn) for lr in lrs for bn in (("frozen", "updating") if batchnorm else (None,))]


def probe_images(base: TrainOptions, batches: int) -> int:
    """A probe's training images: `batches` batches, within the run's own subset if it has one."""
    return min(batches * base.batch_size, base.train_images or batches * base.batch_size)


def probe_options(base: TrainOptions, out: Path, lr: float, bn: str | None, *,
                  batches: int, images: int, resume: bool = False) -> TrainOptions:
    """A probe's train options; `resume`: go on from (or read back) the run already in `out`."""
    going_on = resume and (out / "last.pt").is_file()
    return replace(base, out=str(out), lr=lr, freeze_bn_stats=bn == "frozen", epochs=1,
                   schedule="constant", schedule_params=None,
                   train_images=probe_images(base, batches), eval_images=images,
                   eval_full=False, eval_max_batches=None, save_every=None, quiet=True,
                   resume=going_on, overwrite=not going_on)


def run_probe(opts: TrainOptions, lr: float, bn: str | None, *, batches: int,
              scored: int) -> Probe:
    """One probe's run and its held-out scores (`scored`: the held-out images its evaluation
    reads, the same as the measurement of the model as given)."""
    with warnings.catch_warnings():  # the probe measures exactly what that warning is about
        warnings.simplefilter("ignore", PretrainedBatchNormWarning)
        row = train(opts)["last"]
    return Probe(lr=lr, bn=bn, clean=row["val_clean_acc"],
                 robust=row["val_robust_acc"] or 0.0, n=scored, batches=batches,
                 seconds=row["epoch_seconds"] + row["eval_seconds"])


def run_reestimated(opts: TrainOptions, frozen: Probe, attack) -> Probe:
    """The frozen probe run in `opts.out`, its statistics re-estimated on its own training
    batches (`attack`: the method's training attack), scored on the same held-out images."""
    clock = time.perf_counter()
    device = pick_device(opts.device)
    model = load_checkpoint(Path(opts.out) / "last.pt", device, trust_code=True)
    loaders = open_data(opts, device)
    torch.manual_seed(opts.seed)
    bn_stats.reestimate(model, loaders.train, attack, batches=frozen.batches)
    got = held_out(model, loaders.val, eps=opts.eps, steps=opts.eval_steps, images=opts.eval_images)
    return replace(frozen, bn="reestimated", clean=got["clean"], robust=got["robust"],
                   seconds=time.perf_counter() - clock)


def run_probes(base: TrainOptions, out: Path, *, lrs: list[float], batchnorm: bool, batches: int,
               images: int, scored: int, train_size: int, attack, resume: bool = False,
               say=print, probe=run_probe, reestimated=run_reestimated) -> list[Probe]:
    """Every candidate's probe, in order (each frozen one followed by its re-estimated
    scoring); `probe` trains and scores one, `reestimated` re-scores one (tests replace them).
    `attack`: the AttackConfig of the method's training examples; `resume`: a probe whose run
    is in `out` already goes on from it (a finished one is read back, not trained again)."""
    todo = candidates(lrs, batchnorm)
    ran = math.ceil(min(probe_images(base, batches), train_size) / base.batch_size)
    done = []

    def show(result: Probe) -> None:
        say(f"  probe {len(done) + 1}/{len(todo) + sum(bn == 'frozen' for _, bn in todo)} "
            f"{result.describe()}: held-out clean {100 * result.clean:.1f}%, robust "
            f"{100 * result.robust:.1f}% ({result.seconds:.0f}s)")
        done.append(result)

    for lr, bn in todo:
        opts = probe_options(base, out / Probe(lr, bn, 0, 0, 0).name, lr, bn, batches=batches,
                             images=images, resume=resume)
        show(probe(opts, lr, bn, batches=ran, scored=scored))
        if bn == "frozen":
            show(reestimated(opts, done[-1], attack))
    return done
