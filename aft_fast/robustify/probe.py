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

Round 2 (`run_round2`, see `choose.py` for why): each finalist trains again from the given
model for `epochs` whole epochs of the training split under the fine-tune's own LR schedule (the
method's: AFT's slow start, fast decay) compressed into them, its per-epoch evaluation clean
only, then is scored on the same held-out images with a stronger PGD (its statistics
re-estimated first when that is its handling, on as many batches as the fine-tune's).

A scored probe's result is kept in its folder (probe.json, with the options it ran with) and
its checkpoints are deleted (a probe of a 20 MB model leaves ~60 MB of them; `keep` keeps
them): `--resume` reads the result back instead of training again.
"""
from __future__ import annotations

import json
import math
import shutil
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import torch

from aft_fast.errors import check
from aft_fast.io import write_text
from aft_fast.robustify import batchnorm as bn_stats
from aft_fast.robustify.choose import Probe
from aft_fast.robustify.measure import held_out
from aft_fast.runtime import pick_device
from aft_fast.train.checkpoint import load_checkpoint
from aft_fast.train.evaluation import eval_budget
from aft_fast.train.options import TrainOptions
from aft_fast.train.pretrained_bn import PretrainedBatchNormWarning
from aft_fast.train.run import open_data, train
from aft_fast.train.run_lock import LOCK_NAME
from aft_fast.train.same_run import check_same_run

RESULT = "probe.json"


def candidates(lrs: list[float], batchnorm: bool,
               handling: str = "auto") -> list[tuple[float, str | None]]:
    """(peak LR, BatchNorm handling or None without BatchNorm) of each training probe, highest
    LR first; `handling`: auto (every one) or the one handling asked for (re-estimated trains
    frozen). A frozen probe is also scored re-estimated when that handling may be chosen."""
    trained = {"auto": ("frozen", "updating"), "frozen": ("frozen",),
               "reestimated": ("frozen",), "updating": ("updating",)}[handling]
    return [(lr, bn) for lr in lrs for bn in (trained if batchnorm else (None,))]


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
                 steps=eval_budget(adversarial=True, eps=opts.eps, steps=opts.eval_steps,
                                   full=False, images=scored).attack.steps,
                 seconds=row["epoch_seconds"] + row["eval_seconds"])


def score_last(opts: TrainOptions, *, steps: int | None, images: int | None, attack=None,
               reestimate: int = 0, checkpoint: str = "last.pt") -> dict:
    """held_out's scores of the run in `opts.out` (its `checkpoint`), its BatchNorm statistics
    first re-estimated on `reestimate` training batches of `attack`'s examples when > 0."""
    device = pick_device(opts.device)
    model = load_checkpoint(Path(opts.out) / checkpoint, device, trust_code=True)
    loaders = open_data(opts, device)
    if reestimate:
        torch.manual_seed(opts.seed)
        bn_stats.reestimate(model, loaders.train, attack, batches=reestimate)
    return {**held_out(model, loaders.val, eps=opts.eps, steps=steps, images=images),
            "batches": len(loaders.train)}


def run_reestimated(opts: TrainOptions, frozen: Probe, attack) -> Probe:
    """The frozen probe run in `opts.out`, its statistics re-estimated on its own training
    batches (`attack`: the method's training attack), scored on the same held-out images."""
    clock = time.perf_counter()
    got = score_last(opts, steps=opts.eval_steps, images=opts.eval_images, attack=attack,
                     reestimate=frozen.batches)
    return replace(frozen, bn="reestimated", clean=got["clean"], robust=got["robust"],
                   seconds=time.perf_counter() - clock)


def run_probes(base: TrainOptions, out: Path, *, lrs: list[float], batchnorm: bool, batches: int,
               images: int, scored: int, train_size: int, attack, handling: str = "auto",
               resume: bool = False, keep: bool = False, say=print, probe=run_probe,
               reestimated=run_reestimated) -> list[Probe]:
    """Every candidate's probe, in order (each frozen one followed by its re-estimated
    scoring when `handling` allows it); `probe` trains and scores one, `reestimated` re-scores
    one (tests replace them). `attack`: the AttackConfig of the method's training examples;
    `resume`: a probe scored already is read back from its probe.json, an unfinished one goes
    on from its last.pt; `keep`: keep the probes' checkpoints."""
    todo = candidates(lrs, batchnorm, handling)
    rescored = batchnorm and handling in ("auto", "reestimated")
    ran = math.ceil(min(probe_images(base, batches), train_size) / base.batch_size)
    total = len(todo) + rescored * sum(bn == "frozen" for _, bn in todo)
    done = []

    def show(result: Probe, read_back: bool) -> None:
        took = "read back" if read_back else f"{result.seconds:.0f}s"
        say(f"  probe {len(done) + 1}/{total} {result.describe()}: held-out clean "
            f"{100 * result.clean:.1f}%, robust {100 * result.robust:.1f}% ({took})")
        done.append(result)

    for lr, bn in todo:
        opts = probe_options(base, out / Probe(lr, bn, 0, 0, 0).name, lr, bn, batches=batches,
                             images=images, resume=resume)
        steps = [(opts, lambda: probe(opts, lr, bn, batches=ran, scored=scored))]
        if bn == "frozen" and rescored:
            steps.append((replace(opts, out=str(out / Probe(lr, "reestimated", 0, 0, 0).name)),
                          lambda: reestimated(opts, done[-1], attack)))
        for where, score in steps:
            kept = read_result(where) if resume else None
            show(kept or save_result(where, score()), kept is not None)
        if not keep:
            drop_checkpoints(Path(opts.out))
    return done


def round2_options(base: TrainOptions, out: Path, finalist: Probe, *, epochs: int,
                   full: bool = False, resume: bool = False) -> TrainOptions:
    """A finalist's second-round train options: the fine-tune's own (its schedule too:
    robustness builds as the LR decays), shortened to `epochs` epochs at the finalist's peak LR
    and handling; the per-epoch evaluation clean accuracy of one batch (the scoring follows).
    `full`: `epochs` is the fine-tune's length, the run is the fine-tune itself (its per-epoch
    evaluation too, which picks best.pt), so the winner's run can be the result."""
    going_on = resume and (out / "last.pt").is_file()
    opts = replace(base, out=str(out), lr=finalist.lr, freeze_bn_stats=finalist.freeze_bn_stats,
                   epochs=epochs, quiet=True, resume=going_on, overwrite=not going_on)
    if full:
        return opts
    return replace(opts, eval_steps=0, eval_images=base.batch_size, eval_full=False,
                   eval_max_batches=None, save_every=None)


def run_finalist(opts: TrainOptions, finalist: Probe, *, steps: int, images: int, attack,
                 bn_batches: int, checkpoint: str = "last.pt") -> Probe:
    """Train one finalist as `opts` asks, then score its `checkpoint` with PGD-`steps`."""
    clock = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PretrainedBatchNormWarning)
        train(opts)
    got = score_last(opts, steps=steps, images=images, attack=attack, checkpoint=checkpoint,
                     reestimate=bn_batches if finalist.bn == "reestimated" else 0)
    return replace(finalist, clean=got["clean"], robust=got["robust"], n=got["n"],
                   batches=int(opts.epochs) * got["batches"], round=2, steps=got["steps"],
                   seconds=time.perf_counter() - clock)


