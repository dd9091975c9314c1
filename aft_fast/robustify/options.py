"""`RobustifyOptions`: robustify's own options, one declared field each. Everything about the model,
the data, the attack and the training run is `TrainOptions` (train's flags, shared); what
robustify chooses itself (`CHOSEN`) is not a flag of it."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aft_fast.errors import OptionError, check
from aft_fast.models import weights_path
from aft_fast.options import check_declared, option
from aft_fast.robustify.choose import HANDLINGS
from aft_fast.train.options import TrainOptions

# TrainOptions fields robustify sets from its probes and --budget, or owns (out), or refuses
CHOSEN = ("lr", "freeze_bn_stats", "epochs", "out", "resume", "allow_scratch")
CPU_AA_SECONDS = 1.5  # AutoAttack per image, small CNN, the project's 2-core CPU (FACTS.md)


@dataclass
class RobustifyOptions:
    out: str = option("runs/robustify", "Output folder: report.md/.html/.json, model/ (the "
                      "exports and MODEL_CARD.md), train/ (the fine-tune run), probes/.")
    budget: int | None = option(
        None, "Fine-tuning epochs (default: the method's, 10 for aft).", low=1)
    probe_lrs: str = option(
        "1e-3,3e-4,1e-4", "Peak LRs the probes try, comma-separated (each a short fine-tune at "
        "that constant LR, scored on held-out training images).")
    probe_batches: int = option(
        30, "Training batches of each probe (the first of a fixed subset of the training split).",
        low=1)
    bn_handling: str = option(
        "auto", "BatchNorm statistics of a BatchNorm network: auto (the probes choose among "
        "frozen, updating and re-estimated), or the one to use (the probes then choose only the "
        "LR).", choices=("auto", *HANDLINGS))
    confirm_epochs: int = option(
        2, "Round 2: when more than one BatchNorm handling survives the probes, the best probe "
        "of each is fine-tuned again, the fine-tune's schedule compressed into this many epochs "
        "of the training split, and scored with --confirm-steps PGD steps; those scores choose "
        "(0: the probes alone choose; at least the fine-tune's epochs: each finalist is a whole "
        "fine-tune, scored on its best.pt, and the chosen one's run is the result).", low=0)
    confirm_steps: int = option(
        50, "PGD steps that score round 2 on the --probe-images held-out images.", low=1)
    keep_probes: bool = option(
        False, "Keep the probes' checkpoints (OUT/probes/*/*.pt); by default each is deleted once "
        "its probe is scored (the scores stay in its probe.json).")
    bn_batches: int = option(
        100, "Training batches whose adversarial examples re-estimate the BatchNorm statistics "
        "after the fine-tune, when the probes chose that handling (a probe re-estimates on its "
        "own batches).", low=1)
    probe_images: int = option(
        512, "Held-out images (val: carved from the training data, never test) that score the "
        "model as given and each probe.", low=1)
    test_images: int = option(
        1000, "Test images of PGD-50, the masking check and the accuracy-vs-eps curve (clean "
        "accuracy: the whole test split).", low=1)
    pgd_restarts: int = option(5, "Random restarts of the final PGD-50.", low=1)
    resume: bool = option(
        False, "Go on from an interrupted robustify in --out: finished probes are read back, an "
        "unfinished one and the fine-tune resume from their last.pt (train --resume, exact); "
        "the evaluation runs again.")
    aa_images: int = option(
        100, f"AutoAttack (reference settings) on the first N test images (a class-sorted "
        f"folder's interleaved class by class, so every class counts alike); on a CPU about "
        f"{CPU_AA_SECONDS:g} s an image for a small CNN, more for larger networks.", low=1)

    def lrs(self) -> list[float]:
        """The probe LRs, each a number > 0 (OptionError naming probe_lrs otherwise)."""
        try:
            values = [float(v) for v in str(self.probe_lrs).replace(" ", "").split(",") if v]
        except ValueError:
            raise OptionError("probe_lrs", f"expected numbers separated by commas like "
                              f"1e-3,3e-4,1e-4; got {self.probe_lrs!r}") from None
        check(bool(values), "probe_lrs", "names no learning rate: give e.g. 1e-3,3e-4,1e-4")
        check(all(v > 0 for v in values), "probe_lrs", f"every LR must be > 0, got {values}")
        return sorted(set(values), reverse=True)


def check_all(train: TrainOptions, opts: RobustifyOptions) -> None:
    """Refuse, before any work, what robustify cannot run (OptionError naming the option)."""
    check_declared(opts)
    opts.lrs()
    check(bool(str(opts.out).strip()), "out", "is empty: name the output folder")
    check_out(Path(opts.out), resume=opts.resume, overwrite=train.overwrite)
    check(bool(train.weights), "weights", "robustify makes a pretrained model robust: pass "
          "--weights PATH (a state_dict, .safetensors or an aft_fast checkpoint)")
    if not os.path.isfile(weights_path(train.arch, train.weights)):
        raise OptionError("weights", f"{train.weights}: no such file (a state_dict, "
                          ".safetensors or an aft_fast checkpoint is expected)")
    check(train.method_class().adversarial, "method", f"--method {train.method} trains on "
          "clean images and makes nothing robust: pick an adversarial method (aft, the default)")
    check(train.eps is not None and train.eps > 0, "eps",
          "must be > 0: the l∞ radius to make the model robust at, e.g. 2/255 or 8/255")
    train.check()


def started(out: Path) -> bool:
    """Whether `out` holds a robustify run's probes or fine-tune (finished or not)."""
    return (out / "probes").is_dir() or (out / "train").is_dir()


def check_out(out: Path, *, resume: bool, overwrite: bool) -> None:
    """What is in --out decides what may run there: nothing of a run is replaced unasked."""
    check(not (resume and overwrite), "resume", "goes on from the run in --out, which "
          "--overwrite starts again: pass one of them")
    if (out / "report.json").exists():
        check(overwrite, "out", f"{out} holds a finished robustify run (report.json): pass "
              "--overwrite to run it again, or another --out")
    elif resume:
        check(started(out), "resume", f"{out} holds no robustify run to go on from: start "
              "without --resume")
    elif started(out):
        check(overwrite, "out", f"{out} holds an unfinished robustify run: pass --resume to go "
              "on from it (finished probes and training epochs are kept), --overwrite to start "
              "again, or another --out")
