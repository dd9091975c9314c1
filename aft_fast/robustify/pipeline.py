"""`robustify`: make a pretrained classifier robust in one call, composed from what exists.

    1 measure   the model as given: clean and PGD accuracy on held-out training data (val)
    2 choose    probes (probe.py) → peak LR and BatchNorm handling (choose.py); epochs from the
                budget; warnings when the budget or ε looks out of reach
    3 fine-tune `train` with the chosen settings (OUT/train: its log, progress, checkpoints)
    4 evaluate  before and after on the test split (measure.py: compare's protocol + ε curve)
    5 report    report.json/.md/.html (report.py), exports + MODEL_CARD.md (export.py, card.py)

The test split is read only in step 4: no choice depends on it.
"""
from __future__ import annotations

import math
import os
import shlex
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from aft_fast.compare.protocol import split_tensors
from aft_fast.data.folder import scan_split
from aft_fast.errors import check, show_pixels
from aft_fast.io import write_text
from aft_fast.robustify import batchnorm as bn_stats, choose, measure, report as report_files
from aft_fast.robustify.card import model_card
from aft_fast.robustify.export import export
from aft_fast.robustify.options import RobustifyOptions, check_all
from aft_fast.robustify.probe import run_probes, run_round2, take_winner
from aft_fast.runtime import environment, load_average, pick_device
from aft_fast.train.checkpoint import load_checkpoint
from aft_fast.train.options import TrainOptions
from aft_fast.train.pretrained_bn import PretrainedBatchNormWarning, has_batchnorm
from aft_fast.train.run import build_model, open_data, seed_everything, train

REESTIMATED = "best-bn-reestimated.pt"  # best.pt with re-estimated BatchNorm statistics
ROW_KEYS = ("epoch", "lr", "train_loss", "val_clean_acc", "val_robust_acc", "epoch_seconds")