def run_round2(base: TrainOptions, out: Path, finalists: list[Probe], *, epochs: int, steps: int,
               images: int, attack, bn_batches: int, full: bool = False, resume: bool = False,
               keep: bool = False, say=print, finalist=run_finalist) -> list[Probe]:
    """Each finalist trained for `epochs` epochs and scored with PGD-`steps` on `images`
    held-out images (`finalist` runs one; tests replace it); `resume`/`keep` as run_probes.
    `full` (`epochs` is the fine-tune's): each run is a fine-tune, scored on its best.pt (what
    would ship), its checkpoints kept for the pipeline to take the winner's
    (`take_winner`)."""
    done = []
    for i, first in enumerate(finalists):
        name = replace(first, round=2).name
        opts = round2_options(base, out / name, first, epochs=epochs, full=full, resume=resume)
        kept = read_result(opts) if resume else None
        if kept is not None:
            check(kept.steps == steps, "resume", f"{opts.out} was scored with PGD-{kept.steps}, "
                  f"this run asks for PGD-{steps} (--confirm-steps): pass the same, or --overwrite")
        result = kept or save_result(opts, finalist(
            opts, first, steps=steps, images=images, attack=attack, bn_batches=bn_batches,
            checkpoint="best.pt" if full else "last.pt"))
        say(f"  round 2, {i + 1}/{len(finalists)} {result.describe()}, {result.batches} batches: "
            f"held-out clean {100 * result.clean:.1f}%, PGD-{steps} {100 * result.robust:.1f}% ("
            + ("read back)" if kept else f"{result.seconds:.0f}s)"))
        done.append(result)
        if not keep and not full:
            drop_checkpoints(Path(opts.out))
    return done


def take_winner(probes: Path, finalists: list[Probe], chosen: Probe, train_dir: Path, *,
                keep: bool = False) -> bool:
    """After a full-length round 2: the chosen finalist's run becomes `train_dir` (copied, so
    its probe.json stays for --resume), the finalists' checkpoints deleted unless `keep`. True
    when it was copied; False when `train_dir` has a run already (--resume) or the chosen run is
    gone (a checkout without it): the fine-tune then goes on, or trains anew."""
    run = probes / chosen.name
    taken = (run / "last.pt").is_file() and not (train_dir / "last.pt").is_file()
    if taken:
        shutil.copytree(run, train_dir, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(RESULT, LOCK_NAME))
    if not keep:
        for f in finalists:
            drop_checkpoints(probes / f.name)
    return taken


def drop_checkpoints(run: Path) -> None:
    """Delete a scored probe's checkpoints (its probe.json keeps the scores)."""
    for checkpoint in run.glob("*.pt"):
        checkpoint.unlink()


def save_result(opts: TrainOptions, result: Probe) -> Probe:
    """Write `result` (and the options it ran with) to the probe's folder; returns it."""
    Path(opts.out).mkdir(parents=True, exist_ok=True)
    write_text(json.dumps({"probe": asdict(result), "options": asdict(opts)}, indent=1),
               Path(opts.out) / RESULT)
    return result


def read_result(opts: TrainOptions) -> Probe | None:
    """The probe scored in `opts.out` under the same options, or None when it was not scored
    (a probe scored under other options is refused, as train --resume refuses)."""
    path = Path(opts.out) / RESULT
    if not path.is_file():
        return None
    kept = json.loads(path.read_text())
    check_same_run(kept["options"], asdict(opts), opts.out)  # out, resume: may differ
    return Probe(**kept["probe"])