def robustify(train_opts: TrainOptions, opts: RobustifyOptions, *, command: str | None = None,
              say=print, probe=None, finalist=None) -> dict:
    """Run the five steps into `opts.out`; returns the report (also OUT/report.json).
    `probe`, `finalist`: run one probe, one round-2 finalist (tests replace them; default
    `probe.run_probe`, `probe.run_finalist`)."""
    check_all(train_opts, opts)  # --out's state included: nothing finished is replaced unasked
    out = Path(opts.out)
    clock, seconds = time.perf_counter(), {}
    device = pick_device(train_opts.device)
    seed_everything(train_opts.seed)
    base = replace(train_opts, out=str(out / "train"),
                   val_images=held_out_size(train_opts, opts.probe_images))

    say("1/5 the model as given, on held-out training data")
    loaders = open_data(base, device)
    spec = loaders.spec
    model = build_model(base, spec, device)
    batchnorm = has_batchnorm(model)
    check(batchnorm or opts.bn_handling == "auto", "bn_handling", f"{base.arch} has no "
          "BatchNorm layer: leave --bn-handling at auto")
    held = measure.held_out(model, loaders.val, eps=base.eps, steps=base.eval_steps,
                            images=opts.probe_images)
    say(f"  clean {100 * held['clean']:.1f}%, {held['attack']} {100 * held['robust']:.1f}% on "
        f"{held['n']} val images; {'has' if batchnorm else 'no'} BatchNorm layers")
    seconds["measure"] = _lap(clock, seconds)

    say("2/5 choosing the recipe from short probes on held-out training data")
    method = base.method_class()(eps=base.eps, steps=base.steps, **base.method_kwargs())
    extra = {} if probe is None else {"probe": probe}
    probes = run_probes(base, out / "probes", lrs=opts.lrs(), batchnorm=batchnorm,
                        batches=opts.probe_batches, images=opts.probe_images, scored=held["n"],
                        train_size=spec.train_size, attack=method.attack_config(),
                        handling=opts.bn_handling, resume=opts.resume, keep=opts.keep_probes,
                        say=say, **extra)
    # chance among the data's classes (with a class map: the folder's, not the head's 1000)
    chance = 1 / len(spec.class_indices or range(spec.num_classes))
    finals = choose.finalists(probes, chance, opts.bn_handling) if opts.confirm_epochs else []
    epochs, epochs_why = choose.epochs(opts.budget, method.default_epochs())
    full = bool(finals) and opts.confirm_epochs >= epochs  # round 2 runs the fine-tunes themselves
    deciding = probes
    if finals:
        say(f"  round 2: the best probe of each BatchNorm handling fine-tuned for "
            + (f"the fine-tune's {epochs} epochs, its best.pt" if full else
               f"{opts.confirm_epochs} epochs (the fine-tune's schedule, compressed)")
            + f" scored with PGD-{opts.confirm_steps} on the same held-out images")
        deciding = run_round2(base, out / "probes", finals, epochs=min(opts.confirm_epochs, epochs),
                              steps=opts.confirm_steps, images=opts.probe_images,
                              attack=method.attack_config(), bn_batches=opts.bn_batches, full=full,
                              resume=opts.resume, keep=opts.keep_probes, say=say,
                              **({} if finalist is None else {"finalist": finalist}))
    choice = choose.pick(deciding, chance=chance, handling=opts.bn_handling)
    if finals:
        choice = replace(choice, why=f"round 2, {deciding[0].batches} batches and PGD-"
                         f"{opts.confirm_steps} on {deciding[0].n} held-out images: {choice.why}")
    updates = epochs * math.ceil(spec.train_size / base.batch_size) * method.replays
    every = probes + (deciding if finals else [])  # both rounds
    alerts = choose.warnings(updates=updates, probes=every, choice=choice, eps=base.eps,
                             probe_steps=min(p.steps or held["steps"] for p in deciding),
                             full=full)
    choices = {**choose.as_record(every, choice, deciding), "epochs": epochs,
               "epochs_why": epochs_why,
               "updates": updates, "warnings": alerts}
    say(f"  chosen: {choice.probe.describe()} ({choice.why}); {epochs_why} epochs")
    for alert in alerts:
        say(f"  warning: {alert}")
    seconds["probes"] = _lap(clock, seconds)

    say(f"3/5 fine-tuning with {base.method} into {base.out}")
    taken = full and take_winner(out / "probes", deciding, choice.probe, out / "train",
                                 keep=opts.keep_probes)
    going_on = (opts.resume or taken) and (out / "train" / "last.pt").is_file()
    run_opts = replace(base, lr=choice.probe.lr, freeze_bn_stats=choice.probe.freeze_bn_stats,
                       epochs=epochs, resume=going_on, overwrite=not going_on)
    if taken:
        say(f"  round 2's {choice.probe.name} was this fine-tune: its run is taken as it is")
    elif going_on:
        say("  resuming the fine-tune from its last.pt")
    with warnings.catch_warnings():  # the probes measured what that warning guesses at
        warnings.simplefilter("ignore", PretrainedBatchNormWarning)
        run = train(run_opts)
    best = str(out / "train" / "best.pt")
    if choice.probe.bn == "reestimated":
        say(f"  re-estimating the BatchNorm statistics on {opts.bn_batches} training batches")
        torch.manual_seed(base.seed)
        choices["reestimated"] = bn_stats.reestimated_checkpoint(
            best, out / "train" / REESTIMATED, loaders.train, method.attack_config(),
            batches=opts.bn_batches, device=device)
        best = str(out / "train" / REESTIMATED)
    seconds["train"] = _lap(clock, seconds)

    say("4/5 evaluating before and after on the test split")
    x, y = split_tensors(loaders.test)
    p = measure.protocol(eps=base.eps, images=opts.test_images, restarts=opts.pgd_restarts,
                         aa_images=opts.aa_images, batch_size=base.eval_batch_size or
                         base.batch_size, seed=base.seed)
    test = {"before": measure.on_test(model, x, y, p, say=say),
            "after": measure.on_test(load_checkpoint(best, device, trust_code=True), x, y, p,
                                     say=say)}
    seconds["evaluate"] = _lap(clock, seconds)

    say("5/5 report and exports")
    exports = export(best, out / "model", base.eps)
    exports.update(dir=str(out / "model"), files=sorted(
        f.name for f in (out / "model").iterdir() if not f.name.startswith(".")) + ["MODEL_CARD.md"])
    report = {
        "command": command or shlex.join(sys.argv),
        "environment": environment(device), "load_average": load_average(),
        "model": {"arch": base.arch, "weights": base.weights, "num_classes": spec.num_classes,
                  "batchnorm": batchnorm, "input_size": spec.image_size},
        "data": {"data": base.data, "class_map": base.class_map, "train_images": spec.train_size,
                 "val_images": loaders.val.num_samples, "test_images": len(y)},
        "threat": {"eps": base.eps, "eps_text": show_pixels(base.eps), "norm": "Linf",
                   "train_attack": f"PGD-{base.steps}"},
        "held_out_before": held, "choices": choices,
        "training": {"run_dir": base.out, "method": base.method, "best": run["best"],
                     "checkpoint": best,
                     "rows": [{k: r.get(k) for k in ROW_KEYS} for r in run["rows"]]},
        "test": test, "exports": exports}
    seconds["report"] = _lap(clock, seconds)
    report["seconds"] = {**seconds, "total": time.perf_counter() - clock}
    write_text(model_card(report), out / "model" / "MODEL_CARD.md")
    report["files"] = report_files.write(report, out)
    say(f"done: {out / 'report.html'} (after: clean {100 * test['after']['clean_acc']:.1f}%, "
        f"PGD-{p.pgd_steps} {100 * test['after']['pgd_acc']:.1f}%, AutoAttack "
        f"{100 * test['after']['autoattack_acc']:.1f}% on {test['after']['autoattack_n']} images)")
    return report


def held_out_size(train_opts: TrainOptions, probe_images: int) -> int | None:
    """The val split's size: an image folder's is carved to the `probe_images` that score the
    choices (at most a fifth of its training images) unless --val-images sets it; built-in
    datasets keep their own val split (None)."""
    if train_opts.val_images is not None or not os.path.isdir(train_opts.data):
        return train_opts.val_images
    files, _ = scan_split(Path(train_opts.data), "train")
    return max(1, min(probe_images, len(files.files) // 5))


def _lap(clock: float, seconds: dict) -> float:
    """Seconds since the last lap (since `clock` for the first)."""
    return time.perf_counter() - clock - sum(seconds.values())
